"""The A/B-validated reward audit (§3.2, App. C, Fig. 3): how well does a reward learned from historical logs
rank headlines, judged by experiments?

From a table of A/B tests: keep the pairs of variants whose CTRs differ significantly, split the tests into
train/valid/test with no text in two splits, keep one variant per train/valid test as the *observational*
log, and fit two heads on the same frozen text features — a ridge regression of the observed outcome on the
observational rows, and a pairwise logistic head on the experimental train pairs — each with λ chosen on its
validation data (MSE, log-loss). Both are judged on the same held-out test pairs (ROC AUC). When the table has
a truth column (a simulation), the true effects' AUC on those pairs is the ceiling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..data import Roles, Store
from ..errors import DeconfoundError
from ..jsonio import jsonable
from .ab_data import ABTable, load_ab_table, observational_subset, split_tests, variant_pairs
from .heads import (DEFAULT_GRID, PairRanking, check_grid, logistic_path, pair_design, rank_pairs, ridge_path,
                    scores, text_features)


@dataclass
class ABAuditConfig:
    """Settings of the A/B and λ audits (defaults follow App. C)."""

    alpha: float = field(default=0.05, metadata={"help": "significance level of the two-proportion test of a pair"})
    shares: list[float] = field(default_factory=lambda: [0.6, 0.2, 0.2], metadata={
        "help": "train/valid/test shares of the significant pairs (App. C: 60/20/20)"})
    seed: int = field(default=0, metadata={"help": "seed of the split and of the observational draw"})
    embeddings: str = field(default="minilm", metadata={
        "help": "frozen text features: 'minilm' (the paper's set-up of embeddings + a head) or 'tfidf' (fast)"})
    grid: list[float] = field(default_factory=lambda: list(DEFAULT_GRID), metadata={
        "help": "L2 strengths λ to try (positive; a log grid)"})
    clicks: str | None = field(default=None, metadata={"help": "clicks column (default: found by name)"})
    impressions: str | None = field(default=None, metadata={"help": "impressions column (default: found by name)"})
    max_tests: int | None = field(default=None, metadata={"help": "audit a seeded sample of at most this many tests"})

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


@dataclass
class ABPrepared:
    """An A/B table made ready for the heads: variants with features, significant pairs with their split, the
    observational subset (rows of `variants`)."""

    ab: ABTable
    pairs: pd.DataFrame          # significant pairs: test, a, b, text_a, text_b, pvalue, winner, split
    n_pairs_all: int
    observational: pd.DataFrame  # one variant per train/valid test (+ split)
    features: np.ndarray         # one row per variant
    obs_rows: np.ndarray         # variant row numbers of the observational subset
    notes: list[str] = field(default_factory=list)

    def pairs_of(self, split: str) -> pd.DataFrame:
        """The significant pairs of one split."""
        return self.pairs[self.pairs["split"] == split]

    def obs(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(features, outcome) of the observational rows of a split."""
        pick = self.observational["split"].to_numpy() == split
        return self.features[self.obs_rows[pick]], self.observational["outcome"].to_numpy(dtype=float)[pick]


def prepare_ab(store: Store, table: str, config: ABAuditConfig | None = None, roles: Roles | None = None,
               progress=None) -> ABPrepared:
    """Load an A/B table, keep its significant pairs, split it, draw the observational subset and embed the texts.
    `progress(done, total)` follows the embedding."""
    config = config or ABAuditConfig()
    check_grid(config.grid)
    if not 0 < config.alpha < 1:
        raise DeconfoundError(f"the significance level must be between 0 and 1 (got {config.alpha})")
    ab = load_ab_table(store, table, roles, config.clicks, config.impressions)
    if config.max_tests and ab.variants["test"].nunique() > config.max_tests:
        keep = pd.Series(ab.variants["test"].unique()).sample(n=config.max_tests, random_state=config.seed)
        ab.variants = ab.variants[ab.variants["test"].isin(set(keep))].reset_index(drop=True)
        ab.notes.append(f"audited a seeded sample of {config.max_tests:,} tests")
    pairs = variant_pairs(ab, config.alpha)
    n_all = len(pairs)
    pairs = pairs[pairs["significant"]].reset_index(drop=True)
    if pairs.empty:
        what = f"differ significantly at {config.alpha:g}" if ab.has_counts else "have different outcomes"
        raise DeconfoundError(f"no pair of variants in '{table}' has CTRs that {what} (of {n_all:,} pairs): there "
                              "is nothing to learn or judge a reward on")
    split = split_tests(pairs, config.shares, config.seed)
    pairs["split"] = pairs["test"].map(split).to_numpy()
    missing = [s for s in ("train", "valid", "test") if not (pairs["split"] == s).any()]
    if missing:
        raise DeconfoundError(f"only {len(pairs)} significant pair(s): too few to fill the {', '.join(missing)} "
                              "split(s); the audit needs more tests with a clear winner")
    observational = observational_subset(ab, pairs, split, config.seed)
    rows = pd.Series(ab.variants.index, index=ab.variants["test"] + "\x00" + ab.variants["arm"])
    obs_rows = rows.reindex(observational["test"] + "\x00" + observational["arm"]).to_numpy()
    train_texts = pd.concat([pairs.loc[pairs["split"] == "train", c] for c in ("text_a", "text_b")])
    features = text_features(ab.variants["text"].tolist(), config.embeddings,
                             fit_on=pd.concat([train_texts, observational["text"]]).unique().tolist(),
                             progress=progress)
    return ABPrepared(ab=ab, pairs=pairs, n_pairs_all=n_all, observational=observational, features=features,
                      obs_rows=obs_rows, notes=list(ab.notes))


@dataclass
class HeadResult:
    """One head: the λ its validation data chose, that validation loss, and its ranking of the test pairs."""

    name: str
    trained_on: str
    lam: float
    valid_loss: float
    valid_metric: str
    test: PairRanking

    def to_dict(self) -> dict:
        """JSON-ready dict (the ROC curve thinned)."""
        return {"name": self.name, "trained_on": self.trained_on, "lambda": self.lam, "valid_loss": self.valid_loss,
                "valid_metric": self.valid_metric, "test": self.test.to_dict()}


@dataclass
class ABAuditResult:
    """Observational vs experimental reward on held-out A/B pairs; `to_dict()` is `deconfound audit ab --json`."""

    table: str
    counts: dict
    observational: HeadResult
    experimental: HeadResult
    truth: PairRanking | None
    config: dict
    notes: list[str] = field(default_factory=list)

    def verdict(self) -> str:
        """The answer in plain words."""
        obs, exp = self.observational.test.auc, self.experimental.test.auc
        n = self.experimental.test.n_pairs
        gap = exp - obs
        if obs >= 0.6:
            use = "Your logs carry real signal about which headlines win"
        elif obs > 0.53:
            use = "Your logs carry only a weak signal about which headlines win"
        else:
            use = "A reward learned from your logs ranks headlines no better than a coin"
        text = (f"{use}: on {n:,} held-out A/B pairs, the reward learned from the observational log ranks the winner "
                f"first with AUC {obs:.2f}, against {exp:.2f} for the reward learned from the experiments")
        if gap > 0.02:
            text += f" — experiments are worth {gap:.2f} AUC here"
        elif gap < -0.02:
            text += " — the observational reward did better here, which the paper did not see"
        text += "."
        if self.truth is not None and math.isfinite(self.truth.auc):
            text += f" The true headline effects reach {self.truth.auc:.2f} on the same pairs (the ceiling)."
        return text

    def summary(self) -> str:
        """The verdict, the counts and the two heads."""
        c = self.counts
        lines = [self.verdict(), "",
                 f"{c['tests']:,} tests, {c['variants']:,} variants; {c['significant_pairs']:,} of {c['pairs']:,} "
                 f"pairs significant; pairs train/valid/test {c['train_pairs']:,}/{c['valid_pairs']:,}/"
                 f"{c['test_pairs']:,}; observational rows train/valid {c['obs_train']:,}/{c['obs_valid']:,}"]
        for head in (self.observational, self.experimental):
            lines.append(f"{head.name:14s} trained on {head.trained_on}: λ = {head.lam:g} (valid {head.valid_metric} "
                         f"{head.valid_loss:.4g}), test AUC {head.test.auc:.3f}")
        if self.truth is not None:
            lines.append(f"{'true effects':14s} test AUC {self.truth.auc:.3f}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict: verdict, counts, observational, experimental, truth, config, notes."""
        return jsonable({"kind": "ab_audit", "table": self.table, "verdict": self.verdict(), "counts": self.counts,
                         "observational": self.observational.to_dict(), "experimental": self.experimental.to_dict(),
                         "truth": self.truth.to_dict() if self.truth is not None else None, "config": self.config,
                         "notes": self.notes})


def counts_of(prep: ABPrepared) -> dict:
    """How many tests, variants, pairs and observational rows the audit used."""
    per = prep.pairs["split"].value_counts()
    obs = prep.observational["split"].value_counts()
    return {"tests": int(prep.ab.variants["test"].nunique()), "variants": len(prep.ab.variants),
            "pairs": prep.n_pairs_all, "significant_pairs": len(prep.pairs),
            **{f"{s}_pairs": int(per.get(s, 0)) for s in ("train", "valid", "test")},
            **{f"{s}_tests": int(prep.pairs.loc[prep.pairs["split"] == s, "test"].nunique())
               for s in ("train", "valid", "test")},
            "obs_train": int(obs.get("train", 0)), "obs_valid": int(obs.get("valid", 0))}


def fit_observational(prep: ABPrepared, grid) -> tuple[list, np.ndarray, float, float]:
    """Ridge heads on the observational train rows (standardised outcome) for each λ; returns (models, valid MSE
    per λ in outcome units, outcome mean, outcome sd)."""
    x_tr, y_tr = prep.obs("train")
    x_va, y_va = prep.obs("valid")
    if len(y_tr) < 2 or len(y_va) < 1:
        raise DeconfoundError("too few observational rows to fit and validate the observational head")
    mean, sd = float(y_tr.mean()), float(y_tr.std() or 1.0)
    models = ridge_path(x_tr, (y_tr - mean) / sd, grid)
    valid = np.array([np.mean((m.predict(x_va) * sd + mean - y_va) ** 2) for m in models])
    return models, valid, mean, sd


def ab_audit(store: Store, table: str, config: ABAuditConfig | None = None, roles: Roles | None = None,
             progress=None, prepared: ABPrepared | None = None) -> ABAuditResult:
    """Fit the observational and the experimental head and judge both on the held-out test pairs."""
    from sklearn.metrics import log_loss
    config = config or ABAuditConfig()
    grid = check_grid(config.grid)
    prep = prepared or prepare_ab(store, table, config, roles, progress)
    test = prep.pairs_of("test")
    a, b, w = (test[c].to_numpy() for c in ("a", "b", "winner"))

    models, valid_mse, _, _ = fit_observational(prep, grid)
    best = int(np.argmin(valid_mse))
    observational = HeadResult("observational", "one variant per training test (ridge regression on the outcome)",
                               grid[best], float(valid_mse[best]), "MSE",
                               rank_pairs(scores(models[best], prep.features), a, b, w))

    train, valid = prep.pairs_of("train"), prep.pairs_of("valid")
    x_tr, y_tr = pair_design(prep.features, train["a"].to_numpy(), train["b"].to_numpy(), train["winner"].to_numpy())
    x_va, y_va = pair_design(prep.features, valid["a"].to_numpy(), valid["b"].to_numpy(), valid["winner"].to_numpy())
    heads = logistic_path(x_tr, y_tr, grid)
    losses = np.array([log_loss(y_va, h.predict_proba(x_va)[:, 1], labels=[0, 1]) for h in heads])
    best = int(np.argmin(losses))
    experimental = HeadResult("experimental", "the significant training pairs (pairwise logistic)", grid[best],
                              float(losses[best]), "log-loss", rank_pairs(scores(heads[best], prep.features), a, b, w))

    truth = None
    if "truth" in prep.ab.variants and prep.ab.variants["truth"].notna().all():
        truth = rank_pairs(prep.ab.variants["truth"].to_numpy(dtype=float), a, b, w)
    return ABAuditResult(table=table, counts=counts_of(prep), observational=observational, experimental=experimental,
                         truth=truth, config=config.to_dict(), notes=prep.notes)
