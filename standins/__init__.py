"""Local STAND-INS for AWS SageMaker's built-in NTM and k-NN algorithms. NOT AWS code.

AWS's built-in algorithm images cannot run offline, so the recommendation pipeline is tested
against two small containers that follow the built-ins' documented inference contract
(``shared/docs/sagemaker-contract.md`` §1, §2, §4-§6) and nothing more:

- ``ntm``: word counts → ``topic_weights`` (document-topic proportions that sum to 1), from a real
  topic model fitted with scikit-learn (NMF on sublinear TF-IDF by default, or LDA);
- ``knn``: topic vectors → nearest training documents (cosine by default), labels = training
  document indices stored as float32, like the real k-NN.

Their models, quality and error messages are this project's own; only the wire formats and the
``serve`` contract are meant to match AWS's.  Modules: :mod:`standins.topics` (NTM stand-in
model), :mod:`standins.knn` (k-NN index), :mod:`standins.train` (training API and CLI),
:mod:`standins.server` (the ``serve`` HTTP server, one role per image).
"""

from __future__ import annotations

NOTICE = "stand-in for AWS's built-in {algorithm}; not AWS code"
__all__ = ["NOTICE"]
