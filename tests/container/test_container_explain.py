"""``explain=N`` in the image: the explanation answer as SageMaker hosting would get it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.docker

DOC = ("From: pilot@example.edu\nSubject: shuttle launch orbit\n\n"
       "The nasa shuttle launch put the satellite in orbit; the rocket mission went to the moon.\n")
ATTR = "X-Amzn-SageMaker-Custom-Attributes"


def test_explain_in_the_image(serve: Callable[..., Any]) -> None:
    served = serve()
    response = served.post(DOC, "text/plain", "application/json", **{ATTR: "explain=3"})
    assert response.status_code == 200, response.text
    prediction = response.json()["predictions"][0]
    assert prediction["label"] == "sci.space"
    explanation = prediction["explanation"]
    assert explanation["versus"] == prediction["top_k"][1]["label"]
    terms = explanation["terms"]
    assert len(terms) == 3 and all(t["weight"] > 0 for t in terms)
    words = set(DOC.lower().replace(";", " ").replace(".", " ").split())
    assert all(set(t["term"].split(" ")) <= words for t in terms)
    refused = served.post(DOC, "text/plain", "text/csv", **{ATTR: "explain=3"})
    assert refused.status_code == 406 and "text/csv" in refused.json()["message"]
    bad = served.post(DOC, "text/plain", "application/json", **{ATTR: "explain=0"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_request"
