"""Per-request options from ``X-Amzn-SageMaker-Custom-Attributes``.

AWS forwards the header verbatim: "an opaque value ... no more than 1024 visible US-ASCII
characters" (InvokeEndpoint ``CustomAttributes``,
https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html), so
its format is the container's to define. Ours: ``key=value`` items separated by commas or
semicolons, keys case-insensitive, spaces around items, keys and values ignored. Items this
container does not read (other keys, items without ``=``) are ignored: they may be meant for
another container or carry a trace id. The keys it reads are parsed strictly: ASCII digits only,
within their range, given once; a bare ``explain`` or ``top_k`` (no ``=``) is refused too, so a
typo is never silently ignored.

- ``top_k=N`` (1..1000): classes per document (``classify``) or recommendations (``recommend``).
- ``explain=N`` (1..MAX_EXPLAIN): ``classify`` only; the N terms that pushed each document
  towards its label (``serving/explain.py``). Refused by the other stages (400) and with a
  ``text/csv`` answer (406: a CSV row has no place for a list of terms).

The header is not echoed on the response (SageMaker returns it to the client only if the
container sets it; nothing here needs to).
"""

from __future__ import annotations

from dataclasses import dataclass

from serving.errors import BadRequest, NotAcceptable
from serving.mediatypes import TEXT_CSV, MediaType

MAX_TOP_K = 1000
# Fifty terms is more than anyone reads, and it bounds the answer: at most ~50 x 40 bytes of
# JSON per document on top of the prediction.
MAX_EXPLAIN = 50
KEYS = {"top_k": MAX_TOP_K, "explain": MAX_EXPLAIN}
_DIGITS = frozenset("0123456789")


def _whole_number(key: str, value: str) -> int:
    text = value.strip()
    high = KEYS[key]
    if not text or len(text) > 9 or not _DIGITS.issuperset(text):
        raise BadRequest(f"custom attribute {key} must be a whole number (1 to {high}), e.g. "
                         f"{key}=5")
    number = int(text)
    if not 1 <= number <= high:
        raise BadRequest(f"custom attribute {key} must be between 1 and {high}")
    return number


@dataclass(frozen=True)
class Options:
    """What a request asked for; None means the deployment's default (no explanation)."""

    top_k: int | None = None
    explain: int | None = None

    @classmethod
    def parse(cls, header: str | None) -> Options:
        found: dict[str, int] = {}
        if header:
            for item in header.replace(";", ",").split(","):
                key, sep, value = item.partition("=")
                key = key.strip().lower()
                if key not in KEYS:
                    continue  # attributes meant for other containers are ignored
                if not sep:
                    raise BadRequest(f"custom attribute {key} needs a value, e.g. {key}=5")
                if key in found:
                    raise BadRequest(f"custom attribute {key} is given more than once")
                found[key] = _whole_number(key, value)
        return cls(**found)

    def check(self, stage: str, media: MediaType) -> None:
        """Refuse options the stage or the chosen response type cannot honour."""
        if self.explain is None:
            return
        if stage != "classify":
            raise BadRequest(f"custom attribute explain applies to the classify stage only; "
                             f"this is the {stage} stage")
        if media.type == TEXT_CSV:
            raise NotAcceptable("text/csv cannot carry explanations (custom attribute "
                                "explain): send Accept: application/json or "
                                "application/jsonlines, or drop explain")
