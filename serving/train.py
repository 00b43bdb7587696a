"""Train the classifier and the NTM featurizer; write the model artifact and the NTM data.

Command line::

    python -m serving.train --data PATH --model-dir DIR [--output-data-dir DIR]
                            [--test PATH] [--hyperparameters JSON]

With no ``--data`` it follows SageMaker's training contract: hyper-parameters from
``/opt/ml/input/config/hyperparameters.json``, channels ``train`` (and optional ``test``)
under ``/opt/ml/input/data``, the model to ``/opt/ml/model``, NTM data and the evaluation
report to ``/opt/ml/output/data``; on failure ``/opt/ml/output/failure`` and exit code 1.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import MultinomialNB
from tqdm import tqdm

from serving import artifact, data, evaluate, jsondoc, shards
from serving.catalog import Catalog
from serving.classifier import TextClassifier
from serving.cli import Parser
from serving.featurizer import NtmFeaturizer
from serving.hyperparameters import HyperparameterError, Hyperparameters, parse
from serving.model_dir import check_model_dir, empty_dir
from serving.transformers import TextCleaner
from serving.vectorize import from_sklearn

log = logging.getLogger("serving.train")
ENV_SM_ROOT = "SM_ROOT"  # SageMaker's /opt/ml; settable so tests can use a temporary layout
PROBES = artifact.PROBES


def make_cleaner(hp: Hyperparameters, *, lemmatize: bool) -> TextCleaner:
    keep = tuple(h.strip().lower() for h in hp.keep_headers.split(",") if h.strip())
    return TextCleaner(
        skip_lines=hp.skip_lines, headers=hp.headers, keep_headers=keep,
        remove_emails=hp.remove_emails, remove_urls=hp.remove_urls, stopwords=hp.stopwords,
        min_token_len=hp.min_token_len, lemmatize=lemmatize,
    ).fit()


def make_tfidf(hp: Hyperparameters) -> TfidfVectorizer:
    return TfidfVectorizer(
        ngram_range=(1, hp.ngram_max), min_df=hp.min_df, max_df=hp.max_df,
        max_features=hp.max_features or None, sublinear_tf=hp.sublinear_tf, dtype=np.float64,
    )


def clean_all(cleaner: TextCleaner, texts: list[str], what: str) -> list[str]:
    return [cleaner.clean(t) for t in tqdm(texts, desc=f"clean {what}", unit="doc",
                                           mininterval=1.0, disable=None)]


def fit_classifier(hp: Hyperparameters, train: data.Corpus,
                   keep_predictions_of: Sequence[str] = ()) -> TextClassifier:
    """The classifier; float16 weights unless they would change a prediction for one of
    ``keep_predictions_of`` (the test split), then float32 (TextClassifier.from_fitted)."""
    cleaner = make_cleaner(hp, lemmatize=hp.lemmatize)
    cleaned = clean_all(cleaner, train.texts, "train (classifier)")
    tfidf = make_tfidf(hp)
    X = tfidf.fit_transform(cleaned)
    nb = MultinomialNB(alpha=hp.alpha).fit(X, train.labels)
    log.info("classifier: %d documents x %d features, %d non-zeros", *X.shape, X.nnz)
    return TextClassifier.from_fitted(cleaner, from_sklearn(tfidf), nb, train.label_names,
                                      keep_predictions_of)


def fit_featurizer(hp: Hyperparameters, train: data.Corpus) -> tuple[NtmFeaturizer, Any]:
    cleaner = make_cleaner(hp, lemmatize=hp.ntm_lemmatize)
    cleaned = clean_all(cleaner, train.texts, "train (NTM)")
    counts = CountVectorizer(max_features=hp.ntm_vocab_size, max_df=hp.ntm_max_df,
                             min_df=hp.ntm_min_df, stop_words="english", dtype=np.float32)
    X = counts.fit_transform(cleaned)
    return NtmFeaturizer.from_fitted(cleaner, from_sklearn(counts)), X


def write_ntm_data(hp: Hyperparameters, featurizer: NtmFeaturizer, X: Any,
                   catalog: Catalog, out: Path) -> dict[str, Any]:
    """RecordIO shards (train/), vocab.txt (auxiliary/) and the catalog, as NTM expects."""
    ntm = out / "ntm"
    shutil.rmtree(ntm, ignore_errors=True)
    parts = shards.write_sparse_shards(X, ntm / "train", min(hp.ntm_parts, X.shape[0]))
    (ntm / "auxiliary").mkdir(parents=True)
    (ntm / "auxiliary" / "vocab.txt").write_text(
        "".join(f"{w}\n" for w in featurizer.vocabulary), encoding="utf-8")
    catalog.save(ntm / "catalog.jsonl")
    info = {"feature_dim": featurizer.feature_dim, "num_topics": hp.num_topics,
            "documents": X.shape[0], "empty_documents": int((np.diff(X.indptr) == 0).sum()),
            "parts": [p.name for p in parts]}
    (ntm / "ntm_data.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def drop_empty(X: Any, catalog: Catalog) -> tuple[Any, Catalog, np.ndarray]:
    """Documents with no word of the NTM vocabulary leave both NTM's training data and the
    catalog, so row i of the one is still document i of the other (= k-NN label i)."""
    keep = np.flatnonzero(np.diff(X.indptr) > 0)
    kept = Catalog([catalog.ids[i] for i in keep], [catalog.titles[i] for i in keep],
                   [catalog.newsgroups[i] for i in keep])
    return X[keep], kept, keep


def write_probes(X: Any, texts: list[str], catalog: Catalog, keep: np.ndarray, path: Path,
                 count: int = 5) -> int:
    """A few catalog documents' text for the deploy-time self-check (scripts/selfcheck.py):
    each must come back with itself first. Only documents whose word counts no other document
    shares (a cross-post or repost would tie with them), with at least 20 words and at most
    20000 characters, spread over the catalog."""
    rows = [(X.indices[X.indptr[i]:X.indptr[i + 1]].tobytes(),
             X.data[X.indptr[i]:X.indptr[i + 1]].tobytes()) for i in range(X.shape[0])]
    seen: dict[tuple[bytes, bytes], int] = {}
    for row in rows:
        seen[row] = seen.get(row, 0) + 1
    chosen: list[int] = []
    for start in np.linspace(0, X.shape[0], count, endpoint=False).astype(int):
        for i in range(int(start), X.shape[0]):
            if (seen[rows[i]] == 1 and X.data[X.indptr[i]:X.indptr[i + 1]].sum() >= 20
                    and len(texts[keep[i]]) <= 20000 and i not in chosen):
                chosen.append(i)
                break
    with path.open("wb") as fh:
        for i in chosen:
            fh.write(json.dumps({"index": i, "id": catalog.ids[i],
                                 "text": texts[keep[i]]}).encode() + b"\n")
    return len(chosen)


def run(data_path: str, model_dir: Path, output_dir: Path | None, hp: Hyperparameters,
        test_path: str | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    check_model_dir(model_dir)  # before the data is read: refuse early, delete nothing
    splits = data.load_splits(data_path, test_path)
    train, test = splits.train, splits.test
    if test is None:  # hold out a stratified share for the reported figures
        idx = np.arange(len(train))
        try:
            tr_idx, te_idx = train_test_split(idx, test_size=hp.test_fraction,
                                              random_state=hp.seed, stratify=train.labels)
        except ValueError:
            raise data.DataError(
                f"{len(train)} documents in {len(train.label_names)} labels are too few to hold "
                f"out a stratified test share of {hp.test_fraction}: every label needs at least 2 "
                "documents and the test share at least one per label; add documents, raise "
                "test_fraction, or give a separate test split") from None
        train, test = _subset(train, np.sort(tr_idx)), _subset(train, np.sort(te_idx))
    log.info("data: %d train, %d test documents, %d labels from %s", len(train), len(test),
             len(train.label_names), splits.source)

    try:
        classifier = fit_classifier(hp, train, test.texts)
        predicted = classifier.joint_log_likelihood(test.texts).argmax(axis=1)
        featurizer, X_ntm = fit_featurizer(hp, train)
    except ValueError as exc:  # scikit-learn's vocabulary pruning on too little text
        raise data.DataError(
            f"no vocabulary can be built from {len(train)} training documents with these "
            f"settings (min_df={hp.min_df}, max_df={hp.max_df}, ntm_min_df={hp.ntm_min_df}, "
            f"ntm_max_df={hp.ntm_max_df}); add documents or relax those hyper-parameters"
        ) from exc
    catalog = Catalog.from_corpus(train.ids, train.titles,
                                  [train.label_names[i] for i in train.labels])
    n_documents = X_ntm.shape[0]
    X_ntm, catalog, keep = drop_empty(X_ntm, catalog)

    empty_dir(model_dir)  # not rmtree: on SageMaker /opt/ml/model is a mount point
    classifier.save(model_dir / "classifier")
    featurizer.save(model_dir / "ntm")
    catalog.save(model_dir / "catalog.jsonl")
    write_probes(X_ntm, train.texts, catalog, keep, model_dir / PROBES)
    report_dir = (output_dir or model_dir) / "evaluation"
    metrics = evaluate.write_report(test.labels, predicted, train.label_names, report_dir)
    summary = {k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1", "n_test")}
    (model_dir / "metrics.json").write_text(json.dumps(summary, indent=1) + "\n")
    ntm_info = None
    if output_dir is not None:
        ntm_info = write_ntm_data(hp, featurizer, X_ntm, catalog, output_dir)
        ntm_info["empty_documents"] = n_documents - X_ntm.shape[0]
        (output_dir / "ntm" / "ntm_data.json").write_text(json.dumps(ntm_info, indent=1) + "\n")
    artifact.write_manifest(model_dir, extra={
        "training_data": {"source": splits.source, "fingerprint": data.fingerprint(train),
                          "n_train": len(train), "n_test": len(test)},
        "hyperparameters": hp.to_dict(),
        "classes": train.label_names,
        "classifier": {"n_features": classifier.features.n_features},
        "ntm": {"feature_dim": featurizer.feature_dim, "num_topics": hp.num_topics},
        "catalog_size": len(catalog),
        "metrics": summary,
    })
    seconds = time.perf_counter() - started
    log.info("accuracy %.4f, macro-F1 %.4f on %d test documents; %.1f s",
             summary["accuracy"], summary["macro_f1"], len(test), seconds)
    return {"metrics": summary, "seconds": seconds, "ntm": ntm_info}


def _subset(corpus: data.Corpus, idx: np.ndarray) -> data.Corpus:
    return data.Corpus([corpus.texts[i] for i in idx], corpus.labels[idx], corpus.label_names,
                       [corpus.ids[i] for i in idx], [corpus.titles[i] for i in idx])


def sagemaker_hyperparameters(root: Path) -> dict[str, Any]:
    path = root / "input" / "config" / "hyperparameters.json"
    if not path.exists():
        return {}
    try:
        raw = jsondoc.loads(path.read_bytes(), str(path))
    except jsondoc.JSONError as exc:
        raise HyperparameterError(exc.message) from None
    if not isinstance(raw, dict):
        raise HyperparameterError(f"{path}: expected a JSON object")
    return raw


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m serving.train", description=__doc__)
    parser.add_argument("--data", help="20news .tar.gz, folder, CSV/JSONL, or "
                        f"{data.FETCH_SPEC} (default: SageMaker's train channel)")
    parser.add_argument("--test", help="a separate test split (folder or CSV/JSONL)")
    parser.add_argument("--model-dir", type=Path, help="where the model goes")
    parser.add_argument("--output-data-dir", type=Path, help="NTM data and evaluation report")
    parser.add_argument("--hyperparameters", default="{}", help="JSON object")
    parser.add_argument("--preset", choices=("default", "tutorial"),
                        help="shorthand for the hyper-parameter 'preset'")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    sagemaker = args.data is None
    sm_root = Path(os.environ.get(ENV_SM_ROOT, "/opt/ml"))
    failure = sm_root / "output" / "failure"
    try:
        if sagemaker:
            raw = sagemaker_hyperparameters(sm_root)
            channels = sm_root / "input" / "data"
            data_path = str(channels / "train")
            test_dir = channels / "test"
            test_path = str(test_dir) if test_dir.is_dir() and any(test_dir.iterdir()) else None
            model_dir = args.model_dir or sm_root / "model"
            output_dir = args.output_data_dir or sm_root / "output" / "data"
        else:
            try:
                raw = jsondoc.loads(args.hyperparameters, "--hyperparameters")
            except jsondoc.JSONError as exc:
                raise HyperparameterError(exc.message) from None
            if args.model_dir is None:
                parser.error("--model-dir is required with --data")
            data_path, test_path = args.data, args.test
            model_dir, output_dir = args.model_dir, args.output_data_dir
        if args.preset:
            raw = {**raw, "preset": args.preset}
        hp = parse(raw)
        result = run(data_path, model_dir, output_dir, hp, test_path)
        print(json.dumps(result["metrics"]))
        return 0
    except (HyperparameterError, data.DataError, LookupError, OSError, ValueError) as exc:
        message = f"{type(exc).__name__}: {exc}"
        log.error("training failed: %s", message)
        if sagemaker:
            _write_failure(failure, message)
        return 1
    except Exception as exc:  # unexpected: keep the trace in the log and the failure file
        log.exception("training failed")
        if sagemaker:
            _write_failure(failure, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        return 1


def _write_failure(path: Path, message: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(message)
    except OSError:
        log.exception("could not write %s", path)


if __name__ == "__main__":
    sys.exit(main())
