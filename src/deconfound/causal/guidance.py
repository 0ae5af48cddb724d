"""What the Deconfound step tells a user in words, from the tests it already runs: the one-line verdict at the
top of the page, which estimate to use, a warning before saving a correction the tests reject, the sentence
after saving, what a categorical effect is compared with, and the lines the HTML report and the model card
print about the estimate (its robust interval and its sensitivity).

Every rule here reads a result's JSON-ready parts (`EstimateResult` or its `to_dict()`), so the page, the CLI,
the report and the model card say the same thing.
"""

from __future__ import annotations

import math

import pandas as pd

from .results import ESTIMATOR_LABELS, WEAK_F, EstimateResult
from .sensitivity import sensitivity_verdict
from .weak_iv import MOP_CRITICAL_10PCT, describe_set, set_text


def _first(result: EstimateResult, key: str) -> dict:
    """The first confounder term's entry of robust_ci / sensitivity (or {})."""
    block = getattr(result, key) or {}
    terms = block.get("terms") or {}
    return terms.get(result.terms[0], {}) if result.terms else {}


def instrument_strength(result: EstimateResult) -> tuple[str, float | None]:
    """('strong' | 'weak' | 'unknown', the F it is judged by): the effective F when there is one, else the
    first-stage F of the first confounder term."""
    eff = _first(result, "robust_ci").get("effective_f") or {}
    stat = eff.get("stat")
    if stat is None and result.first_stage:
        stat = next(iter(result.first_stage.values())).get("f_stat")
    if stat is None or not math.isfinite(stat):
        return "unknown", None
    return ("strong" if stat >= result.config.get("weak_f", WEAK_F) else "weak"), float(stat)


def exclusion_doubts(result: EstimateResult) -> list[str]:
    """Which checks say an instrument reaches the outcome by another path (Sargan, placebo instrument)."""
    doubts = []
    sargan = result.tests.get("sargan") or {}
    if "pvalue" in sargan and sargan["pvalue"] < 0.05:
        doubts.append(f"the Sargan test says the instruments disagree (p = {sargan['pvalue']:.3g})")
    placebo = ((result.refutations or {}).get("checks") or {}).get("placebo_instrument") or {}
    if placebo.get("passed") is False:
        doubts.append("the placebo-instrument check finds a direct effect on the outcome")
    return doubts


def page_verdict(result: EstimateResult) -> str:
    """One plain sentence: the instrument's strength, how far the exclusion restriction may bend, whether the
    placebo checks pass (parts that were not computed are left out)."""
    parts = []
    if result.method == "iv":
        strength, stat = instrument_strength(result)
        if strength != "unknown":
            parts.append(f"the instrument is {strength} (effective F {stat:,.1f})")
        doubts = exclusion_doubts(result)
        if doubts:
            parts.append(doubts[0])
    elif result.method == "dml":
        parts.append("no instrument is used: DML removes what the text predicts")
    else:
        parts.append("naive OLS takes the confounder as unrelated to the text's quality")
    sens = sensitivity_verdict(result)
    if sens:
        parts.append(sens)
    refutations = result.refutations or {}
    if "verdict" in refutations:
        parts.append(refutations["verdict"])
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] + "." if text else ""


def recommended(results: dict[str, EstimateResult]) -> tuple[str, str]:
    """(method, why) from the fitted results: IV when its instrument is strong and no check doubts its
    exclusion; otherwise DML when fitted; naive OLS only when nothing else is."""
    iv, dml = results.get("iv"), results.get("dml")
    if iv is not None:
        strength, stat = instrument_strength(iv)
        doubts = exclusion_doubts(iv)
        if strength != "weak" and not doubts:
            return "iv", "the instrument is strong and nothing suggests it reaches the outcome directly"
        why = (f"the instrument is weak (F {stat:.1f})" if strength == "weak" else doubts[0])
        if dml is not None:
            return "dml", f"{why}, so DML (no instrument) is the safer correction"
        return "iv", f"{why}; no alternative was fitted, so use IV with its weak-instrument-robust (AR) set"
    if dml is not None:
        return "dml", "no instrument is tagged; DML removes what the text predicts"
    return "ols", "only naive OLS applies to this table (tag an instrument or the text for a better estimate)"


def save_warning(method: str, results: dict[str, EstimateResult]) -> str | None:
    """A warning before saving a correction that the tests reject, else None."""
    iv = results.get("iv")
    if method == "ols" and iv is not None:
        hausman = iv.tests.get("wu_hausman") or {}
        if "pvalue" in hausman and hausman["pvalue"] < 0.05:
            return (f"Naive OLS is biased here: the Wu–Hausman test rejects that the confounder is unrelated to the "
                    f"unexplained outcome (p = {hausman['pvalue']:.2g}), so this column removes the wrong amount. "
                    "Save the IV correction instead.")
    if method == "iv" and iv is not None:
        strength, stat = instrument_strength(iv)
        if strength == "weak":
            return (f"The instrument is weak (F {stat:.1f}): the IV correction is unreliable. Prefer DML, or check "
                    "the Anderson–Rubin set before training on it.")
        doubts = exclusion_doubts(iv)
        if doubts:
            return f"The exclusion restriction is in doubt: {doubts[0]}. The IV correction may be biased."
    return None


def saved_column_sentence(meta: dict, table: str) -> str:
    """What was saved, as a sentence (from `write_deconfounded_column`'s meta)."""
    effects = " + ".join(f"{coef:.4g} × {term}" for term, coef in (meta.get("coef") or {}).items())
    label = ESTIMATOR_LABELS.get(meta.get("method"), meta.get("method"))
    centred = (f" minus its average ({meta['offset']:.4g}), so the column keeps the outcome's mean"
               if meta.get("centred") else "")
    return (f"Saved '{meta['column']}' to '{table}': {meta.get('source_outcome')} minus the {label} estimate "
            f"of the confounders' part ({effects}{centred}). The original column is unchanged; the deconfounded "
            "reward on the Train step reads this one.")


def baseline_note(result: EstimateResult) -> str | None:
    """What the categorical confounder effects are compared with, e.g. "team_region[East] etc. are differences
    from team_region = None", or None when every term is numeric."""
    groups: dict[str, str] = {}
    for term in result.confounder_terms:
        if term.get("level") is not None:
            groups.setdefault(term["column"], term.get("reference") or "the most frequent level")
    if not groups:
        return None
    return "Categorical effects are differences from a baseline level: " + "; ".join(
        f"each {col}[level] is compared with {col} = {ref!r}" for col, ref in groups.items()) + "."


def mark_recommended(compare: pd.DataFrame, method: str) -> pd.DataFrame:
    """The comparison table (`compare_estimates`) with a 'recommended' column (✓ on the recommended method)."""
    label = ESTIMATOR_LABELS.get(method, method)
    return compare.assign(recommended=["✓" if m == label else "" for m in compare["method"]])


def robust_ci_table(result: EstimateResult) -> pd.DataFrame:
    """One row per weak-instrument-robust piece of the first confounder term: what, the set, what it means."""
    entry = _first(result, "robust_ci")
    rows = []
    for key, name in (("anderson_rubin", "Anderson–Rubin set"), ("conditional_lr", "Conditional LR set")):
        piece = entry.get(key) or {}
        rows.append({"check": name, "value": set_text(piece) if "reason" not in piece else "does not apply", "covariance": piece.get("covariance", "–"),
                     "what it means": piece.get("reason") or ("valid however weak the instrument; "
                                                              "an unbounded set means the data cannot rule out any "
                                                              "effect size")})
    eff = entry.get("effective_f") or {}
    rows.append({"check": "Effective F (Montiel Olea–Pflueger)",
                 "value": f"{eff['stat']:,.1f}" if "stat" in eff else "does not apply",
                 "covariance": eff.get("covariance", "–"),
                 "what it means": eff.get("meaning") or eff.get("reason", "")
                 + ("" if "stat" not in eff else f" (critical value {MOP_CRITICAL_10PCT})")})
    liml = (result.robust_ci or {}).get("liml") or {}
    term = result.terms[0] if result.terms else None
    if term and "coef" in liml:
        lo, hi = liml["conf_int"][term]
        rows.append({"check": "LIML", "value": f"{liml['coef'][term]:.4g} [{lo:.4g}, {hi:.4g}]",
                     "covariance": (result.robust_ci.get("covariance") or {}).get("label", "–"),
                     "what it means": "less biased than 2SLS with many or weak instruments; close to 2SLS = fine"})
    return pd.DataFrame(rows)


def refutations_table(refutations: dict) -> pd.DataFrame:
    """One row per refutation: check, verdict (pass/fail/does not apply), the sentence with its number."""
    names = {"placebo_confounder": "Placebo confounder", "random_common_cause": "Random common cause",
             "data_subsets": "Data subsets", "placebo_instrument": "Placebo instrument"}
    rows = []
    for key, check in (refutations.get("checks") or {}).items():
        status = "does not apply" if "reason" in check else ("pass" if check["passed"] else "FAIL")
        rows.append({"check": names.get(key, key), "result": status,
                     "detail": check.get("verdict") or check.get("reason", "")})
    return pd.DataFrame(rows, columns=["check", "result", "detail"])


def robustness_lines(estimate: dict) -> list[str]:
    """Lines for the HTML report and the model card from an estimate's JSON: the estimate, its robust
    interval and the sensitivity verdict (only what was recorded)."""
    try:
        result = EstimateResult.from_dict(estimate)
    except TypeError:
        return []
    if not result.terms or result.terms[0] not in result.coef:
        return []
    term = result.terms[0]
    level = int(round(result.config.get("level", 0.95) * 100))
    lo, hi = result.conf_int.get(term, [math.nan, math.nan])
    lines = [f"Estimate ({ESTIMATOR_LABELS.get(result.method, result.method)}): {term} {result.coef[term]:+.4g} "
             f"per unit, {level}% interval [{lo:.4g}, {hi:.4g}]."]
    ar = _first(result, "robust_ci").get("anderson_rubin")
    if ar and "reason" not in ar:
        lines.append(f"Weak-instrument-robust interval: {describe_set(ar, 'Anderson–Rubin')}.")
    sens = sensitivity_verdict(result)
    lines.append(f"Sensitivity: {sens}." if sens else "Sensitivity: not computed for this estimate.")
    if "verdict" in (result.refutations or {}):
        lines.append(f"Refutations: {result.refutations['verdict']}.")
    return lines
