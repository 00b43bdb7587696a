"""The nginx configuration of the front end, generated from the settings at start-up.

nginx listens on ``SAGEMAKER_BIND_TO_PORT``, reads whole requests (headers and body) itself,
with short timeouts, and only then hands each one to gunicorn over a unix socket: a slow, idle
or truncated client costs an nginx connection (event-driven, no worker), never a gunicorn sync
worker. gunicorn's own deployment notes ask for exactly this ("a buffering proxy", docs.gunicorn.org
/en/stable/deploy.html); AWS's bring-your-own sample (amazon-sagemaker-examples
advanced_functionality/scikit_bring_your_own/container/decision_trees/nginx.conf) and the
SageMaker scikit-learn container do the same.

Every answer nginx gives itself (400 malformed or truncated request, 408, 413, 414, 431, 502,
504 ...) is the JSON error body the app sends, ``{"error", "message", "request_id"}``, with an
``X-Request-Id`` header; such requests are logged as one JSON line (the app logs the requests it
answers, so each request is logged once).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

from serving.config import ENV_CLIENT_TIMEOUT, ENV_TIMEOUT, Settings
from serving.hot_routes import REQUEST_ID_PATTERN

# nginx's header limits (its defaults, stated): a request line or header line over 8 KB is
# refused (414 / 431), and so are headers over 4 x 8 KB in all.
HEADER_BUFFERS = "4 8k"
# Bodies up to this size stay in nginx's memory; larger ones go to a temporary file.
BODY_MEMORY = 1024 * 1024
# How much longer than the worker timeout nginx waits for gunicorn's answer: gunicorn's timeout
# answer (a JSON 504 from serving.workers) normally arrives first.
UPSTREAM_GRACE = 5
# Idle connections to the workers each nginx worker keeps (serving/keepalive.py), and for how
# long: idle ones are closed by nginx, never by a worker while it runs.
UPSTREAM_IDLE_CONNECTIONS = 8
UPSTREAM_IDLE_SECONDS = 15


def error_messages(settings: Settings) -> dict[int, tuple[str, str]]:
    """Status -> (code, message) for every answer nginx gives itself. ``{rid}`` is replaced by
    the request id. The codes match the app's (werkzeug's names in snake case)."""
    wait = settings.timeout + UPSTREAM_GRACE
    return {
        404: ("not_found", "the path is not one of /ping, /invocations, /execution-parameters"),
        400: ("bad_request", "the request is malformed (request line, header or chunked body) "
              "or the connection ended before the whole body arrived"),
        405: ("method_not_allowed", "method not allowed"),
        408: ("request_timeout", "the request did not arrive within "
              f"{settings.client_timeout} s ({ENV_CLIENT_TIMEOUT})"),
        411: ("length_required", "a body needs a Content-Length or chunked encoding"),
        413: ("payload_too_large",
              f"the body is over the limit of {settings.max_request_bytes} bytes"),
        414: ("uri_too_long", "the request line is longer than 8 KB"),
        431: ("request_header_fields_too_large",
              "a header line is longer than 8 KB or the headers exceed 32 KB"),
        500: ("internal_error", "internal error in the front end; quote request id {rid}"),
        501: ("not_implemented", "unsupported Transfer-Encoding"),
        502: ("bad_gateway", "the model server did not answer (a worker stopped, or the server "
              "is shutting down); quote request id {rid}"),
        503: ("service_unavailable", "the model server is unavailable; quote request id {rid}"),
        504: ("gateway_timeout", f"the model server did not answer within {wait} s "
              f"({ENV_TIMEOUT} + {UPSTREAM_GRACE}); quote request id {{rid}}"),
        505: ("http_version_not_supported", "HTTP version not supported"),
    }


ERROR_PREFIX = "/__sm_front_end_error/"
# nginx statuses without a page of their own: 494 is nginx's "request header too large".
ALIASES = {494: 431}


def connections() -> tuple[int, int | None]:
    """(worker_connections, worker_rlimit_nofile): 4096 connections when the open-file limit
    allows raising it to 8192, else half of what it allows."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= 8192:
        return 4096, 8192
    return max(64, hard // 2 - 16), None


def worker_processes(settings: Settings) -> int:
    """nginx workers: one per two gunicorn workers (at least one, at most one per CPU).

    An nginx worker spends ~95 µs of CPU relaying a ``/ping`` and ~135 µs a post, a gunicorn
    worker ~210 and ~420 µs answering them (``/proc/PID/stat`` at concurrency 8, 2026-12-03):
    one nginx worker keeps up with two to three gunicorn workers. SageMaker runs one gunicorn
    worker per CPU by default, so a single nginx worker capped a 16-CPU instance at what ~3
    of its CPUs answer."""
    return max(1, min((settings.workers + 1) // 2, os.cpu_count() or 1))


def listen_address(settings: Settings) -> str:
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{settings.port}"


# nginx refuses an HTTP/0.9 request other than GET with a 400, in HTTP/0.9: a bare body. A request
# line of two words (no version) is closed unanswered instead, as "location /" does for GET.
HTTP_0_9_UNANSWERED = (
    '            if ($request ~ "^[^ ]+ [^ ]+$") {\n'
    "                return 444;\n"
    "            }\n")


def _error_locations(settings: Settings) -> tuple[list[str], list[str]]:
    pages, locations = [], []
    messages = error_messages(settings)
    for status, (code, message) in messages.items():
        text = message.replace("{rid}", "$sm_request_id")
        body = f'{{"error":"{code}","message":"{text}","request_id":"$sm_request_id"}}'
        if "'" in body or "\\" in body:
            raise ValueError(f"an nginx error body may not hold quotes: {body}")
        # A URI, not a named location: nginx cannot redirect a request whose line it could
        # not parse (400, 414) to a named location. Reached from outside, `internal` gives 404.
        locations.append(
            f"        location = {ERROR_PREFIX}{status} {{\n"
            f"            internal;\n"
            f"            client_max_body_size 0;\n"  # else a 413 page would be a 413 again
            f"            default_type application/json;\n"
            f"            add_header X-Request-Id $sm_request_id always;\n"
            + ("            add_header Allow $sm_allow always;\n" if status == 405 else "")
            + (HTTP_0_9_UNANSWERED if status == 400 else "")
            + f"            return {status} '{body}';\n"
            f"        }}")
    for status in messages:
        pages.append(f"        error_page {status} ={status} {ERROR_PREFIX}{status};")
    for alias, status in ALIASES.items():
        pages.append(f"        error_page {alias} ={status} {ERROR_PREFIX}{status};")
    return pages, locations


def render(settings: Settings, workdir: Path, upstream: Path) -> str:
    """The whole nginx.conf. Paths nginx writes (pid, temporary bodies) are under ``workdir``;
    it logs to stderr only."""
    worker_connections, rlimit = connections()
    # nginx's info level has a line per closed connection: only for DEBUG. What clients do
    # wrong is in the JSON line of each request nginx answers itself.
    level = {"DEBUG": "info", "INFO": "warn", "WARNING": "warn", "ERROR": "error",
             "CRITICAL": "crit"}[settings.log_level]
    codes = {status: code for status, (code, _) in error_messages(settings).items()}
    codes[499] = "client_closed_request"
    codes[444] = "http_0_9_not_answered"
    status_codes = "\n".join(f'        "~^{status}:" {code};'
                             for status, code in sorted(codes.items()))
    pages, locations = _error_locations(settings)
    timeout = settings.client_timeout
    upstream_timeout = settings.timeout + UPSTREAM_GRACE
    body_memory = min(BODY_MEMORY, settings.max_request_bytes)
    main = [
        "# Generated by serving.front_end from the server settings at start-up; not edited.",
        "daemon off;",
        "master_process on;",
        f"worker_processes {worker_processes(settings)};",
        f"worker_shutdown_timeout {settings.graceful_timeout}s;",
        f"pid {workdir}/nginx.pid;",
        f"error_log stderr {level};",
    ]
    if os.geteuid() == 0:  # workers drop root (nginx's default user "nobody" lacks a group here)
        main.append("user nobody nogroup;")
    if rlimit:
        main.append(f"worker_rlimit_nofile {rlimit};")
    return "\n".join(main) + f"""
events {{
    worker_connections {worker_connections};
}}

http {{
    server_tokens off;
    access_log off;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;

    # Slow or idle clients cost an nginx connection for at most these long.
    client_header_timeout {timeout}s;
    client_body_timeout {timeout}s;
    send_timeout {timeout}s;
    keepalive_timeout {settings.keepalive}s;
    client_max_body_size {settings.max_request_bytes};
    client_body_buffer_size {body_memory};
    client_header_buffer_size 1k;
    large_client_header_buffers {HEADER_BUFFERS};

    # A valid request id is echoed (REQUEST_ID_PATTERN); anything else is replaced by nginx's
    # own $request_id (32 hex digits).
    map $http_x_amzn_sagemaker_inference_id $sm_request_id {{
        "~{REQUEST_ID_PATTERN}" $http_x_amzn_sagemaker_inference_id;
        default $request_id;
    }}
    # One JSON line per request nginx answers itself (the app logs the ones it answers).
    # ($upstream_header_time is "-" when gunicorn sent no answer: nginx's own 502/504.)
    map "$upstream_status|$upstream_header_time" $sm_log {{
        "~^\\|" 1;
        "~\\|-$" 1;
        default 0;
    }}
    # nginx's $status is "000" when no answer was sent (the server stopped while a request was
    # in flight, after SERVING_GRACEFUL_TIMEOUT): 0 in the log line, valid JSON.
    map $status $sm_status {{
        "000" 0;
        default $status;
    }}
    map $status $sm_level {{
        "000" ERROR;
        "~^50[0234]" ERROR;
        default INFO;
    }}
    # Nothing sent back: the client left (a body shorter than its Content-Length, a chunked
    # body cut off) or stalled. Logged as a client abort, at INFO.
    map "$status:$bytes_sent" $sm_error {{
        "~^(400|499):0$" client_closed_request;
        "~^408:0$" request_timeout;
        "~^000:" no_answer;
{status_codes}
        default "";
    }}
    # The methods the app allows on its paths (its 405s send the same): nginx itself answers
    # TRACE (and CONNECT) with 405, before any location; elsewhere the app answers 404.
    map $request_uri $sm_allow {{
        "~^(https?://[^/]*)?/invocations([?#]|$)" "OPTIONS, POST";
        "~^(https?://[^/]*)?/(ping|execution-parameters)([?#]|$)" "GET, HEAD, OPTIONS";
        default "";
    }}
    map $time_iso8601 $sm_time {{
        "~^(?<t>.{{19}})" $t;
    }}
    map $msec $sm_ms {{
        "~\\.(?<ms>\\d{{3}})$" $ms;
        default 000;
    }}
    map $request_time $sm_total_ms {{
        "~^0\\.0*(?<ms>[1-9]\\d*)$" $ms;
        "~^(?<s>[1-9]\\d*)\\.(?<ms>\\d{{3}})$" $s$ms;
        default 0;
    }}
    log_format sm_json escape=json '{{"time":"$sm_time.${{sm_ms}}Z","level":"$sm_level",'
        '"logger":"serving.front_end","request_id":"$sm_request_id",'
        '"stage":"{settings.stage}","status":$sm_status,"error":"$sm_error",'
        '"bytes_in":$request_length,"bytes_out":$bytes_sent,"total_ms":$sm_total_ms}}';

    # The workers keep nginx's connections open between requests (serving/keepalive.py).
    upstream sm_model_server {{
        server unix:{upstream};
        keepalive {UPSTREAM_IDLE_CONNECTIONS};
        keepalive_timeout {min(UPSTREAM_IDLE_SECONDS, settings.graceful_timeout)}s;
    }}

    server {{
        listen {listen_address(settings)} backlog=2048;
        server_name _;
        access_log /dev/stderr sm_json if=$sm_log;
{chr(10).join(pages)}

        location / {{
            # HTTP/0.9 (a request line without a version): nginx would answer with a bare body,
            # no status line and no headers; such a request is closed unanswered instead. (Here,
            # not in the server: a request line nginx refused has no protocol either, and its
            # error page must still be answered.)
            if ($server_protocol = "") {{
                return 444;
            }}
            proxy_pass http://sm_model_server;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering on;
            proxy_buffering on;
            proxy_buffer_size 16k;
            proxy_buffers 64 16k;
            proxy_busy_buffers_size 64k;
            proxy_next_upstream off;
            # A client that half-closes after sending its whole request still gets the answer.
            proxy_ignore_client_abort on;
            proxy_connect_timeout 5s;
            proxy_send_timeout {upstream_timeout}s;
            proxy_read_timeout {upstream_timeout}s;
            proxy_set_header Host $http_host;
            proxy_set_header X-Amzn-SageMaker-Inference-Id $sm_request_id;
        }}

{chr(10).join(locations)}
    }}
}}
"""
