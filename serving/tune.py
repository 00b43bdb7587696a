"""Choose the classifier's hyper-parameters by stratified k-fold cross-validation on the
train split only (the test split is never touched here).

    python -m serving.tune --data ../shared/data/20news-bydate.tar.gz [--folds 5] [--out FILE]

Text is cleaned once per cleaner setting; TF-IDF is refitted inside every fold (a Pipeline),
so no fold sees its held-out documents' document frequencies.
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline

from serving import data
from serving.cli import Parser
from serving.hyperparameters import parse
from serving.train import make_cleaner, make_tfidf

# Round 1 (docs/tuning-round1.json) searched lemmatize x alpha {0.01..0.05} x min_df {1, 2} x
# max_features {300k, None}: min_df=1 and small alpha won, lemmatization made no difference
# beyond noise, and the uncapped vocabulary (974k terms) won by +0.004. Round 2 (this grid)
# searches within the serving constraints: no WordNet on the classify path (3 s start-up
# target) and at most 700k terms (250 MB PSS target for 2 workers; see README).
ROUNDS = {
    "1": {"lemmatize": (True, False), "grid": {
        "nb__alpha": [0.01, 0.02, 0.03, 0.05], "tfidf__min_df": [1, 2],
        "tfidf__max_features": [300_000, None]}},
    "2": {"lemmatize": (False,), "grid": {
        "nb__alpha": [0.005, 0.01, 0.02], "tfidf__min_df": [1],
        "tfidf__max_features": [300_000, 500_000, 700_000]}},
}


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m serving.tune", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--round", choices=sorted(ROUNDS), default="2")
    parser.add_argument("--out", type=Path, help="default docs/tuning-round<N>.json")
    args = parser.parse_args(argv)
    train = data.load_splits(args.data).train
    plan = ROUNDS[args.round]
    grid = plan["grid"]
    out = args.out or Path(f"docs/tuning-round{args.round}.json")
    results = []
    for lemmatize in plan["lemmatize"]:
        hp = parse({"lemmatize": lemmatize})
        cleaner = make_cleaner(hp, lemmatize=lemmatize)
        texts = np.asarray([cleaner.clean(t) for t in train.texts], dtype=object)
        pipe = Pipeline([("tfidf", make_tfidf(hp)), ("nb", MultinomialNB())])
        cv = StratifiedKFold(args.folds, shuffle=True, random_state=0)
        started = time.perf_counter()
        search = GridSearchCV(pipe, grid, cv=cv, scoring="accuracy", n_jobs=1, refit=False)
        search.fit(texts, train.labels)
        for params, mean, std in zip(search.cv_results_["params"],
                                     search.cv_results_["mean_test_score"],
                                     search.cv_results_["std_test_score"], strict=True):
            results.append({"lemmatize": lemmatize, **params,
                            "cv_accuracy": round(float(mean), 5), "cv_std": round(float(std), 5)})
        print(f"lemmatize={lemmatize}: {time.perf_counter() - started:.0f} s", flush=True)
    results.sort(key=lambda r: -r["cv_accuracy"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"round": args.round, "folds": args.folds, "grid": grid,
                               "best": results[0], "results": results}, indent=1) + "\n")
    for row in itertools.islice(results, 8):
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
