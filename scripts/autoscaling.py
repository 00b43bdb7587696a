"""Application Auto Scaling for SageMaker endpoint variants (target tracking on invocations).

Resource ``endpoint/<endpoint>/variant/<variant>``, dimension
``sagemaker:variant:DesiredInstanceCount``, metric ``SageMakerVariantInvocationsPerInstance``
(invocations per instance per minute). Register and put are upserts, so repeating is harmless.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.aws_common import Aws

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"


def resource_id(endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def _ids(endpoint: str, variant: str) -> dict[str, str]:
    return {
        "ServiceNamespace": NAMESPACE,
        "ResourceId": resource_id(endpoint, variant),
        "ScalableDimension": DIMENSION,
    }


def register(
    aws: Aws,
    endpoint: str,
    variant: str,
    min_instances: int,
    max_instances: int,
    target: float,
    scale_in_cooldown: int = 300,
    scale_out_cooldown: int = 60,
) -> str:
    """Register the variant and put a target-tracking policy; returns the policy name."""
    aas = aws.client("application-autoscaling")
    ids = _ids(endpoint, variant)
    aas.register_scalable_target(**ids, MinCapacity=min_instances, MaxCapacity=max_instances)
    name = f"{endpoint}-{variant}-invocations"
    aas.put_scaling_policy(
        PolicyName=name,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(target),
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleInCooldown": scale_in_cooldown,
            "ScaleOutCooldown": scale_out_cooldown,
        },
        **ids,
    )
    aws.note(f"{ids['ResourceId']}: {min_instances}..{max_instances} instances, {target}/min")
    return name


def remove(aws: Aws, endpoint: str, variants: list[str]) -> list[dict[str, Any]]:
    """Delete the policies and deregister each variant; returns what was there (to restore)."""
    aas = aws.client("application-autoscaling")
    saved: list[dict[str, Any]] = []
    for variant in variants:
        ids = _ids(endpoint, variant)
        targets = aas.describe_scalable_targets(
            ServiceNamespace=NAMESPACE, ResourceIds=[ids["ResourceId"]], ScalableDimension=DIMENSION
        ).get("ScalableTargets", [])
        if not targets:
            continue
        policies = aas.describe_scaling_policies(**ids).get("ScalingPolicies", [])
        for policy in policies:
            aas.delete_scaling_policy(PolicyName=policy["PolicyName"], **ids)
        aas.deregister_scalable_target(**ids)
        aws.note(f"{ids['ResourceId']}: scaling removed")
        saved.append({"target": targets[0], "policies": policies})
    return saved


def suspend_scaling(aws: Aws, endpoint: str, desc: dict[str, Any]) -> list[dict[str, Any]]:
    variants = [v["VariantName"] for v in desc.get("ProductionVariants", [])]
    return remove(aws, endpoint, variants)


def restore_scaling(aws: Aws, saved: list[dict[str, Any]]) -> None:
    aas = aws.client("application-autoscaling")
    for item in saved:
        target = item["target"]
        ids = {k: target[k] for k in ("ServiceNamespace", "ResourceId", "ScalableDimension")}
        aas.register_scalable_target(
            **ids, MinCapacity=target["MinCapacity"], MaxCapacity=target["MaxCapacity"]
        )
        for policy in item["policies"]:
            extra = {
                key: policy[key]
                for key in (
                    "TargetTrackingScalingPolicyConfiguration",
                    "StepScalingPolicyConfiguration",
                )
                if key in policy
            }
            aas.put_scaling_policy(
                PolicyName=policy["PolicyName"], PolicyType=policy["PolicyType"], **ids, **extra
            )
        aws.note(f"{ids['ResourceId']}: scaling restored")
