"""Compare the models of a run: quality, marker rates, length, diversity — with intervals and tests.

Input is a run folder (layout in docs/ARCHITECTURE.md): `generations.csv` (prompt_id, context, model,
seed, text) and `rewards/<method>/metrics.json`. For every model of the run this computes

- mean quality (VADER sentiment in [0, 1] by default, or a saved reward model's score),
- marker rates per marker group (team names per region for the demo, any user word lists),
- length in words, distinct-1/2 (unique n-grams / all n-grams over the model's generations) and
  repetition (share of a generation's words that repeat an earlier word of it),

each with a seeded percentile-bootstrap interval and a two-sample test against the reference model
(SFT): Welch's t-test for means, a two-proportion z-test (Fisher's exact test for small counts) for
marker rates, a bootstrap test for distinct-n. When the reference and a model both have generations
from several seeds, rates are also compared across seeds with a t-test over the per-seed values
(as in the paper's App. B). Reward–truth correlations per reward method are read from the run
(the paper's Table 2). No torch here unless a reward model is chosen as the scorer.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..errors import DeconfoundError, NotFoundError
from ..jsonio import jsonable as _clean
from ..jsonio import read_json
from ..rewards import METHOD_LABELS
from ..rewards import METHODS as METHOD_ORDER
from ..text_measures import distinct_n, ngrams, repetition_rate, tokens
from .defaults import (SCORER_LABELS, default_markers, default_scorer, marker_phrase, probe_templates, quality_scorer)

REFERENCE = "sft"
GENERATION_COLUMNS = ("prompt_id", "context", "model", "seed", "text")


# ------------------------------------------------------------------ configuration and names
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


def model_label(name: str, run_dir: str | Path | None = None) -> str:
    """Readable name of a model of a run: 'sft' → 'SFT', 'rl_naive' → 'RL: observed outcome (naive)'.
    With `run_dir`, a run that started from a model fine-tuned earlier calls its 'base' the starting model."""
    if name == "base" and run_dir is not None and starts_from_fine_tuned(run_dir):
        return "Starting model (fine-tuned earlier)"
    fixed = {"base": "Base (pre-trained)", "sft": "SFT"}
    if name in fixed:
        return fixed[name]
    kind, _, method = name.partition("_")
    if kind in ("rl", "dpo") and method:
        return f"{kind.upper()}: {METHOD_LABELS.get(method, method.replace('_', ' '))}"
    return name


def starts_from_fine_tuned(run_dir: str | Path) -> bool:
    """Whether the run's starting model is a folder this product trained (it holds a training summary),
    e.g. a run that reuses another run's SFT model: then its 'base' is not a pre-trained model."""
    config = read_json(Path(run_dir) / "config.json") or {}
    name = (config.get("model") or {}).get("name") if isinstance(config.get("model"), dict) else None
    return bool(name) and (Path(str(name)) / "training_summary.json").is_file()


def model_sort_key(name: str) -> tuple:
    """Table-1 order: base, SFT, RL per method in the paper's order, DPO likewise, then anything else."""
    if name == "base":
        return (0, 0, name)
    if name == "sft":
        return (1, 0, name)
    kind, _, method = name.partition("_")
    if kind in ("rl", "dpo") and method in METHOD_ORDER:
        return (2 if kind == "rl" else 3, METHOD_ORDER.index(method), name)
    return (4, 0, name)


# ------------------------------------------------------------------ text measures
def compile_markers(groups: dict[str, Sequence[str]]) -> dict[str, re.Pattern]:
    """One case-insensitive whole-word pattern per marker group (longest alternative first)."""
    patterns = {}
    for group, words in groups.items():
        words = sorted({w.strip() for w in words if isinstance(w, str) and w.strip()}, key=len, reverse=True)
        if not words:
            raise DeconfoundError(f"marker group {group!r} has no words: give at least one word or phrase")
        alternatives = "|".join(re.escape(w) for w in words)
        patterns[group] = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)
    return patterns


def marker_hits(texts: Sequence[str], patterns: dict[str, re.Pattern]) -> pd.DataFrame:
    """Boolean frame (one column per group): does each text contain any of the group's markers?"""
    return pd.DataFrame({group: [bool(isinstance(t, str) and pattern.search(t)) for t in texts]
                         for group, pattern in patterns.items()}, dtype=bool)


def highlight_spans(text: str, patterns: dict[str, re.Pattern]) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, group) spans of markers in a text, in order (for highlighting)."""
    spans = sorted(((m.start(), m.end(), group) for group, p in patterns.items() for m in p.finditer(text or "")),
                   key=lambda span: (span[0], -span[1]))  # at one position, the longest marker wins
    kept, last_end = [], -1
    for start, end, group in spans:
        if start >= last_end:
            kept.append((start, end, group))
            last_end = end
    return kept


# ------------------------------------------------------------------ statistics
def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) row indices drawn with replacement (seeded)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_ci(values, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
                 statistic: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (or of `statistic`, applied row-wise to resamples)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return (math.nan, math.nan)
    resamples = values[bootstrap_indices(len(values), n_boot, seed)]
    stats = statistic(resamples) if statistic else resamples.mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.nanpercentile(stats, [tail, 100 - tail])
    return (float(lo), float(hi))


def welch_pvalue(a, b) -> float:
    """Two-sided Welch t-test p-value; 1.0 when both samples are constant and equal, NaN if too small."""
    from scipy import stats
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return 1.0 if a[0] == b[0] else 0.0
    with warnings.catch_warnings():  # near-identical samples: scipy warns, the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def proportion_pvalue(k1: int, n1: int, k2: int, n2: int) -> float:
    """Two-sided test of equal proportions: two-proportion z-test, or Fisher's exact test when an
    expected cell count is below 5 (the z-test's normal approximation is poor there)."""
    from scipy import stats
    from statsmodels.stats.proportion import proportions_ztest
    if n1 == 0 or n2 == 0:
        return math.nan
    pooled = (k1 + k2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    expected = np.array([n1, n2]) * min(pooled, 1 - pooled)
    if expected.min() < 5:
        return float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)
    return float(proportions_ztest([k1, k2], [n1, n2])[1])


def bootstrap_diff_pvalue(replicates_a: np.ndarray, replicates_b: np.ndarray) -> float:
    """Two-sided p-value of 'no difference' from independent bootstrap replicates of two statistics."""
    diff = np.asarray(replicates_a) - np.asarray(replicates_b)
    diff = diff[np.isfinite(diff)]
    if len(diff) == 0:
        return math.nan
    return float(min(1.0, 2 * min((diff <= 0).mean(), (diff >= 0).mean())))


def stars(p: float | None) -> str:
    """Significance stars: *** p<0.001, ** p<0.01, * p<0.05."""
    if p is None or not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def _distinct_replicates(token_lists: list[list[str]], n: int, idx: np.ndarray, chunk: int = 100) -> np.ndarray:
    """Distinct-n of each bootstrap resample (rows of `idx`), via a sparse generation × n-gram matrix."""
    from scipy import sparse
    vocab: dict[tuple, int] = {}
    rows, cols = [], []
    for i, words in enumerate(token_lists):
        for g in ngrams(words, n):
            rows.append(i)
            cols.append(vocab.setdefault(g, len(vocab)))
    if not vocab:
        return np.full(len(idx), math.nan)
    counts = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(token_lists), len(vocab)))
    per_text = np.asarray(counts.sum(axis=1)).ravel()
    out = np.empty(len(idx))
    for start in range(0, len(idx), chunk):
        block = idx[start:start + chunk]
        flat = (np.arange(len(block))[:, None] * len(token_lists) + block).ravel()  # how often each text is drawn
        weights = np.bincount(flat, minlength=len(block) * len(token_lists)).reshape(len(block), -1).astype(float)
        drawn = (counts.T @ weights.T).T  # resample × n-gram occurrence counts
        total = weights @ per_text
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + chunk] = (np.asarray(drawn) > 0).sum(axis=1) / total
    return out


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
    pvalues: dict[str, float | None] = field(default_factory=dict)  # vs the reference: quality, length, ...
    marker_pvalues: dict[str, float | None] = field(default_factory=dict)
    seed_tests: dict[str, dict] = field(default_factory=dict)  # across seeds (App. B), when several

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN → None)."""
        return _clean(asdict(self))


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
        """How the quality column is named in tables."""
        return SCORER_LABELS.get(self.scorer, self.scorer)

    @property
    def quality_name(self) -> str:
        """The quality measure in a sentence: 'sentiment' or "'oracle' reward score"."""
        if self.scorer.startswith("reward:"):
            return f"'{self.scorer.split(':', 1)[1]}' reward score"
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
                   "quality_p": m.pvalues.get("quality"), "quality_sig": stars(_num(m.pvalues.get("quality")))}
            for group in self.marker_groups:
                row[f"{group}_count"] = m.marker_counts[group]
                row[f"{group}_rate"] = m.marker_rates[group]
                row[f"{group}_p"] = m.marker_pvalues.get(group)
            row.update(length=m.length_mean, length_p=m.pvalues.get("length"), distinct_1=m.distinct_1,
                       distinct_2=m.distinct_2, repetition=m.repetition_mean)
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
        head = (f"{'model':40s} {'n':>6s} {'quality':>8s} {f'{pct}% CI':>17s} {'':3s}"
                + "".join(f" {g[:8]:>8s}" for g in groups) + f" {'length':>7s} {'dist-2':>7s} {'repeat':>7s}")
        lines = [self.conclusion(), "", f"quality = {self.scorer_label}; marker columns = generations naming "
                 f"the group (count); stars = difference from {self.reference or 'the reference'} "
                 "(* p<0.05, ** p<0.01, *** p<0.001)", head, "-" * len(head)]
        for m in self.models.values():
            lines.append(
                f"{m.label[:40]:40s} {m.n:6d} {m.quality_mean:8.3f} [{m.quality_ci[0]:7.3f},{m.quality_ci[1]:7.3f}]"
                f" {stars(_num(m.pvalues.get('quality'))):3s}"
                + "".join(f" {str(m.marker_counts[g]) + stars(_num(m.marker_pvalues.get(g))):>8s}" for g in groups)
                + f" {m.length_mean:7.1f} {_fmt(m.distinct_2, 7, 3)} {m.repetition_mean:7.3f}")
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
        return _clean({
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
        return _conclusion(self)


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
            try:
                metrics = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, OSError):
                continue
            method = metrics.get("method") or path.parent.name
            found[method] = {split: _num((metrics.get(split) or {}).get("pearson_truth"))
                             for split in ("train", "valid")}
    return dict(sorted(found.items(), key=lambda kv: model_sort_key("rl_" + kv[0])))


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


def probe_contexts(run_dir: str | Path, n: int = 4) -> list[str]:
    """Prompts for the probe: the run's first `n` held-out contexts (rewards that read the prompt need one),
    else one empty context."""
    if not (Path(run_dir) / "generations.csv").is_file():
        return [""]
    return load_generations(run_dir)["context"].astype(str).drop_duplicates().head(n).tolist() or [""]


def reward_marker_preference(run_dir: str | Path, method: str, marker_groups: dict[str, list[str]],
                             templates: Sequence[str] | None = None, max_names: int = 40,
                             contexts: Sequence[str] | None = None) -> dict[str, float]:
    """Mean reward of the same headlines with each group's names filled in (per group, up to `max_names`
    names × `templates`, default `defaults.probe_templates`; `contexts` default to `probe_contexts`). A reward
    that learned a confounder carried by the markers (popular teams) scores one group's names higher; a
    deconfounded one scores them alike."""
    score = quality_scorer(f"reward:{method}", run_dir)
    templates = list(templates) if templates else list(probe_templates(run_dir))
    contexts = list(contexts) if contexts else probe_contexts(run_dir, len(templates))
    out = {}
    for group, names in marker_groups.items():
        pairs = [(t.format(name=name), contexts[i % len(contexts)]) for name in list(names)[:max_names]
                 for i, t in enumerate(templates)]
        out[group] = float(np.mean(score([t for t, _ in pairs], [c for _, c in pairs]))) if pairs else math.nan
    return out


def reward_marker_preferences(run_dir: str | Path, marker_groups: dict[str, list[str]],
                              methods: Sequence[str] | None = None) -> pd.DataFrame:
    """`reward_marker_preference` for every reward model of the run: one row per method, one column per
    marker group, plus `spread` (highest minus lowest group) in the reward's own units."""
    folder = Path(run_dir) / "rewards"
    methods = list(methods) if methods is not None else sorted(
        (p.parent.name for p in folder.glob("*/config.json")), key=lambda m: model_sort_key("rl_" + m))
    contexts = probe_contexts(run_dir)  # read once for every method
    rows = []
    for method in methods:
        prefs = reward_marker_preference(run_dir, method, marker_groups, contexts=contexts)
        rows.append({"method": method, "label": METHOD_LABELS.get(method, method), **prefs,
                     "spread": max(prefs.values()) - min(prefs.values()) if prefs else math.nan})
    return pd.DataFrame(rows, columns=["method", "label", *marker_groups, "spread"])


# ------------------------------------------------------------------ the comparison
def score_generations(generations: pd.DataFrame, scorer: Callable, patterns: dict[str, re.Pattern]) -> pd.DataFrame:
    """Per-generation measures: model, seed, quality, length, repetition and one bool per marker group."""
    words = [tokens(t) for t in generations["text"]]
    contexts = generations["context"].astype(str).tolist() if "context" in generations else [""] * len(generations)
    scores = pd.DataFrame({
        "model": generations["model"].to_numpy(),
        "seed": generations["seed"].to_numpy(),
        "quality": np.asarray(scorer(generations["text"].tolist(), contexts), dtype=float),
        "length": [len(w) for w in words],
        "repetition": [repetition_rate(w) for w in words],
    })
    hits = marker_hits(generations["text"].tolist(), patterns)
    for group in patterns:
        scores[group] = hits[group].to_numpy()
    scores["_tokens"] = words
    return scores


def compare(run_dir: str | Path, config: EvalConfig | None = None, scorer: Callable | None = None,
            generations: pd.DataFrame | None = None) -> ComparisonResult:
    """Evaluate every model of a run (see the module docstring). `scorer(texts, contexts)` overrides
    `config.scorer`; `generations` overrides the run's generations.csv (e.g. several runs pooled)."""
    config = config or EvalConfig()
    run_dir = Path(run_dir)
    if config.scorer is None:
        config = replace(config, scorer=default_scorer(run_dir))
    own_generations = generations is None  # pooled generations may hold another run's base
    generations = load_generations(run_dir) if own_generations else generations
    groups = default_markers(run_dir) if config.markers is None else dict(config.markers)
    patterns = compile_markers(groups)
    scores = score_generations(generations, scorer or quality_scorer(config.scorer, run_dir), patterns)
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
    token_lists = frame["_tokens"].tolist()
    for n in (1, 2):
        # Resampling with replacement duplicates texts, which lowers distinct-n by itself; so the
        # replicates give the spread only and are re-centred on the full-sample value.
        point = distinct_n(token_lists, n)
        reps = _distinct_replicates(token_lists, n, idx)
        out[f"distinct_{n}"] = reps - np.nanmean(reps) + point if np.isfinite(reps).any() else reps
    return out


def _ci(replicates: np.ndarray, level: float) -> list[float]:
    finite = replicates[np.isfinite(replicates)]
    if len(finite) == 0:
        return [math.nan, math.nan]
    tail = (1 - level) / 2 * 100
    return [float(x) for x in np.percentile(finite, [tail, 100 - tail])]


def _model_metrics(name: str, frame: pd.DataFrame, reps: dict, groups: list[str], config: EvalConfig,
                   ref: pd.DataFrame | None, ref_reps: dict | None) -> ModelMetrics:
    token_lists = frame["_tokens"].tolist()
    n = len(frame)
    metrics = ModelMetrics(
        name=name, label=model_label(name), n=n, seeds=sorted(int(s) for s in frame["seed"].unique()),
        quality_mean=float(frame["quality"].mean()), quality_ci=_ci(reps["quality"], config.level),
        length_mean=float(frame["length"].mean()), length_ci=_ci(reps["length"], config.level),
        repetition_mean=float(frame["repetition"].mean()), repetition_ci=_ci(reps["repetition"], config.level),
        distinct_1=distinct_n(token_lists, 1), distinct_1_ci=_ci(reps["distinct_1"], config.level),
        distinct_2=distinct_n(token_lists, 2), distinct_2_ci=_ci(reps["distinct_2"], config.level),
        marker_rates={g: float(frame[g].mean()) for g in groups},
        marker_ci={g: _ci(reps[g], config.level) for g in groups},
        marker_counts={g: int(frame[g].sum()) for g in groups},
        any_marker_rate=float(frame[groups].any(axis=1).mean()) if groups else None,
    )
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


# ------------------------------------------------------------------ the conclusion in words
def _conclusion(result: ComparisonResult) -> str:
    models, ref_name = result.models, result.reference
    if not models:
        return "The run has no generations to compare."
    level = int(round(result.config.get("level", 0.95) * 100))
    alpha = result.config.get("alpha", 0.05)
    ref = models.get(ref_name) if ref_name else None
    pick = lambda *names: next((models[n] for n in names if n in models), None)  # noqa: E731
    target = pick("rl_deconfounded", "dpo_deconfounded")
    naive = pick("rl_naive", "dpo_naive")
    oracle = pick("rl_oracle", "dpo_oracle")
    what = result.quality_name
    sentences = []

    if target is None:  # no deconfounded model: describe the best model instead
        trained = [m for m in models.values() if m.name not in ("base", ref_name)] or list(models.values())
        target = max(trained, key=lambda m: m.quality_mean)
        subject = f"The best-scoring model, {target.label},"
    else:
        subject = "The deconfounded model"
    first = (f"{subject} has a mean {what} of {target.quality_mean:.3f} "
             f"({level}% CI {target.quality_ci[0]:.3f}–{target.quality_ci[1]:.3f})")
    others = [(m, lab) for m, lab in ((naive, "naive RL"), (ref, ref.label if ref else "")) if m and m is not target]
    if others:
        first += " vs " + " and ".join(f"{m.quality_mean:.3f} for {lab}" for m, lab in others)
    sentences.append(first + ".")
    if naive and naive is not target:
        p = result.pvalue(target.name, naive.name)
        diff = target.quality_mean - naive.quality_mean
        rel = diff / naive.quality_mean if naive.quality_mean else math.nan
        if np.isfinite(p) and p < alpha:
            sentences.append(f"That is {abs(rel):.0%} {'higher' if diff > 0 else 'lower'} than naive RL "
                             f"(p = {p:.2g}).")
        else:
            sentences.append(f"The difference from naive RL ({diff:+.3f}) is not statistically significant"
                             f"{f' (p = {p:.2g})' if np.isfinite(p) else ''}.")
    if oracle and oracle is not target:
        share = target.quality_mean / oracle.quality_mean if oracle.quality_mean else math.nan
        sentences.append(f"The model trained on the true quality (oracle) scores {oracle.quality_mean:.3f}, so "
                         f"{'this' if target.name.endswith('deconfounded') else 'the best'} model reaches "
                         f"{share:.1%} of it.")
    if ref and target is not ref:
        p = target.pvalues.get("quality")
        if p is not None and np.isfinite(p):
            verdict = ("significantly above" if target.quality_mean > ref.quality_mean else "significantly below") \
                if p < alpha else "not significantly different from"
            sentences.append(f"It is {verdict} {ref.label} (p = {p:.2g}).")
    sentences += _marker_sentences(result, target, ref, alpha)
    sentences += _reward_sentence(result)
    return " ".join(sentences)


def _marker_sentences(result: ComparisonResult, target: ModelMetrics, ref: ModelMetrics | None,
                      alpha: float) -> list[str]:
    if not result.marker_groups or ref is None:
        return []
    # The largest significant over-use of a marker group by any trained model, relative to the reference.
    worst = None
    for m in result.models.values():
        if m is ref or m.name == "base":
            continue
        for g in result.marker_groups:
            p = m.marker_pvalues.get(g)
            rise = m.marker_rates[g] - ref.marker_rates[g]
            if p is not None and np.isfinite(p) and p < alpha and rise > 0 and (worst is None or rise > worst[2]):
                worst = (m, g, rise, p)
    if worst is None:
        groups = ", ".join(result.marker_groups)
        return [f"No model names the markers ({groups}) significantly more often than {ref.label}."]
    m, g, rise, p = worst
    base_rate = ref.marker_rates[g]
    rel = f" ({rise / base_rate:+.0%} relative)" if base_rate > 0 else ""
    out = [f"{m.label} names {result.marker_phrase(g)} in {m.marker_rates[g]:.1%} of generations vs "
           f"{base_rate:.1%} for {ref.label}: {rise * 100:.1f} points more{rel}, p = {p:.2g}."]
    if target is not m and target is not ref:
        tp = target.marker_pvalues.get(g)
        tail = f" (p = {tp:.2g} vs {ref.label})" if tp is not None and np.isfinite(tp) else ""
        out.append(f"{target.label} does so in {target.marker_rates[g]:.1%}{tail}.")
    return out


def _reward_sentence(result: ComparisonResult) -> list[str]:
    corr = {k: v.get("valid") for k, v in result.reward_truth_corr.items() if v.get("valid") is not None}
    if not corr:
        return []
    parts = [f"{METHOD_LABELS.get(k, k).split(' (')[0]} {v:.2f}" for k, v in corr.items()]
    best = max(corr, key=corr.get)
    return [f"On held-out rows the rewards correlate with true quality as follows: {'; '.join(parts)} "
            f"(best: {METHOD_LABELS.get(best, best)})."]


# ------------------------------------------------------------------ small helpers
def _num(value) -> float | None:
    """A finite float, or None."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _fmt(value, width: int, digits: int, kind: str = "f") -> str:
    value = _num(value)
    return f"{'—':>{width}s}" if value is None else f"{value:{width}.{digits}{kind}}"


# ------------------------------------------------------------------ reward vs truth, row by row
REWARD_POINTS_FILE = "reward_points.csv"


def reward_truth_points(run_dir: str | Path, methods: Sequence[str] | None = None, n: int = 300,
                        seed: int = 0, split: str = "rm_valid") -> pd.DataFrame:
    """Each saved reward model's score vs the true quality on a sample of the run's validation rows
    (the `split` rows as the pipeline assigns them: the table's split column or the run's seeded split).

    Returns columns method, reward, truth; cached in run_dir/outputs/reward_points.csv. Methods whose
    model cannot score the rows (no truth column, missing confounder) are left out. Loads reward models,
    so this imports torch for the MiniLM and fine-tuned backbones.
    """
    run_dir = Path(run_dir)
    cache = run_dir / "outputs" / REWARD_POINTS_FILE
    root = run_dir / "rewards"
    available = sorted((p.parent.name for p in root.glob("*/config.json")), key=lambda m: model_sort_key("rl_" + m))
    wanted = [m for m in (methods or available) if m in available]
    cached = cached_reward_points(run_dir)
    if cached is not None and set(wanted) <= set(cached["method"]):
        return cached[cached["method"].isin(wanted)].reset_index(drop=True)
    data_path = run_dir / "data.parquet"
    if not wanted or not data_path.is_file():
        return pd.DataFrame(columns=["method", "reward", "truth"])
    from ..data import assign_splits
    from ..rewards import RewardModel
    data = pd.read_parquet(data_path)
    config = read_json(run_dir / "config.json", default={}) or {}
    splits, _ = assign_splits(data, int(config.get("seed", 0) or 0))  # the rows the run validated on
    if (splits == split).any():
        data = data[(splits == split).to_numpy()]
    data = data.sample(min(n, len(data)), random_state=seed).reset_index(drop=True)
    frames = []
    for method in wanted:
        model = RewardModel.load(root / method)
        cols = model.columns
        if not cols.truth or cols.truth not in data.columns:
            continue
        confounder = None
        if model.needs_confounder:
            if not cols.confounder or cols.confounder not in data.columns:
                continue
            confounder = pd.to_numeric(data[cols.confounder], errors="coerce").to_numpy(dtype=float)
        contexts = data[cols.context].astype(str).tolist() if cols.context and cols.context in data.columns else None
        scores = model.score(data[cols.text].astype(str).tolist(), contexts, confounder)
        frames.append(pd.DataFrame({"method": method, "reward": np.asarray(scores, dtype=float),
                                    "truth": pd.to_numeric(data[cols.truth], errors="coerce").to_numpy(dtype=float)}))
    points = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["method", "reward", "truth"])
    if len(points):
        cache.parent.mkdir(parents=True, exist_ok=True)
        points.to_csv(cache, index=False)
    return points


def cached_reward_points(run_dir: str | Path) -> pd.DataFrame | None:
    """The reward-vs-truth points saved by `reward_truth_points`, or None."""
    cache = Path(run_dir) / "outputs" / REWARD_POINTS_FILE
    return pd.read_csv(cache) if cache.is_file() else None
