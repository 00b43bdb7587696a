"""Run in a fresh interpreter by tests/test_lean_scipy.py; prints one JSON object.

    python -m tests.lean_scipy_probe lean|plain MODEL_DIR

``lean``: serving as it imports itself (serving.app first, hence serving.lean_scipy);
``plain``: ``import scipy.sparse`` first, so scipy copies numpy's namespace as it does without
serving.lean_scipy (which then changes nothing). Then, in both: a set of the scipy.sparse
operations serving uses runs, and every stage of the model in MODEL_DIR answers every request
type x answer type it takes (plus ``explain``, the Flask routes and an error). The output holds
digests of every result and answer, the modules imported before the ntm-features stage (see
``answers``) and before anything resolves a lazy name, numpy's ``__all__``/``dir()``, and a
description of every name of scipy's copy of numpy's namespace. No pytest here: it would import
modules of its own.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
from typing import Any

MODE = sys.argv[1]
if MODE == "plain":
    import scipy.sparse  # noqa: F401
elif MODE != "lean":
    raise SystemExit(f"mode must be lean or plain, not {MODE!r}")

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from serving.app import Server, create_app  # noqa: E402
from serving.artifact import Model  # noqa: E402
from serving.config import Settings  # noqa: E402
from serving.errors import ServingError  # noqa: E402
from serving.formats import encode_knn_output  # noqa: E402
from serving.mediatypes import parse_content_type  # noqa: E402
from serving.recordio import encode_dense_rows  # noqa: E402

DOCS = ["The shuttle launch reached orbit, NASA said.",
        "My car engine needs new brake pads, says the dealer"]


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bodies(model: Model) -> dict[str, bytes]:
    """One request body per content type any stage reads."""
    topics = np.random.default_rng(0).dirichlet(np.ones(model.num_topics), 3).astype(np.float32)
    npy = io.BytesIO()
    np.save(npy, topics)
    labels = np.array([[3, 1, 7], [0, 2, 5]], dtype=np.float32)
    distances = np.array([[0.3, 0.1, 0.2], [0.05, 0.5, 0.6]], dtype=np.float32)
    knn = [{"predicted_label": float(lab[0]), "labels": lab.tolist(), "distances": d.tolist()}
           for lab, d in zip(labels, distances, strict=True)]
    return {
        "text/plain": DOCS[0].encode(),
        "text/csv": "".join(f'"{d}"\r\n' for d in DOCS).encode(),
        "application/json text": orjson.dumps({"instances": DOCS}),
        "application/jsonlines text": b"".join(orjson.dumps(d) + b"\n" for d in DOCS),
        "application/json topics": orjson.dumps(
            {"predictions": [{"topic_weights": w.tolist()} for w in topics]}),
        "application/jsonlines topics": b"".join(
            orjson.dumps({"topic_weights": w.tolist()}) + b"\n" for w in topics),
        "application/x-recordio-protobuf topics": encode_dense_rows(
            topics, key="topic_weights", where="label"),
        "application/x-npy topics": npy.getvalue(),
        "application/json knn": orjson.dumps({"predictions": knn}),
        "application/jsonlines knn": b"".join(orjson.dumps(r) + b"\n" for r in knn),
        "application/x-recordio-protobuf knn": encode_knn_output(
            labels[:, 0], labels, distances,
            parse_content_type("application/x-recordio-protobuf; verbose=true")),
    }


def body_for(stage: str, content_type: str, table: dict[str, bytes]) -> bytes:
    kind = {"topics-to-knn": "topics", "recommend": "knn"}.get(stage, "text")
    return table.get(content_type) or table[f"{content_type} {kind}"]


def answers(model: Model, settings: Settings) -> tuple[dict[str, str], list[str]]:
    """Digests of every answer, and the modules imported before the ntm-features stage (whose
    WordNet lemmatizer imports NLTK, which imports scipy.stats, scikit-learn and with them
    numpy.ma, numpy.testing, ...)."""
    table = bodies(model)
    out: dict[str, str] = {}
    modules: list[str] = []
    for stage_name in ("classify", "topics-to-knn", "recommend", "ntm-features"):
        if stage_name == "ntm-features":
            modules = sorted(sys.modules)
        server = Server(model, settings.replace(stage=stage_name))
        server.warm_up()
        stage = server.stage
        accepts = [*stage.output_types, *(["application/json; sparse=true"]
                                          if stage_name == "ntm-features" else [])]
        for content_type in stage.input_types:
            for accept in accepts:
                key = f"{stage_name} {content_type} -> {accept}"
                try:
                    body, media, count = server.invoke(
                        body_for(stage_name, content_type, table), content_type, accept, None)
                    out[key] = f"{media} {count} {digest(body)}"
                except ServingError as exc:  # the same refusal in both modes counts as equal
                    out[key] = f"{type(exc).__name__}: {exc}"
        if stage_name == "classify":
            body, _, _ = server.invoke(table["application/json text"], "application/json",
                                       None, "explain=3")
            out["classify explain"] = digest(body)
            client = create_app(server).test_client()
            for method, path in (("GET", "/ping"), ("GET", "/execution-parameters"),
                                 ("GET", "/nowhere"), ("PUT", "/ping")):
                response = client.open(path, method=method,
                                       headers={"X-Amzn-SageMaker-Inference-Id": "probe"})
                out[f"{method} {path}"] = f"{response.status_code} {digest(response.data)}"
            bad = client.post("/invocations", data=b"{", content_type="application/json",
                              headers={"X-Amzn-SageMaker-Inference-Id": "probe"})
            out["POST bad json"] = f"{bad.status_code} {digest(bad.data)}"
    return out, modules


def sparse_ops() -> dict[str, str]:
    """The scipy.sparse operations serving's modules use, on a fixed matrix."""
    import scipy.sparse as sp  # here: in "lean" mode serving.app must import scipy first

    rng = np.random.default_rng(1)
    rows, cols = rng.integers(0, 50, 400), rng.integers(0, 300, 400)
    values = rng.random(400).astype(np.float32)
    X = sp.csr_matrix((values, (rows, cols)), shape=(50, 300))  # duplicates summed
    Y = sp.csr_array((values, cols, np.linspace(0, 400, 51).astype(np.int64)), shape=(50, 300))
    Z = X.copy()
    Z.data[::3] = 0
    Z.eliminate_zeros()
    W = sp.csr_matrix((values, (rows, cols)), shape=(50, 300))
    W.sum_duplicates()
    results = {
        "csr": X, "csr_array": Y, "eliminate_zeros": Z, "sum_duplicates": W,
        "astype": X.astype(np.float64), "multiply": X.multiply(X),
        "scaled rows": sp.csr_matrix(X.multiply(1.0 / (X.sum(axis=1) + 1.0))),
        "vstack": sp.vstack([X, Y]).tocsr(), "tocoo": X.tocoo().tocsr(),
    }
    out = {name: digest(m.data.tobytes() + m.indices.tobytes() + m.indptr.tobytes())
           for name, m in results.items()}
    out["sum axis 1"] = digest(np.asarray(X.sum(axis=1)).tobytes())
    out["toarray"] = digest(X.toarray().tobytes())
    out["matmul"] = digest((X @ rng.random((300, 4))).tobytes())
    out["issparse"] = str(sp.issparse(X) and not sp.issparse(X.toarray()))
    return out


def describe(value: Any) -> str:
    if type(value).__name__ == "module":
        return f"module {value.__name__}"
    qualname = getattr(value, "__qualname__", None)
    if qualname is not None and not isinstance(value, np.generic):
        return f"{type(value).__name__} {getattr(value, '__module__', None)}.{qualname}"
    return f"{type(value).__name__} {re.sub(' at 0x[0-9a-f]+', '', repr(value))}"


def main() -> None:
    model_dir = sys.argv[2]
    model = Model.load(model_dir)
    result: dict[str, Any] = {"sparse_ops": sparse_ops()}
    result["answers"], result["modules"] = answers(
        model, Settings.from_env().replace(model_dir=model_dir))
    result["numpy_all"] = sorted(np.__all__)
    result["numpy_dir"] = sorted(dir(np))
    result["numpy_dir_function"] = f"{np.__dir__.__module__}.{np.__dir__.__qualname__}"
    namespace = sys.modules["scipy._lib.array_api_compat.numpy"]
    result["namespace_all"] = list(namespace.__all__)
    result["namespace_dir"] = sorted(dir(namespace))
    result["namespace"] = {name: describe(getattr(namespace, name))
                           for name in sorted(set(namespace.__all__) | set(dir(namespace)))}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
