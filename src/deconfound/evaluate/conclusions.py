"""The conclusion of a comparison in words, computed from its numbers (`ComparisonResult.conclusion()`).

One paragraph for readers who skip the tables: how the deconfounded model (or the best one) compares with
naive RL, the oracle and the reference on quality, which marker group a model learned to over-use, and how
well each reward followed true quality. Every number in it comes from the result; nothing is written by hand.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..rewards import METHOD_LABELS

if TYPE_CHECKING:  # the result type only annotates here; comparison imports this module
    from .comparison import ComparisonResult, ModelMetrics


def conclusion_text(result: ComparisonResult) -> str:
    """The plain-language paragraph of a comparison (see the module docstring)."""
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
