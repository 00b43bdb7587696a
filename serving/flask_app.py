"""The Flask app behind the hot routes (serving/hot_routes.py): every path and method they do
not answer, with the same JSON errors (404, 405 with ``Allow``, HEAD, OPTIONS, a request-id-only
500), and views for the hot routes' own paths that give their answers.

A server imports this module (and Flask) only when the first such request comes
(``serving.app.create_wsgi``); ``serving.app.create_app`` builds the app at once (tests, Flask's
test client).
"""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from serving import logs
from serving.hot_routes import (
    JSON_TYPE,
    HotRoutes,
    error_body,
    execution_parameters,
    request_id_of,
)

access_log = logging.getLogger(logs.ACCESS)
log = logging.getLogger("serving.app")


def _error(status: int, code: str, message: str, request_id: str) -> Response:
    return Response(error_body(code, message, request_id), status=status,
                    content_type=JSON_TYPE)


def _request_id() -> str:
    """SageMaker's inference id when the client sent one, else a fresh id."""
    return request_id_of(request.environ)


def _with_id(response: Response, request_id: str) -> Response:
    response.headers["X-Request-Id"] = request_id
    return response


def create_app(hot: HotRoutes) -> Flask:
    """The Flask app of ``hot``'s server; ``hot`` in front of it (``app.wsgi_app``), Flask's own
    dispatch behind ``hot`` (``hot.flask_app``)."""
    app = Flask("serving")
    stage_name = hot.stage_name
    execution_params_body = orjson.dumps(execution_parameters(hot.server.settings))
    hot.flask_app = app.wsgi_app
    app.wsgi_app = hot  # type: ignore[method-assign]

    # The hot routes stay registered in Flask, so its routing answers their other methods (405
    # with Allow, HEAD, OPTIONS) as before; a request reaching these views gets the same answer.
    @app.get("/ping")
    def ping() -> Response:
        status, headers, body = hot.ping()
        return Response(body, status=status, headers=headers)

    @app.get("/execution-parameters")
    def execution_params() -> Response:
        return Response(execution_params_body, status=200, content_type=JSON_TYPE)

    @app.post("/invocations")
    def invocations() -> Response:
        status, headers, body = hot.invocation(request.environ)
        return Response(body, status=status, headers=headers)

    @app.after_request
    def options(response: Response) -> Response:
        """Flask's automatic OPTIONS answer (an empty ``text/html`` 200 with ``Allow``) as
        204 No Content with its ``Allow`` and the request id, as every other answer has."""
        if request.method == "OPTIONS" and response.status_code == 200:
            response.status_code = 204
            response.set_data(b"")
            del response.headers["Content-Type"]
            del response.headers["Content-Length"]
            response.headers["X-Request-Id"] = _request_id()
            response.headers["Allow"] = ", ".join(sorted(response.allow))
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = {404: "the path is not one of /ping, /invocations, /execution-parameters",
                   405: "method not allowed on this path"}.get(status, exc.name)
        code = exc.name.lower().replace(" ", "_")
        request_id = _request_id()
        response = _with_id(_error(status, code, message, request_id), request_id)
        allowed = getattr(exc, "valid_methods", None)
        if status == 405 and allowed:
            response.headers["Allow"] = ", ".join(sorted(allowed))  # werkzeug's is a set
        logs.log_request(access_log, {"request_id": request_id, "stage": stage_name,
                                      "status": status, "error": code,
                                      "method": request.method, "path": request.path[:200]})
        return response

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> Response:
        request_id = _request_id()
        log.exception("unhandled error %s", request_id)
        return _with_id(_error(500, "internal_error",
                               f"internal error; quote request id {request_id}", request_id),
                        request_id)

    return app
