"""Registry accounts of SageMaker's built-in NTM and k-NN images, per region.

Copied from the SageMaker Python SDK (aws/sagemaker-python-sdk), not guessed: the "1" version's
registries of sagemaker-core/src/sagemaker/core/image_uri_config/ntm.json and knn.json at commit
a24812666d258d9d19c9a82d0c9385ca0bd3ba01 (2026-08-21, the newest we could read; V3 moved them
there from src/sagemaker/image_uri_config/, whose last versions, at
9d4ef0ec11db47d98a85ab79707bae23fad389a2, "update image_uri_configs 09-10-2024", hold the same
tables). Both list the same 37 regions with the same accounts (tests check every NTM region
resolves a k-NN image). A region missing here: pass --ntm-image / --knn-image explicitly.

Image URI: <account>.dkr.ecr.<region>.<dns suffix>/<repository>:1, the DNS suffix taken from
botocore's partition table (amazonaws.com, amazonaws.com.cn, c2s.ic.gov, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.aws_common import ScriptError, dns_suffix
from serving.cli import Parser

NTM_REGISTRIES: dict[str, str] = {  # ntm.json's "1" registries
    "af-south-1": "455444449433",
    "ap-east-1": "286214385809",
    "ap-northeast-1": "351501993468",
    "ap-northeast-2": "835164637446",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "991648021394",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "475088953585",
    "ap-southeast-2": "712309505854",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "469771592824",
    "ca-west-1": "190319476487",
    "cn-north-1": "390948362332",
    "cn-northwest-1": "387376663083",
    "eu-central-1": "664544806723",
    "eu-central-2": "680994064768",
    "eu-north-1": "669576153137",
    "eu-south-1": "257386234256",
    "eu-south-2": "104374241257",
    "eu-west-1": "438346466558",
    "eu-west-2": "644912444149",
    "eu-west-3": "749696950732",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "249704162688",
    "sa-east-1": "855470959533",
    "us-east-1": "382416733822",
    "us-east-2": "404615174143",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "226302683700",
    "us-iso-east-1": "490574956308",
    "us-isob-east-1": "765400339828",
    "us-isof-east-1": "108575199400",
    "us-isof-south-1": "124985052026",
    "us-west-1": "632365934929",
    "us-west-2": "174872318107",
}

# The SDK's knn.json lists exactly the same regions and accounts (SageMaker's first-party
# algorithm registries are shared): one table, two names, so a region added to one is in both.
KNN_REGISTRIES: dict[str, str] = NTM_REGISTRIES

REGISTRIES = {"ntm": NTM_REGISTRIES, "knn": KNN_REGISTRIES}


def image_uri(algorithm: str, region: str, version: str = "1") -> str:
    """The built-in algorithm image for a region, e.g. image_uri("ntm", "us-east-1")."""
    table = REGISTRIES.get(algorithm)
    if table is None:
        raise ScriptError(f"unknown built-in algorithm {algorithm!r} (ntm or knn)", 2)
    account = table.get(region)
    if account is None:
        raise ScriptError(
            f"no {algorithm} image known for region {region!r} (SDK v2 table lists "
            f"{len(table)} regions): pass --{algorithm}-image explicitly",
            2,
        )
    return f"{account}.dkr.ecr.{region}.{dns_suffix(region)}/{algorithm}:{version}"


def main(argv: list[str] | None = None) -> int:

    parser = Parser(description="Print built-in NTM / k-NN image URIs.")
    parser.add_argument("algorithm", nargs="*", metavar="ntm|knn", help="default: both")
    parser.add_argument("--region", help="one region (default: every region in the table)")
    args = parser.parse_args(argv)
    if set(args.algorithm) - set(REGISTRIES):
        parser.error("algorithms are ntm and knn")
    for algo in args.algorithm or ["ntm", "knn"]:
        for region in [args.region] if args.region else sorted(REGISTRIES[algo]):
            try:
                print(image_uri(algo, region))
            except ScriptError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
