"""Command-line plumbing shared by the AWS scripts: common options, inputs, exit codes.

Every script takes --region, --profile and --dry-run, answers --help, and turns expected failures
(no credentials, no region, no role, no image, an AWS error) into one ``error:`` line on stderr
and a non-zero exit: 2 for what the caller must fix first, 1 for a failed operation.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from scripts.aws_common import (
    DRY_ACCOUNT,
    NO_CREDENTIALS,
    NO_REGION,
    Aws,
    ScriptError,
    is_not_found,
)
from serving.cli import Parser

NO_ROLE = "no SageMaker execution role: pass --role ARN|NAME or set SAGEMAKER_ROLE_ARN"
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}|<account-id>):role/[\w+=,.@/-]+$")


def resolve_role(aws: Aws, role: str | None) -> str:
    """An execution role ARN from --role (ARN or role name) or $SAGEMAKER_ROLE_ARN."""
    role = (role or os.environ.get("SAGEMAKER_ROLE_ARN", "")).strip()
    if not role:
        raise ScriptError(NO_ROLE, 2)
    if role.startswith("arn:"):
        if not _ROLE_ARN.match(role):
            raise ScriptError(f"not an IAM role ARN: {role!r}", 2)
        return role
    try:
        return str(aws.client("iam").get_role(RoleName=role)["Role"]["Arn"])
    except ClientError as exc:
        if not is_not_found(exc):
            raise
        if aws.dry_run:
            return f"arn:{aws.partition}:iam::{DRY_ACCOUNT}:role/{role}"
        raise ScriptError(f"IAM role {role!r} not found in this account", 2) from None


def require_image(image: str | None) -> str:
    image = (image or os.environ.get("IMAGE_URI", "")).strip()
    if not image:
        raise ScriptError(
            "no image: pass --image URI (as printed by scripts/ecr_push.py) or set IMAGE_URI", 2
        )
    if not re.match(r"^[\w.-]+(:\d+)?/[\w./-]+(:[\w.-]+|@sha256:[0-9a-f]{64})?$", image):
        raise ScriptError(f"not an image URI: {image!r} (expected HOST/REPOSITORY[:TAG])", 2)
    return image


def common_parent() -> argparse.ArgumentParser:
    """--region / --profile / --dry-run, shared by every script and sub-command."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("AWS")
    group.add_argument("--region", help="AWS region (default: $AWS_REGION / profile)")
    group.add_argument("--profile", help="AWS named profile (default: $AWS_PROFILE)")
    group.add_argument(
        "--dry-run",
        action="store_true",
        help="print the API calls and commands this would make, and make none",
    )
    return parent


def make_parser(doc: str | None, with_common: bool = True) -> argparse.ArgumentParser:
    lines = (doc or "").strip().splitlines()
    return Parser(
        description=lines[0] if lines else None,
        epilog="\n".join(lines[1:]).strip() or None,
        parents=[common_parent()] if with_common else [],
    )


def run_main(
    parser: argparse.ArgumentParser,
    handler: Callable[[argparse.Namespace], int | None],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse, run, and turn every expected failure into a message and a non-zero exit code."""
    args = parser.parse_args(argv)
    try:
        return handler(args) or 0
    except ScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except NoCredentialsError:
        print(f"error: {NO_CREDENTIALS}", file=sys.stderr)
        return 2
    except NoRegionError:
        print(f"error: {NO_REGION}", file=sys.stderr)
        return 2
    except EndpointConnectionError as exc:
        print(f"error: cannot reach {exc.kwargs.get('endpoint_url')}: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(
            f"error: AWS {exc.operation_name} failed: {error.get('Code')}: {error.get('Message')}",
            file=sys.stderr,
        )
        return 1
    except BotoCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
