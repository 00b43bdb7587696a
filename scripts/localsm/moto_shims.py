"""Run moto's server, plus shims for the control-plane calls moto 5.2.1 does not implement.

    python scripts/localsm/moto_shims.py --host 127.0.0.1 --port 5000

Started by ``scripts/localsm/aws.py``; takes moto_server's own options. Transform jobs:
see scripts/localsm/moto_transform.py (validation, StopTransformJob, a runner's status
updates). The other shim:

- ``sagemaker:UpdateEndpoint`` (moto answers HTTP 500 "not implemented"): points the endpoint at
  the new endpoint config and its variants, InService at once like every moto endpoint. Real
  SageMaker keeps the old fleet serving while the new one starts, which no emulator shows.

Nothing else in moto changes: ``InferenceExecutionConfig`` is still dropped, training jobs (and
transform jobs while no runtime is attached) still complete at once without running anything,
``invoke_endpoint`` still answers canned data.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parents[2])  # the repository, not localsm/


def apply() -> None:
    """Add the missing calls to moto's SageMaker backend and response handler (idempotent)."""
    from moto.core.responses import ActionResult
    from moto.core.utils import utcnow
    from moto.sagemaker import models, responses

    from scripts.localsm import moto_transform

    moto_transform.apply()
    backend_cls: Any = models.SageMakerModelBackend
    if hasattr(backend_cls, "update_endpoint"):
        return

    def update_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str) -> Any:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = models.FakeEndpoint.arn_formatter(
                endpoint_name, self.account_id, self.region_name
            )
            raise models.ValidationError(message=f"Could not find endpoint '{arn}'.")
        config = self.describe_endpoint_config(endpoint_config_name)  # raises when missing
        endpoint.endpoint_config_name = endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(
            config["ProductionVariants"]
        )
        endpoint.data_capture_config = config.get("DataCaptureConfig")
        endpoint.last_modified_time = utcnow()
        return endpoint

    def update_endpoint_action(self: Any) -> Any:
        endpoint = self.sagemaker_backend.update_endpoint(
            endpoint_name=self._get_param("EndpointName"),
            endpoint_config_name=self._get_param("EndpointConfigName"),
        )
        return ActionResult({"EndpointArn": endpoint.arn})

    backend_cls.update_endpoint = update_endpoint
    responses_cls: Any = responses.SageMakerResponse
    responses_cls.update_endpoint = update_endpoint_action


def main(argv: list[str] | None = None) -> None:
    apply()
    from moto.server import main as moto_main

    moto_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
