"""How the estimate's uncertainty reaches the reward (the `reward_band` of an estimate).

The corrected outcome uses β̂. The reward is retrained (frozen features, method "deconfounded") on the outcome
corrected at β̂ − 2 se, β̂ and β̂ + 2 se (every confounder term shifted by twice its own standard error), and
the three rewards are compared on held-out texts: their Spearman rank correlations (RL and DPO only use the
reward's ranking) and, when the table has a truth column (the simulation), each one's Pearson correlation with
the truth. A user sees whether the choice inside the interval matters for the model they are about to train.

Kept fast enough for the page: TF-IDF features by default and a random sample of rows (both said in the
entry); one TF-IDF vocabulary is shared by the three rewards, so the only difference between them is the
target.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace

import numpy as np
import pandas as pd

from ..causal import EstimateResult, deconfounded_outcome
from .config import RewardColumns, RewardConfig
from .features import FeatureCache
from .metrics import pearson
from .training import train_reward

ENDS = (("low", -2.0), ("estimate", 0.0), ("high", 2.0))
SAME_RANKING = 0.98  # Spearman above this between the ends: the choice inside the interval does not matter


def reward_band(data: pd.DataFrame, roles, result: EstimateResult, *, backbone: str = "tfidf", rows: int = 6000,
                seed: int = 0, l2: float | None = None) -> dict:
    """Train the deconfounded reward at β̂ − 2se, β̂, β̂ + 2se on a sample of `data`, compare on held-out rows."""
    started = time.perf_counter()
    if not roles.text:
        return {"reason": "does not apply, because no text column is tagged: the reward reads the text"}
    frame = data.dropna(subset=[result.outcome]).reset_index(drop=True)
    if len(frame) > rows:
        frame = frame.sample(n=rows, random_state=seed).reset_index(drop=True)
    if len(frame) < 60:
        return {"reason": f"does not apply, because only {len(frame)} rows have an outcome (the band needs 60)"}
    order = np.random.default_rng(seed).permutation(len(frame))
    cut1, cut2 = int(0.6 * len(frame)), int(0.8 * len(frame))
    parts = {"train": frame.iloc[order[:cut1]], "valid": frame.iloc[order[cut1:cut2]],
             "held_out": frame.iloc[order[cut2:]]}
    columns = RewardColumns(text=roles.text, context=roles.context, outcome=result.outcome, truth=roles.truth,
                            corrected="_corrected")
    config = RewardConfig(method="deconfounded", backbone=backbone, l2=l2, seed=seed)
    features = FeatureCache.for_config(config)
    held = parts["held_out"]
    truth = pd.to_numeric(held[roles.truth], errors="coerce") if roles.truth and roles.truth in held else None
    scores, coefs, truth_corr = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="reward_band_") as tmp:
        for name, k in ENDS:
            shifted = _shifted(result, k)
            coefs[name] = {t: shifted.coef[t] for t in result.terms}
            split = {}
            for part, rows_ in parts.items():
                split[part] = rows_.assign(_corrected=deconfounded_outcome(rows_, shifted)[0])
            model = train_reward(config, split["train"], split["valid"], columns, f"{tmp}/{name}", features=features)
            scores[name] = model.score_frame(split["held_out"])
            if truth is not None:
                truth_corr[name] = pearson(scores[name], truth)
    ranks = {name: pd.Series(s).rank().to_numpy() for name, s in scores.items()}
    spearman = {f"{a}_vs_{b}": pearson(ranks[a], ranks[b])
                for a, b in (("low", "estimate"), ("estimate", "high"), ("low", "high"))}
    worst = min(v for v in spearman.values() if v is not None) if any(v is not None for v in spearman.values()) \
        else None
    term = result.terms[0]
    out = {"backbone": backbone, "rows": len(frame), "held_out_rows": len(held), "sampled": len(data) > rows,
           "coef": coefs, "spearman": spearman, "pearson_truth": truth_corr or None,
           "seconds": round(time.perf_counter() - started, 2),
           "note": f"frozen {backbone} features, ridge head, trained on {len(parts['train']):,} sampled rows "
                   f"({len(parts['valid']):,} to pick λ, {len(held):,} held out)"}
    if worst is None:
        out["verdict"] = "the rewards could not be compared (constant scores on the held-out rows)"
        return out
    matters = worst < SAME_RANKING
    text = (f"retrained at {term} = {coefs['low'][term]:.4g}, {coefs['estimate'][term]:.4g} and "
            f"{coefs['high'][term]:.4g} (β̂ − 2 se, β̂, β̂ + 2 se), the three rewards rank held-out texts with "
            f"Spearman ≥ {worst:.3f}: the choice inside the interval "
            + ("matters for the model you train" if matters else "hardly matters"))
    if truth_corr and all(v is not None for v in truth_corr.values()):
        text += (" (correlation with the truth: " + ", ".join(f"{n} {v:.3f}" for n, v in truth_corr.items()) + ")")
    out.update({"choice_matters": matters, "min_spearman": worst, "verdict": text})
    return out


def reward_band_from_store(store, table: str, result: EstimateResult, **kwargs) -> dict:
    """Read a sample of the tagged table (text, context, outcome, confounders, truth) and run `reward_band`."""
    roles = store.require_roles(table)
    columns = [c for c in dict.fromkeys([roles.text, roles.context, result.outcome, roles.truth,
                                         *[t["column"] for t in result.confounder_terms]]) if c]
    rows = kwargs.get("rows", 6000)
    total = store.row_count(table)
    data = store.read_frame(table, columns, sample_rows=min(total, rows), seed=kwargs.get("seed", 0))
    out = reward_band(data, roles, result, **kwargs)
    if "reason" not in out:
        out.update({"table_rows": total, "sampled": total > rows})
    return out


def _shifted(result: EstimateResult, k: float) -> EstimateResult:
    """The result with every confounder coefficient moved by k standard errors."""
    coef = dict(result.coef)
    for term in result.terms:
        coef[term] = result.coef[term] + k * result.std_err[term]
    return replace(result, coef=coef)
