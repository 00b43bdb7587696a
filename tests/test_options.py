"""serving/options.py: X-Amzn-SageMaker-Custom-Attributes parsed strictly for our keys."""

from __future__ import annotations

import pytest

from serving.errors import BadRequest, NotAcceptable
from serving.mediatypes import JSON, JSONLINES, TEXT_CSV, MediaType
from serving.options import MAX_EXPLAIN, Options


@pytest.mark.parametrize("header, want", [
    (None, Options()),
    ("", Options()),
    ("explain=5", Options(explain=5)),
    (" Explain = 7 ; top_k=2", Options(top_k=2, explain=7)),
    ("trace=abc,explain=1,other", Options(explain=1)),
    ("top_k=3", Options(top_k=3)),
    (f"explain={MAX_EXPLAIN}", Options(explain=MAX_EXPLAIN)),
    ("explainer=x, my_explain=9", Options()),  # not our keys
])
def test_parse(header: str | None, want: Options) -> None:
    assert Options.parse(header) == want


@pytest.mark.parametrize("header, words", [
    ("explain=0", "between 1 and 50"),
    (f"explain={MAX_EXPLAIN + 1}", "between 1 and 50"),
    ("explain=", "whole number"),
    ("explain=five", "whole number"),
    ("explain=-3", "whole number"),
    ("explain=+3", "whole number"),
    ("explain=2.5", "whole number"),
    ("explain=1e1", "whole number"),
    ("explain=\u0665", "whole number"),  # Arabic-Indic five: int() would take it
    ("explain=99999999999999999999", "whole number"),
    ("explain", "needs a value"),
    ("explain=2,explain=3", "more than once"),
    ("top_k=1;TOP_K=2", "more than once"),
    ("top_k=lots", "whole number"),
    ("top_k=1001", "between 1 and 1000"),
])
def test_bad_values(header: str, words: str) -> None:
    with pytest.raises(BadRequest) as err:
        Options.parse(header)
    assert words in err.value.message


def test_check_by_stage_and_type() -> None:
    explain = Options(explain=3)
    for media in (MediaType(JSON), MediaType(JSONLINES)):
        explain.check("classify", media)
        Options(top_k=2).check("recommend", media)
    with pytest.raises(NotAcceptable, match="text/csv cannot carry explanations"):
        explain.check("classify", MediaType(TEXT_CSV))
    Options().check("classify", MediaType(TEXT_CSV))
    for stage in ("ntm-features", "topics-to-knn", "recommend"):
        with pytest.raises(BadRequest, match="classify stage only"):
            explain.check(stage, MediaType(JSON))
