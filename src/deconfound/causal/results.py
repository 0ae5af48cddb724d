"""What an estimator is asked and what it answers: `EstimatorConfig` (the options shared by every estimator)
and `EstimateResult` (coefficients, intervals, first stage, tests, warnings; its `to_dict()` is the CLI's
`--json` payload and a run folder's estimate.json), plus the method names, labels and the weak-instrument
threshold, and the tables the Deconfound page shows of several results.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pandas as pd

from ..jsonio import jsonable as _clean_json

ESTIMATORS = ("ols", "iv", "dml")
WEAK_F = 10.0
NOT_REFUTED = "not run: `deconfound refute --table T`, `deconfound estimate` or the Deconfound page runs them"
NO_REWARD_BAND = ("not computed: `deconfound estimate` (without --no-reward-band) or the Deconfound page retrains the "
                  "reward at β̂ ± 2 se")


@dataclass
class EstimatorConfig:
    """Options shared by the estimators (defaults work for the demo and most logs)."""

    time_effects: bool = field(default=True, metadata={
        "help": "add weekday and calendar-month fixed effects when a timestamp is tagged"})
    cov_type: str = field(default="robust", metadata={
        "help": "standard errors: 'robust' (heteroskedasticity-robust), 'unadjusted' or 'clustered' (by `cluster`)"})
    cluster: str | None = field(default=None, metadata={
        "help": "cluster the standard errors by this column (e.g. the context, an experiment id or the month); "
                "setting it implies cov_type 'clustered'"})
    level: float = field(default=0.95, metadata={"help": "confidence level of the intervals"})
    weak_f: float = field(default=WEAK_F, metadata={"help": "first-stage F below this warns of a weak instrument"})
    folds: int = field(default=5, metadata={"help": "DML: cross-fitting folds"})
    embeddings: str = field(default="tfidf", metadata={
        "help": "DML nuisance text features: 'tfidf' (sparse TF-IDF words+bigrams, fast) or 'minilm' "
                "(sentence embeddings, slower on CPU, cached)"})
    use_context: bool = field(default=False, metadata={
        "help": "DML: also use the context (prompt) text as nuisance features (slower; only needed when the "
                "outcome's text part depends on the context too)"})
    ridge_alpha: float = field(default=1.0, metadata={"help": "DML: ridge penalty of the nuisance regressions"})
    dml_max_rows: int = field(default=50_000, metadata={
        "help": "DML fits on a random sample of at most this many rows (the estimate applies to all rows)"})
    seed: int = field(default=0, metadata={"help": "random seed (DML folds, sampling, refutations)"})
    robust_inference: bool = field(default=True, metadata={
        "help": "IV: add weak-instrument-robust sets (Anderson–Rubin, CLR), the effective F, LIML and the "
                "exclusion-restriction sensitivity; DML: the omitted-variable bounds"})
    gamma_range: tuple[float, float] | None = field(default=None, metadata={
        "help": "IV sensitivity: range [low, high] of the instrument's direct effect γ on the outcome (outcome "
                "units per standard deviation of the instrument's push on the confounder); None = ± gamma_share "
                "of the instrument's whole effect on the outcome"})
    gamma_share: float = field(default=0.25, metadata={
        "help": "IV sensitivity: default γ range as a share of the instrument's reduced-form effect"})
    cf_y: float = field(default=0.03, metadata={
        "help": "DML sensitivity: share of the outcome's residual variation an omitted confounder explains"})
    cf_d: float = field(default=0.03, metadata={
        "help": "DML sensitivity: share of the confounder's residual variation an omitted confounder explains"})
    placebo_draws: int = field(default=5, metadata={"help": "refutations: permutations of the placebo checks"})
    bootstrap_draws: int = field(default=20, metadata={"help": "refutations: resamples of the subset check"})

    def __post_init__(self):
        if self.cluster:
            self.cov_type = "clustered"
        if self.gamma_range is not None:
            self.gamma_range = tuple(float(v) for v in self.gamma_range)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        data = asdict(self)
        if data["gamma_range"] is not None:
            data["gamma_range"] = list(data["gamma_range"])
        return data


@dataclass
class EstimateResult:
    """A fitted estimate of the confounders' effect; `to_dict()` is the CLI's `--json` payload."""

    method: str
    n: int
    outcome: str
    coef: dict[str, float]
    std_err: dict[str, float]
    conf_int: dict[str, list[float]]
    pvalues: dict[str, float]
    confounder_terms: list[dict]  # [{"term", "column", "level"}]: the terms that make up h(C)
    first_stage: dict[str, dict] = field(default_factory=dict)
    tests: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    formula: str = ""
    nuisance: dict | None = None
    table: str | None = None
    config: dict = field(default_factory=dict)
    # weak-instrument-robust sets, effective F, LIML (IV); each entry {..} or {"reason": "does not apply, …"}
    robust_ci: dict = field(default_factory=dict)
    # exclusion-restriction (IV, Conley et al.) or omitted-variable (DML, Chernozhukov et al.) sensitivity
    sensitivity: dict = field(default_factory=dict)
    # placebo confounder, random common cause, data subsets, placebo instrument: {name: {passed, verdict, ...}}
    refutations: dict = field(default_factory=lambda: {"reason": NOT_REFUTED})
    # the reward retrained at β̂ ± 2 se (filled in by `rewards.reward_band`)
    reward_band: dict = field(default_factory=lambda: {"reason": NO_REWARD_BAND})

    @property
    def terms(self) -> list[str]:
        """Names of the confounder terms (e.g. 'popularity', 'region[East]')."""
        return [t["term"] for t in self.confounder_terms]

    def confounder_coef(self) -> dict[str, float]:
        """β̂ of the confounder terms only (what ĥ(C) is made of)."""
        return {t: self.coef[t] for t in self.terms}

    def verdict(self) -> str:
        """One plain-language sentence about the confounder effect."""
        label = ESTIMATOR_LABELS[self.method]
        parts = []
        if len(self.terms) > 6:  # a calendar of effects: their range, not dozens of numbers
            values = [self.coef[t] for t in self.terms]
            columns = ", ".join(dict.fromkeys(t["column"] for t in self.confounder_terms))
            scale = " on log(1 + outcome)" if self.config.get("outcome_scale") == "log1p" else ""
            calendar = (f" ({self.config.get('calendar')} calendar)"
                        if any(t.get("calendar") for t in self.confounder_terms) else "")
            return (f"{label} on {self.n:,} rows: {len(values)} effects of {columns}{calendar}{scale}, from "
                    f"{min(values):+.4g} to {max(values):+.4g}.")
        for term in self.terms:
            lo, hi = self.conf_int[term]
            parts.append(f"{term} {self.coef[term]:+.4g} per unit ({int(self.config.get('level', 0.95) * 100)}% CI "
                         f"{lo:.4g} to {hi:.4g})")
        text = f"{label} on {self.n:,} rows: " + "; ".join(parts) + "."
        if any("weak instrument" in w for w in self.warnings):
            text += " The instrument is weak, so do not trust this estimate."
        return text

    def summary(self) -> str:
        """A readable multi-line report."""
        lines = [self.verdict(), "", f"model: {self.formula}", "",
                 f"{'term':32s} {'coef':>10s} {'std err':>10s} {'CI low':>10s} {'CI high':>10s}"]
        fixed = [t for t in self.coef if t.startswith(("weekday[", "month["))]
        for term, value in self.coef.items():
            if term in fixed:
                continue
            lo, hi = self.conf_int.get(term, [math.nan, math.nan])
            mark = " *" if term in self.terms else ""
            lines.append(f"{term[:32]:32s} {value:10.4f} {self.std_err.get(term, math.nan):10.4f} "
                         f"{lo:10.4f} {hi:10.4f}{mark}")
        if fixed:
            lines.append(f"(+ {len(fixed)} weekday/month fixed effects, in to_dict())")
        lines.append("(* = confounder term, removed by the deconfounded outcome)")
        if self.first_stage:
            lines += ["", "first stage:"]
            lines += [f"  {k}: F = {v['f_stat']:.1f}, partial R² = {v['partial_r2']:.3f}"
                      for k, v in self.first_stage.items()]
        if self.nuisance:
            lines += ["", "nuisance fit (cross-fitted R²): " + ", ".join(
                f"{k} {v:.3f}" for k, v in self.nuisance.get("r2", {}).items())]
        if self.tests:
            lines += ["", "tests:"]
            for name, test in self.tests.items():
                if "reason" in test:
                    lines.append(f"  {name}: n/a ({test['reason']})")
                else:
                    lines.append(f"  {name}: stat {test['stat']:.3f}, p = {test['pvalue']:.3g}")
        lines += self._robustness_summary()
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _robustness_summary(self) -> list[str]:
        """The weak-instrument-robust sets, the sensitivity, the refutations and the reward band, in lines."""
        from .sensitivity import sensitivity_verdict
        from .weak_iv import describe_set
        lines = []
        for term, entry in ((self.robust_ci or {}).get("terms") or {}).items():
            lines += ["", f"weak-instrument-robust ({term}):"]
            for key, name in (("anderson_rubin", "Anderson–Rubin"), ("conditional_lr", "conditional LR")):
                if key in entry:
                    lines.append(f"  {describe_set(entry[key], name)}")
            eff = entry.get("effective_f") or {}
            if "stat" in eff:
                lines.append(f"  effective F {eff['stat']:,.1f}: {eff['meaning']}")
        liml = (self.robust_ci or {}).get("liml") or {}
        if "coef" in liml:
            lines.append("  LIML: " + ", ".join(f"{t} {v:.4g} (se {liml['std_err'][t]:.3g})"
                                               for t, v in liml["coef"].items()))
        verdict = sensitivity_verdict(self)
        if verdict:
            lines += ["", f"sensitivity: {verdict}"]
        elif "reason" in (self.sensitivity or {}):
            lines += ["", f"sensitivity: {self.sensitivity['reason']}"]
        if "checks" in (self.refutations or {}):
            lines += ["", f"refutations: {self.refutations['verdict']}"]
            lines += [f"  {k}: {v.get('verdict') or v.get('reason')}" for k, v in self.refutations["checks"].items()]
        if "verdict" in (self.reward_band or {}):
            lines += ["", f"reward band: {self.reward_band['verdict']}"]
        return lines

    def to_dict(self) -> dict:
        """JSON-ready dict (method, n, coef, std_err, conf_int, first_stage, tests, warnings, ...)."""
        return _clean_json(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "EstimateResult":
        """Rebuild from `to_dict()` output (e.g. a run folder's estimate.json)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in names})


ESTIMATOR_LABELS = {"ols": "Naive OLS", "iv": "IV (2SLS)", "dml": "DML (partially linear)"}


def compare_estimates(results: dict[str, EstimateResult]) -> pd.DataFrame:
    """One row per method and confounder term: its label, the coefficient, the interval and the rows used."""
    return pd.DataFrame([{"method": ESTIMATOR_LABELS[m], "term": t, "coefficient": r.coef[t],
                          "CI low": r.conf_int[t][0], "CI high": r.conf_int[t][1], "rows": r.n}
                         for m, r in results.items() for t in r.terms])


def explain_test(name: str, test: dict) -> str:
    """What an IV test says, in words (at the 5% level): Sargan on the instruments' agreement, Wu–Hausman on
    whether naive OLS is biased."""
    if "reason" in test:
        return f"does not apply: {test['reason']}"
    small = test["pvalue"] < 0.05
    if name == "sargan":
        return ("the instruments disagree: one of them may affect the outcome directly" if small
                else "the instruments agree with each other")
    return ("the confounder moves with the unexplained outcome: naive OLS is biased, use IV" if small
            else "no evidence that naive OLS is biased")


def spec_tests_table(result: EstimateResult) -> pd.DataFrame:
    """The result's specification tests as a table (test, statistic, p-value, what it means)."""
    return pd.DataFrame([{"test": {"sargan": "Sargan", "wu_hausman": "Wu–Hausman"}.get(name, name),
                          "statistic": f"{t['stat']:,.2f}" if "stat" in t else "–",
                          "p-value": f"{t['pvalue']:.3g}" if "pvalue" in t else "–",
                          "what it means": explain_test(name, t)} for name, t in result.tests.items()])

