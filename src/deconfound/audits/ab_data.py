"""A/B tables for the reward audits (§3.2, App. C): the variants of each test, the pairs of variants whose CTRs
differ significantly, train/valid/test splits with no text in two splits, and the observational subset (one
variant per test, as a historical log would hold).

A table qualifies when its experiment id and arm columns are tagged (Roles). Clicks and impressions are found by
name (`clicks`, `impressions`, or given explicitly); with them, a pair is kept when a two-proportion z-test
(pooled, two-sided, as statsmodels' `proportions_ztest`) rejects equal CTRs at `alpha`; without them, every pair
whose outcomes differ is kept and the result says significance could not be tested.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data import Roles, Store
from ..errors import DeconfoundError

SPLIT_NAMES = ("train", "valid", "test")
CLICK_NAMES = ("clicks", "click", "n_clicks", "conversions")
IMPRESSION_NAMES = ("impressions", "impression", "views", "n_impressions", "exposures")


@dataclass
class ABTable:
    """The variants of an A/B table, one row each: test, arm, text, outcome (+ clicks, impressions, time, truth),
    and what was read from where."""

    variants: pd.DataFrame
    columns: dict
    notes: list[str] = field(default_factory=list)

    @property
    def has_counts(self) -> bool:
        """Whether clicks and impressions are known (the significance test needs them)."""
        return "clicks" in self.variants and "impressions" in self.variants


def ab_roles_problem(roles: Roles | None) -> str | None:
    """Why a table's roles do not allow an A/B audit (None: they do)."""
    if roles is None:
        return "the table has no column roles yet: tag its columns on Roles first"
    if not roles.experiment or not roles.arm:
        return ("the table has no experiment and arm columns tagged: an A/B audit needs the test id (experiment) and "
                "the variant (arm) of every row, tagged on Roles")
    if not roles.text:
        return "the table has no text column tagged: tag the headline (text) column on Roles"
    return None


def _find(schema: dict, given: str | None, names: tuple[str, ...], what: str) -> str | None:
    if given:
        if given not in schema:
            raise DeconfoundError(f"the table has no {what} column {given!r} (columns: {', '.join(schema)})")
        return given
    lower = {c.lower(): c for c in schema}
    return next((lower[n] for n in names if n in lower), None)


def load_ab_table(store: Store, table: str, roles: Roles | None = None, clicks: str | None = None,
                  impressions: str | None = None) -> ABTable:
    """The variants of `table` (rows of the same test and arm are summed: clicks, impressions; averaged: outcome).
    Raises a DeconfoundError with one clear sentence when the table cannot be audited this way."""
    roles = roles if roles is not None else store.load_roles(table)
    problem = ab_roles_problem(roles)
    if problem:
        raise DeconfoundError(f"'{table}': {problem}")
    schema = store.schema(table)
    clicks = _find(schema, clicks, CLICK_NAMES, "clicks")
    impressions = _find(schema, impressions, IMPRESSION_NAMES, "impressions")
    counts = bool(clicks and impressions)
    if not counts and not roles.outcome:
        raise DeconfoundError(f"'{table}' has neither an outcome column tagged nor clicks and impressions columns: "
                              "tag the outcome (e.g. CTR) on Roles")
    names = {"test": roles.experiment, "arm": roles.arm, "text": roles.text}
    names |= {"outcome": roles.outcome} if roles.outcome else {}
    names |= {"clicks": clicks, "impressions": impressions} if counts else {}
    names |= {"time": roles.timestamp} if roles.timestamp else {}
    names |= {"truth": roles.truth} if roles.truth else {}
    raw = store.read_frame(table, list(dict.fromkeys(names.values())))
    frame = pd.DataFrame({key: raw[col] for key, col in names.items()})
    frame = frame.dropna(subset=["test", "arm", "text"])
    frame["test"], frame["arm"], frame["text"] = (frame[c].astype(str) for c in ("test", "arm", "text"))
    for col in ("outcome", "clicks", "impressions", "truth"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    if counts:
        bad = (frame["impressions"] <= 0) | (frame["clicks"] < 0) | (frame["clicks"] > frame["impressions"])
        frame = frame[~bad.fillna(True)]
    how = {"text": "first"} | {c: "sum" for c in ("clicks", "impressions") if c in frame} | \
        {c: "mean" for c in ("outcome", "truth") if c in frame} | ({"time": "min"} if "time" in frame else {})
    variants = frame.groupby(["test", "arm"], sort=True, as_index=False).agg(how)
    if counts:
        variants["ctr"] = variants["clicks"] / variants["impressions"]
        if "outcome" not in variants:
            variants["outcome"] = variants["ctr"]
    variants = variants.dropna(subset=["outcome"]).reset_index(drop=True)
    if variants.empty:
        raise DeconfoundError(f"'{table}' has no row with a test id, an arm, a text and an outcome")
    sizes = variants.groupby("test")["arm"].transform("size")
    if (sizes < 2).all():
        raise DeconfoundError(f"every test in '{table}' has a single variant: an A/B audit compares variants of the "
                              "same test, so each test needs at least two arms")
    notes = [] if counts else ["no clicks and impressions columns: pairs are kept when their outcomes differ "
                               "(significance could not be tested)"]
    used = {"experiment": roles.experiment, "arm": roles.arm, "text": roles.text, "outcome": roles.outcome,
            "clicks": clicks if counts else None, "impressions": impressions if counts else None,
            "timestamp": roles.timestamp, "truth": roles.truth}
    return ABTable(variants=variants, columns=used, notes=notes)


def two_proportion_pvalues(k1, n1, k2, n2) -> np.ndarray:
    """Two-sided p-values of the pooled two-proportion z-test, vectorised (statsmodels' `proportions_ztest`
    with its defaults gives the same numbers pair by pair); 1 where both CTRs are 0 or 1."""
    from scipy import stats
    k1, n1, k2, n2 = (np.asarray(v, dtype=float) for v in (k1, n1, k2, n2))
    pooled = (k1 + k2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (k1 / n1 - k2 / n2) / se, 0.0)
    return 2 * stats.norm.sf(np.abs(z))


def variant_pairs(ab: ABTable, alpha: float = 0.05) -> pd.DataFrame:
    """Every pair of variants of a test, one row each: test, a, b (variant row numbers), text_a, text_b, pvalue,
    winner (1 when a's outcome is higher), significant. Pairs of identical texts are dropped."""
    v = ab.variants
    rows = []
    for _, members in v.groupby("test", sort=False):
        idx = members.index.to_numpy()
        for i in range(len(idx)):
            for j in range(i + 1, len(idx)):
                rows.append((idx[i], idx[j]))
    if not rows:
        return pd.DataFrame(columns=["test", "a", "b", "text_a", "text_b", "pvalue", "winner", "significant"])
    a, b = (np.array(x) for x in zip(*rows))
    pairs = pd.DataFrame({"test": v["test"].to_numpy()[a], "a": a, "b": b, "text_a": v["text"].to_numpy()[a],
                          "text_b": v["text"].to_numpy()[b]})
    ya, yb = v["outcome"].to_numpy()[a], v["outcome"].to_numpy()[b]
    if ab.has_counts:
        pairs["pvalue"] = two_proportion_pvalues(v["clicks"].to_numpy()[a], v["impressions"].to_numpy()[a],
                                                 v["clicks"].to_numpy()[b], v["impressions"].to_numpy()[b])
        ya, yb = v["ctr"].to_numpy()[a], v["ctr"].to_numpy()[b]
        pairs["significant"] = (pairs["pvalue"] < alpha) & (ya != yb)
    else:
        pairs["pvalue"] = np.nan
        pairs["significant"] = ya != yb
    pairs["winner"] = (ya > yb).astype(int)
    return pairs[pairs["text_a"] != pairs["text_b"]].reset_index(drop=True)


def split_tests(pairs: pd.DataFrame, shares=(0.6, 0.2, 0.2), seed: int = 0) -> pd.Series:
    """Split the tests that have pairs into train/valid/test (shares of the pairs, as App. C) so that no text is
    in two splits: tests that share a text are linked, and each connected group goes to one split whole.
    Returns test id -> split."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    if len(shares) != 3 or min(shares) < 0 or not np.isclose(sum(shares), 1.0):
        raise DeconfoundError(f"the split shares must be three non-negative numbers that add up to 1 (got {shares})")
    tests, test_idx = np.unique(np.concatenate([pairs["test"], pairs["test"]]).astype(str), return_inverse=True)
    texts, text_idx = np.unique(np.concatenate([pairs["text_a"], pairs["text_b"]]).astype(str), return_inverse=True)
    n = len(tests) + len(texts)
    graph = coo_matrix((np.ones(len(test_idx)), (test_idx, len(tests) + text_idx)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    group_of_test = pd.Series(labels[:len(tests)], index=tests)
    weight = pairs.groupby(group_of_test.reindex(pairs["test"].astype(str)).to_numpy()).size()
    order = np.random.default_rng(seed).permutation(weight.index.to_numpy())
    cumulative = weight.reindex(order).cumsum() / weight.sum()
    cut = np.cumsum(shares)[:2]
    # A group goes to the split its midpoint falls in, so each split's share of pairs lands near its target.
    midpoint = cumulative - weight.reindex(order) / (2 * weight.sum())
    split_of_group = pd.Series(np.array(SPLIT_NAMES)[np.searchsorted(cut, midpoint.to_numpy(), side="right")],
                               index=order)
    return group_of_test.map(split_of_group).rename("split")


def observational_subset(ab: ABTable, pairs: pd.DataFrame, split: pd.Series, seed: int = 0) -> pd.DataFrame:
    """One variant per test of the train and valid splits, drawn at random (App. C): what a historical log holds
    when the alternatives were never shown. Columns of `ab.variants` plus `split`."""
    tests = split[split.isin(["train", "valid"])]
    v = ab.variants[ab.variants["test"].isin(tests.index)]
    rng = np.random.default_rng(seed)
    keep = v.groupby("test", sort=True).apply(lambda g: g.index[rng.integers(len(g))], include_groups=False)
    out = ab.variants.loc[keep.to_numpy()].copy()
    out["split"] = out["test"].map(split).to_numpy()
    return out.reset_index(drop=True)
