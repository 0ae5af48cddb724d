"""Reward heads of the A/B and λ audits on frozen text features (§3.2): a ridge regression of the observed outcome
(the *observational* head) and a pairwise logistic regression on the difference of two variants' features (the
*experimental* head), each over a grid of L2 strengths λ, and how well a head's scores rank held-out pairs
(ROC AUC with both orientations of every pair, so the curve is symmetric and AUC = the share of pairs ranked
right, ties counting half).

Both objectives are "sum of losses + λ·penalty": ridge minimises Σ(y − Xw)² + λ‖w‖² (scikit-learn's `Ridge`,
alpha = λ), the logistic head Σ log-loss + ½λ‖w‖² (scikit-learn's `LogisticRegression`, C = 1/λ, no intercept:
a pair's order must not matter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import DeconfoundError

DEFAULT_GRID = tuple(float(x) for x in np.logspace(-2, 5, 15))
EMBEDDINGS = ("minilm", "tfidf")


def check_grid(grid: Sequence[float]) -> list[float]:
    """The λ grid as sorted floats; one clear sentence when it is empty or holds a value that is not positive."""
    try:
        values = [float(x) for x in grid]
    except (TypeError, ValueError):
        raise DeconfoundError(f"the λ grid must be numbers (got {list(grid)!r})") from None
    if not values:
        raise DeconfoundError("the λ grid is empty: give at least one positive value, e.g. 0.1,1,10,100")
    bad = [x for x in values if not np.isfinite(x) or x <= 0]
    if bad:
        raise DeconfoundError(f"every λ in the grid must be positive (got {', '.join(f'{x:g}' for x in bad)}): "
                              "λ is an L2 penalty strength, e.g. 0.1,1,10,100")
    return sorted(set(values))


def parse_grid(text: str | None) -> list[float] | None:
    """A grid typed as "0.1,1,10" or "logspace:-2:5:15" (None: the default grid)."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    if text.startswith("logspace:"):
        try:
            lo, hi, n = text.split(":")[1:]
            return check_grid(np.logspace(float(lo), float(hi), int(n)))
        except ValueError:
            raise DeconfoundError("write a log grid as logspace:LOW:HIGH:COUNT, e.g. logspace:-2:5:15 "
                                  f"(got {text!r})") from None
    try:
        return check_grid([float(x) for x in text.split(",") if x.strip()])
    except ValueError:
        raise DeconfoundError(f"the λ grid must be comma-separated numbers, e.g. 0.1,1,10 (got {text!r})") from None


def text_features(texts: Sequence[str], embeddings: str = "minilm", fit_on: Sequence[str] | None = None,
                  progress=None) -> np.ndarray:
    """One row of frozen features per text (each distinct text embedded once): MiniLM sentence embeddings, or
    TF-IDF + SVD fitted on `fit_on` (the training texts; default all) — fast, for tests and small machines."""
    from ..causal import TfidfEmbedder, embed_texts
    if embeddings not in EMBEDDINGS:
        raise DeconfoundError(f"unknown embeddings {embeddings!r}: choose {' or '.join(EMBEDDINGS)}")
    texts = [str(t) for t in texts]
    unique = list(dict.fromkeys(texts))
    if embeddings == "tfidf":
        embedder = TfidfEmbedder().fit(list(fit_on) if fit_on is not None else unique)
        vectors = embedder.transform(unique)
    else:
        vectors = embed_texts(unique, model="minilm", progress=progress)
    row = {t: i for i, t in enumerate(unique)}
    return np.asarray(vectors, dtype=np.float64)[[row[t] for t in texts]]


def ridge_path(x_train: np.ndarray, y_train: np.ndarray, grid: Sequence[float]) -> list:
    """A fitted scikit-learn Ridge per λ (one BLAS thread: small solves, shared cores)."""
    from sklearn.linear_model import Ridge
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        return [Ridge(alpha=float(lam)).fit(x_train, y_train) for lam in grid]


def pair_design(features: np.ndarray, a: np.ndarray, b: np.ndarray, winner: np.ndarray):
    """Both orientations of every pair: rows x_a − x_b labelled 1 when a won, and x_b − x_a labelled 1 when b won."""
    diff = features[a] - features[b]
    return np.vstack([diff, -diff]), np.concatenate([winner, 1 - winner])


def logistic_path(x_pairs: np.ndarray, y_pairs: np.ndarray, grid: Sequence[float], max_iter: int = 2000) -> list:
    """A fitted pairwise logistic regression (no intercept) per λ."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits
    if len(np.unique(y_pairs)) < 2:
        raise DeconfoundError("the training pairs have one outcome only: the pairwise head needs winners and losers")
    with threadpool_limits(limits=1, user_api="blas"):
        return [LogisticRegression(C=1.0 / float(lam), fit_intercept=False, max_iter=max_iter).fit(x_pairs, y_pairs)
                for lam in grid]


def scores(model, features: np.ndarray) -> np.ndarray:
    """A head's score per row: the ridge prediction, or the logistic head's linear score w·x."""
    return model.decision_function(features) if hasattr(model, "predict_proba") else model.predict(features)


@dataclass
class PairRanking:
    """How well scores rank held-out pairs: AUC and the ROC curve (false/true positive rates)."""

    auc: float
    fpr: np.ndarray
    tpr: np.ndarray
    n_pairs: int

    def to_dict(self, points: int = 101) -> dict:
        """AUC, pair count and the curve thinned to about `points` points."""
        keep = np.unique(np.linspace(0, len(self.fpr) - 1, min(points, len(self.fpr))).round().astype(int))
        return {"auc": self.auc, "n_pairs": self.n_pairs, "fpr": self.fpr[keep].tolist(),
                "tpr": self.tpr[keep].tolist()}


def rank_pairs(score: np.ndarray, a: np.ndarray, b: np.ndarray, winner: np.ndarray) -> PairRanking:
    """ROC AUC of score(a) − score(b) for 'a won', over both orientations of every pair."""
    from sklearn.metrics import roc_auc_score, roc_curve
    diff = np.asarray(score)[a] - np.asarray(score)[b]
    values, labels = np.concatenate([diff, -diff]), np.concatenate([winner, 1 - winner])
    if len(np.unique(labels)) < 2:
        return PairRanking(float("nan"), np.array([0.0, 1.0]), np.array([0.0, 1.0]), len(a))
    fpr, tpr, _ = roc_curve(labels, values)
    return PairRanking(float(roc_auc_score(labels, values)), fpr, tpr, len(a))
