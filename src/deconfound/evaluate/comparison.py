"""Compare the models of a run: quality, marker rates, length, diversity — with intervals and tests.

Input is a run folder (layout in docs/ARCHITECTURE.md): `generations.csv` (prompt_id, context, model,
seed, text) and `rewards/<method>/metrics.json`. For every model of the run this computes

- mean quality (VADER sentiment in [0, 1] by default, or a saved reward model's score),
- marker rates per marker group (team names per region for the demo, any user word lists),
- length in words, distinct-1/2 (unique n-grams / all n-grams over the model's generations) and
  repetition (share of a generation's words that repeat an earlier word of it),

each with a seeded percentile-bootstrap interval and a two-sample test against the reference model
(SFT): Welch's t-test for means, a two-proportion z-test (Fisher's exact test for small counts) for
marker rates, a bootstrap test for distinct-n (`stats`). When the reference and a model both have generations
from several seeds, rates are also compared across seeds with a t-test over the per-seed values
(as in the paper's App. B). Reward–truth correlations per reward method are read from the run
(the paper's Table 2). No torch here unless a reward model is chosen as the scorer.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import DeconfoundError, NotFoundError
from ..jsonio import jsonable, read_json
from ..rewards import METHOD_LABELS
from ..text_measures import distinct_n, repetition_rate, tokens
from .conclusions import conclusion_text
from .defaults import default_markers, default_scorer, marker_phrase, quality_scorer, scorer_label
from .labels import method_sort_key, model_label, model_sort_key
from .markers import compile_markers, marker_hits
from .stats import (bootstrap_diff_pvalue, bootstrap_indices, distinct_replicates, finite, percentile_ci,
                    proportion_pvalue, stars, welch_pvalue)

REFERENCE = "sft"
GENERATION_COLUMNS = ("prompt_id", "context", "model", "seed", "text")


@dataclass
class EvalConfig:
    """How to evaluate a run's generations."""

    scorer: str | None = field(default=None, metadata={
        "help": "quality measure: 'sentiment' (VADER rescaled to [0, 1], the simulation's truth) or "
                "'reward:<method>' (the run's saved reward model of that method); None: the run's default "
                "(`defaults.default_scorer`)"})
    markers: dict[str, list[str]] | None = field(default=None, metadata={
        "help": "marker groups {group: [word or phrase, ...]}, matched as whole words, case-insensitive; "
                "None: team names per region when the run's data is the team simulation, else none"})
    reference: str = field(default=REFERENCE, metadata={"help": "the model every other model is tested against"})
    n_boot: int = field(default=1000, metadata={"help": "bootstrap resamples for the intervals"})
    level: float = field(default=0.95, metadata={"help": "confidence level of the intervals"})
    alpha: float = field(default=0.05, metadata={"help": "significance level used in the conclusion"})
    seed: int = field(default=0, metadata={"help": "seed of the bootstrap resampling"})

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)


# ------------------------------------------------------------------ results
@dataclass
class ModelMetrics:
    """Every measure of one model, with intervals and p-values against the reference model."""

    name: str
    label: str
    n: int
    seeds: list[int]
    quality_mean: float
    quality_ci: list[float]
    length_mean: float
    length_ci: list[float]
    repetition_mean: float
    repetition_ci: list[float]
    distinct_1: float
    distinct_1_ci: list[float]
    distinct_2: float
    distinct_2_ci: list[float]
    marker_rates: dict[str, float]
    marker_ci: dict[str, list[float]]
    marker_counts: dict[str, int]
    any_marker_rate: float | None = None
    # fluency: perplexity under the base model (geometric mean over texts), where the run measured it
    perplexity: float | None = None
    perplexity_ci: list[float] | None = None
    empty_share: float | None = None    # generations with no text at all
    cut_off_share: float | None = None  # generations that reached the token limit (where the run counted tokens)
    pvalues: dict[str, float | None] = field(default_factory=dict)  # vs the reference: quality, length, ...
    marker_pvalues: dict[str, float | None] = field(default_factory=dict)
    seed_tests: dict[str, dict] = field(default_factory=dict)  # across seeds (App. B), when several

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN → None)."""
        return jsonable(asdict(self))


@dataclass
class ComparisonResult:
    """All models of one run side by side; `to_dict()` is `deconfound compare --json`."""

    models: dict[str, ModelMetrics]
    reference: str | None
    reward_truth_corr: dict[str, dict[str, float | None]]
    scorer: str
    marker_groups: dict[str, list[str]]
    config: dict
    run: dict = field(default_factory=dict)
    # per-generation measures (quality, length, repetition, one bool column per marker group, model, seed)
    scores: pd.DataFrame | None = field(default=None, repr=False)

    # ---- tables
    @property
    def scorer_label(self) -> str:
        """How the quality column is named in tables (the evaluator's label carries its held-out correlation)."""
        return scorer_label(self.scorer, self.run.get("run_dir"))

    @property
    def quality_name(self) -> str:
        """The quality measure in a sentence: 'sentiment', "'oracle' reward score" or the evaluator's score."""
        if self.scorer.startswith("reward:"):
            return f"'{self.scorer.split(':', 1)[1]}' reward score"
        if self.scorer == "evaluator":
            return "evaluator score"
        return self.scorer

    def marker_phrase(self, group: str) -> str:
        """How a marker group reads in a sentence: 'East teams' for the team regions, else "'Happy' markers"."""
        return marker_phrase(group, self.marker_groups)

    def table1(self) -> pd.DataFrame:
        """The paper's Table 1 with intervals: one row per model, quality ± CI and p vs the reference,
        marker counts and rates per group, length, distinct-n and repetition."""
        rows = []
        for m in self.models.values():
            row = {"model": m.name, "label": m.label, "n": m.n, "quality": m.quality_mean,
                   "quality_lo": m.quality_ci[0], "quality_hi": m.quality_ci[1],
                   "quality_p": m.pvalues.get("quality"), "quality_sig": stars(finite(m.pvalues.get("quality")))}
            for group in self.marker_groups:
                row[f"{group}_count"] = m.marker_counts[group]
                row[f"{group}_rate"] = m.marker_rates[group]
                row[f"{group}_p"] = m.marker_pvalues.get(group)
            row.update(length=m.length_mean, length_p=m.pvalues.get("length"), distinct_1=m.distinct_1,
                       distinct_2=m.distinct_2, repetition=m.repetition_mean, perplexity=m.perplexity,
                       empty_share=m.empty_share, cut_off_share=m.cut_off_share)
            rows.append(row)
        return pd.DataFrame(rows)

    def table2(self) -> pd.DataFrame:
        """The paper's Table 2: Pearson correlation of each reward with true quality, train and validation."""
        return pd.DataFrame([{"method": k, "label": METHOD_LABELS.get(k, k), "train": v.get("train"),
                              "valid": v.get("valid")} for k, v in self.reward_truth_corr.items()])

    def summary(self) -> str:
        """Table 1 and Table 2 as plain text, with the conclusion on top."""
        pct = int(round(self.config.get("level", 0.95) * 100))
        groups = list(self.marker_groups)
        fluency = any(m.perplexity is not None for m in self.models.values())
        head = (f"{'model':40s} {'n':>6s} {'quality':>8s} {f'{pct}% CI':>17s} {'':3s}"
                + "".join(f" {g[:8]:>8s}" for g in groups) + f" {'length':>7s} {'dist-2':>7s} {'repeat':>7s}"
                + (f" {'perplexity':>9s} {'cut off':>7s}" if fluency else ""))
        lines = [self.conclusion(), "", f"quality = {self.scorer_label}; marker columns = generations naming "
                 f"the group (count); stars = difference from {self.reference or 'the reference'} "
                 "(* p<0.05, ** p<0.01, *** p<0.001)", head, "-" * len(head)]
        for m in self.models.values():
            lines.append(
                f"{m.label[:40]:40s} {m.n:6d} {m.quality_mean:8.3f} [{m.quality_ci[0]:7.3f},{m.quality_ci[1]:7.3f}]"
                f" {stars(finite(m.pvalues.get('quality'))):3s}"
                + "".join(f" {str(m.marker_counts[g]) + stars(finite(m.marker_pvalues.get(g))):>8s}" for g in groups)
                + f" {m.length_mean:7.1f} {_fmt(m.distinct_2, 7, 3)} {m.repetition_mean:7.3f}"
                + (f" {_fmt(m.perplexity, 9, 1)} {_fmt(m.cut_off_share, 7, 3)}" if fluency else ""))
        if self.reward_truth_corr:
            lines += ["", "reward–truth correlation (Pearson):", f"{'reward method':40s} {'train':>7s} {'valid':>7s}"]
            for method, corr in self.reward_truth_corr.items():
                lines.append(f"{METHOD_LABELS.get(method, method)[:40]:40s} {_fmt(corr.get('train'), 7, 3)} "
                             f"{_fmt(corr.get('valid'), 7, 3)}")
        seeded = [m for m in self.models.values() if m.seed_tests]
        if seeded:
            lines += ["", f"across seeds (t-test over per-seed means vs {self.reference}): mean (se) p"]
            lines += [f"  {m.label[:38]:38s} " + "; ".join(
                f"{k} {t['mean']:.3f} ({t['se']:.3f}) p={_fmt(t.get('pvalue'), 0, 2, 'g')}"
                for k, t in m.seed_tests.items()) for m in seeded]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """{"models": {name: {quality_mean, quality_ci, marker_rates, length_mean, n, ...}},
        "reward_truth_corr": {method: {train, valid}}, plus reference, scorer, marker groups, conclusion."""
        return jsonable({
            "models": {name: m.to_dict() for name, m in self.models.items()},
            "reward_truth_corr": self.reward_truth_corr,
            "reference": self.reference,
            "scorer": self.scorer,
            "marker_groups": self.marker_groups,
            "config": self.config,
            "run": self.run,
            "conclusion": self.conclusion(),
        })

    # ---- pairwise tests beyond the reference
    def pvalue(self, a: str, b: str, measure: str = "quality") -> float:
        """Two-sided p-value that models a and b differ on a measure ('quality', 'length',
        'repetition' or a marker group)."""
        if self.scores is None or a not in self.models or b not in self.models:
            return math.nan
        x = self.scores.loc[self.scores["model"] == a, measure]
        y = self.scores.loc[self.scores["model"] == b, measure]


        if measure in self.marker_groups:
            return proportion_pvalue(int(x.sum()), len(x), int(y.sum()), len(y))
        return welch_pvalue(x, y)

    # ---- words
    def conclusion(self) -> str:
        """A plain-language paragraph computed from the numbers: how the deconfounded model (or the best
        one) compares with naive RL, the oracle and SFT on quality, which marker group a model learned
        to over-use, and how well each reward followed true quality."""
        return conclusion_text(self)


# ------------------------------------------------------------------ reading a run
def load_generations(run_dir: str | Path) -> pd.DataFrame:
    """generations.csv of a run, checked (prompt_id, context, model, seed, text); missing text → ''."""
    path = Path(run_dir) / "generations.csv"
    if not path.is_file():
        raise NotFoundError(f"{Path(run_dir)} has no generations.csv yet: the run must finish its 'generate' "
                            "stage first (check its status, or resume it)")
    frame = pd.read_csv(path, keep_default_na=False, na_values=[])
    missing = [c for c in ("model", "text") if c not in frame.columns]
    if missing:
        raise DeconfoundError(f"{path} lacks the column(s) {', '.join(missing)}: expected "
                              f"{', '.join(GENERATION_COLUMNS)}")
    if frame.empty:
        raise DeconfoundError(f"{path} holds no generations: resume the run to generate them")
    frame["text"] = frame["text"].astype(str)
    frame["model"] = frame["model"].astype(str)
    if "seed" not in frame.columns:
        frame["seed"] = 0
    return frame


def reward_truth_correlations(run_dir: str | Path) -> dict[str, dict[str, float | None]]:
    """Pearson correlation of each trained reward with true quality, from rewards/<method>/metrics.json:
    {method: {"train": r, "valid": r}} in the paper's method order (None where the run has no truth)."""
    root = Path(run_dir) / "rewards"
    found = {}
    if root.is_dir():
        for path in sorted(root.glob("*/metrics.json")):
            metrics = read_json(path)
            if not isinstance(metrics, dict):  # unreadable or not a metrics record
                continue
            method = metrics.get("method") or path.parent.name
            found[method] = {split: finite((metrics.get(split) or {}).get("pearson_truth"))
                             for split in ("train", "valid")}
    return dict(sorted(found.items(), key=lambda kv: method_sort_key(kv[0])))


def run_info(run_dir: str | Path) -> dict:
    """What the evaluation reports about the run: folder, table, methods, estimator and its coefficient."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json", default={}) or {}
    estimate = read_json(run_dir / "estimate.json", default={}) or {}
    info = {"run_dir": str(run_dir), "table": config.get("table"), "methods": config.get("methods"),
            "preset": config.get("preset"), "estimator": estimate.get("method") or config.get("estimator")}
    terms = [t.get("term") for t in estimate.get("confounder_terms", []) if t.get("term")]
    if terms:
        info["confounder_effect"] = {t: {"coef": estimate.get("coef", {}).get(t),
                                         "ci": estimate.get("conf_int", {}).get(t)} for t in terms}
    return info


# ------------------------------------------------------------------ the comparison
def score_generations(generations: pd.DataFrame, scorer: Callable, patterns: dict[str, re.Pattern],
                      fluency: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per-generation measures: model, seed, quality, length, repetition, one bool per marker group, and the log
    perplexity under the base model when `fluency` (prompt_id, model, seed, perplexity) covers them."""
    words = [tokens(t) for t in generations["text"]]
    contexts = generations["context"].astype(str).tolist() if "context" in generations else [""] * len(generations)
    scores = pd.DataFrame({
        "model": generations["model"].to_numpy(),
        "seed": generations["seed"].to_numpy(),
        "quality": np.asarray(scorer(generations["text"].tolist(), contexts), dtype=float),
        "length": [len(w) for w in words],
        "repetition": [repetition_rate(w) for w in words],
        "empty": generations["text"].astype(str).str.strip().eq("").to_numpy(),
    })
    hits = marker_hits(generations["text"].tolist(), patterns)
    for group in patterns:
        scores[group] = hits[group].to_numpy()
    if fluency is not None and "prompt_id" in generations and len(fluency):
        keys = ["prompt_id", "model", "seed"]
        merged = generations[keys].astype(str).merge(fluency.astype({k: str for k in keys}).drop_duplicates(keys),
                                                     on=keys, how="left")
        scores["log_perplexity"] = np.log(pd.to_numeric(merged["perplexity"], errors="coerce").to_numpy(dtype=float))
        if "cut_off" in merged:
            # NaN where this text was not measured (a model the fluency rows do not cover), never "not cut off"
            cut = merged["cut_off"].astype(str).str.lower()
            scores["cut_off"] = np.where(cut.isin(["true", "1", "1.0"]), 1.0,
                                        np.where(cut.isin(["false", "0", "0.0"]), 0.0, np.nan))
    scores["_tokens"] = words
    return scores


def compare(run_dir: str | Path, config: EvalConfig | None = None, scorer: Callable | None = None,
            generations: pd.DataFrame | None = None, fluency: pd.DataFrame | None = None) -> ComparisonResult:
    """Evaluate every model of a run (see the module docstring). `scorer(texts, contexts)` overrides
    `config.scorer`; `generations` overrides the run's generations.csv (e.g. several runs pooled), `fluency` its
    evaluator/fluency.csv (the pooled runs' perplexities, all under one reference model)."""
    config = config or EvalConfig()
    run_dir = Path(run_dir)
    if config.scorer is None:
        config = replace(config, scorer=default_scorer(run_dir))
    own_generations = generations is None  # pooled generations may hold another run's base
    generations = load_generations(run_dir) if own_generations else generations
    groups = default_markers(run_dir) if config.markers is None else dict(config.markers)
    patterns = compile_markers(groups)
    score_fn = scorer or quality_scorer(config.scorer, run_dir)
    from ..runs import fluency_frame  # the perplexities the run measured (tables without a truth column)
    scores = score_generations(generations, score_fn, patterns, fluency_frame(run_dir) if fluency is None else fluency)
    names = sorted(scores["model"].unique(), key=model_sort_key)
    reference = config.reference if config.reference in names else None
    per_model = {name: scores[scores["model"] == name].reset_index(drop=True) for name in names}
    replicates = {name: _replicates(frame, list(groups), config) for name, frame in per_model.items()}
    models = {name: _model_metrics(name, per_model[name], replicates[name], list(groups), config,
                                   per_model.get(reference), replicates.get(reference))
              for name in names}
    if "base" in models and own_generations:
        models["base"].label = model_label("base", run_dir)
    return ComparisonResult(models=models, reference=reference, reward_truth_corr=reward_truth_correlations(run_dir),
                            scorer=config.scorer if scorer is None else getattr(scorer, "__name__", "custom"),
                            marker_groups=groups, config=config.to_dict(), run=run_info(run_dir),
                            scores=scores.drop(columns="_tokens"))


def _replicates(frame: pd.DataFrame, groups: list[str], config: EvalConfig) -> dict[str, np.ndarray]:
    """Bootstrap replicates of every statistic of one model (same resamples for all of them)."""
    idx = bootstrap_indices(len(frame), config.n_boot, config.seed)
    out = {col: frame[col].to_numpy(dtype=float)[idx].mean(axis=1) for col in ["quality", "length", "repetition"]
           + groups}
    if "log_perplexity" in frame and np.isfinite(frame["log_perplexity"]).any():
        values = frame["log_perplexity"].to_numpy(dtype=float)[idx]
        out["log_perplexity"] = np.nanmean(np.where(np.isfinite(values), values, np.nan), axis=1)
    token_lists = frame["_tokens"].tolist()
    for n in (1, 2):
        # Resampling with replacement duplicates texts, which lowers distinct-n by itself; so the
        # replicates give the spread only and are re-centred on the full-sample value.
        point = distinct_n(token_lists, n)
        reps = distinct_replicates(token_lists, n, idx)
        out[f"distinct_{n}"] = reps - np.nanmean(reps) + point if np.isfinite(reps).any() else reps
    return out


def _model_metrics(name: str, frame: pd.DataFrame, reps: dict, groups: list[str], config: EvalConfig,
                   ref: pd.DataFrame | None, ref_reps: dict | None) -> ModelMetrics:
    token_lists = frame["_tokens"].tolist()
    n = len(frame)
    ci = lambda key: percentile_ci(reps[key], config.level)  # noqa: E731
    metrics = ModelMetrics(
        name=name, label=model_label(name), n=n, seeds=sorted(int(s) for s in frame["seed"].unique()),
        quality_mean=float(frame["quality"].mean()), quality_ci=ci("quality"),
        length_mean=float(frame["length"].mean()), length_ci=ci("length"),
        repetition_mean=float(frame["repetition"].mean()), repetition_ci=ci("repetition"),
        distinct_1=distinct_n(token_lists, 1), distinct_1_ci=ci("distinct_1"),
        distinct_2=distinct_n(token_lists, 2), distinct_2_ci=ci("distinct_2"),
        marker_rates={g: float(frame[g].mean()) for g in groups},
        marker_ci={g: ci(g) for g in groups},
        marker_counts={g: int(frame[g].sum()) for g in groups},
        any_marker_rate=float(frame[groups].any(axis=1).mean()) if groups else None,
        empty_share=float(frame["empty"].mean()) if "empty" in frame else None,
        cut_off_share=(float(np.nanmean(frame["cut_off"])) if "cut_off" in frame and frame["cut_off"].notna().any()
                       else None),
    )
    if "log_perplexity" in reps:
        logs = frame["log_perplexity"].to_numpy(dtype=float)
        metrics.perplexity = float(np.exp(np.nanmean(logs[np.isfinite(logs)])))
        metrics.perplexity_ci = [float(np.exp(v)) for v in ci("log_perplexity")]
    if ref is None or ref is frame or name == config.reference:
        return metrics
    metrics.pvalues = {col: welch_pvalue(frame[col], ref[col]) for col in ("quality", "length", "repetition")}
    for k in ("distinct_1", "distinct_2"):
        metrics.pvalues[k] = bootstrap_diff_pvalue(reps[k], ref_reps[k])
    metrics.marker_pvalues = {g: proportion_pvalue(int(frame[g].sum()), n, int(ref[g].sum()), len(ref))
                              for g in groups}
    metrics.seed_tests = _seed_tests(frame, ref, ["quality"] + groups)
    return metrics


def _seed_tests(frame: pd.DataFrame, ref: pd.DataFrame, columns: list[str]) -> dict[str, dict]:
    """t-tests over per-seed means (App. B) when both models have generations from ≥ 2 seeds."""
    if frame["seed"].nunique() < 2 or ref["seed"].nunique() < 2:
        return {}
    from scipy import stats
    out = {}
    for col in columns:
        a = frame.groupby("seed")[col].mean().to_numpy(dtype=float)
        b = ref.groupby("seed")[col].mean().to_numpy(dtype=float)
        p = welch_pvalue(a, b) if (np.ptp(a) > 0 or np.ptp(b) > 0) else (1.0 if a[0] == b[0] else 0.0)
        out[col] = {"values": a.tolist(), "mean": float(a.mean()), "se": float(stats.sem(a)),
                    "reference_mean": float(b.mean()), "pvalue": p}
    return out


def _fmt(value, width: int, digits: int, kind: str = "f") -> str:
    """A number right-aligned in `width` columns for the plain-text summary ('—' when missing)."""
    value = finite(value)
    return f"{'—':>{width}s}" if value is None else f"{value:{width}.{digits}{kind}}"

