"""Preference pairs for DPO: observed (texts that share a context, ranked by the outcome) or sampled from the
policy and ranked by a reward callable."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ..errors import DeconfoundError
from ..models import generate_with_stats, load_generator
from .plumbing import _plain_list, _require_columns


def build_preference_pairs(rows: pd.DataFrame, *, outcome: str = "outcome", context: str = "context",
                           text: str = "text", group: str | None = None, min_gap: float | None = None,
                           max_pairs_per_group: int = 4, min_pairs: int = 8, policy_path=None,
                           reward_fn: Callable | None = None, samples_per_prompt: int = 4,
                           max_prompts: int = 500, seed: int = 0, generate_kwargs: dict | None = None) -> pd.DataFrame:
    """DPO pairs (prompt = context, chosen, rejected), built one of two ways (df.attrs["source"]):

    (a) "observed": texts that share a context (or an experiment id, `group`) are ranked by the
        `outcome` column (raw or corrected); the best is paired with the worst, the second best with
        the second worst, ...; near-ties (gap < min_gap, default 0.1 sd of the outcome) are skipped and
        each group gives at most `max_pairs_per_group` pairs. Used when it yields ≥ `min_pairs` pairs.
    (b) "sampled": otherwise (observational logs usually have one text per context), the policy
        (normally SFT) writes `samples_per_prompt` texts per context, `reward_fn` scores them, and the
        best is paired with the worst (distinct texts, gap above min_gap).
    """
    _require_columns(rows, [context, text, outcome] if reward_fn is None else [context], "preference pairs")
    if {text, outcome} <= set(rows.columns):
        observed = _observed_pairs(rows, outcome, context, text, group, min_gap, max_pairs_per_group)
        if len(observed) >= min_pairs:
            observed.attrs["source"] = "observed"
            return observed
    if policy_path is None or reward_fn is None:
        raise DeconfoundError(
            f"fewer than {min_pairs} pairs of texts share a context{' or ' + group if group else ''}: give "
            "policy_path and reward_fn so pairs can be sampled from the model and ranked by the reward")
    sampled = _sampled_pairs(rows, context, text, outcome, policy_path, reward_fn, samples_per_prompt,
                             max_prompts, seed, min_gap, generate_kwargs or {})
    sampled.attrs["source"] = "sampled"
    return sampled


def _observed_pairs(rows, outcome, context, text, group, min_gap, max_pairs) -> pd.DataFrame:
    data = rows.dropna(subset=[context, text, outcome])
    key = group or context
    gap = min_gap if min_gap is not None else 0.1 * float(data[outcome].std(ddof=0) or 0.0)
    out = []
    for _, members in data.groupby(key, sort=False):
        if len(members) < 2:
            continue
        members = members.sort_values(outcome, ascending=False)
        for i in range(min(len(members) // 2, max_pairs)):
            best, worst = members.iloc[i], members.iloc[len(members) - 1 - i]
            if best[outcome] - worst[outcome] < gap or str(best[text]) == str(worst[text]):
                continue
            out.append({"prompt": str(best[context]), "chosen": str(best[text]), "rejected": str(worst[text]),
                        "chosen_score": float(best[outcome]), "rejected_score": float(worst[outcome]),
                        "group": str(best[key])})
    return pd.DataFrame(out, columns=["prompt", "chosen", "rejected", "chosen_score", "rejected_score", "group"])


def _sampled_pairs(rows, context, text, outcome, policy_path, reward_fn, k, max_prompts, seed, min_gap,
                   generate_kwargs):
    data = rows.dropna(subset=[context]).drop_duplicates(subset=[context])
    if len(data) > max_prompts:
        data = data.sample(n=max_prompts, random_state=seed)
    contexts = data[context].astype(str).tolist()
    extra = {c: _plain_list(data[c]) for c in data.columns if c not in (context, text, outcome)}
    model, tokenizer = load_generator(policy_path)
    samples = [generate_with_stats(policy_path, contexts, seed=seed + j, model=model, tokenizer=tokenizer,
                                   **generate_kwargs).texts for j in range(k)]
    scores = np.stack([np.asarray(reward_fn(s, prompts=contexts, context=contexts, **extra), dtype=float)
                       for s in samples], axis=1)  # prompts × k
    gap = min_gap if min_gap is not None else 0.1 * float(np.nanstd(scores) or 0.0)
    out = []
    for i, ctx in enumerate(contexts):
        best, worst = int(np.nanargmax(scores[i])), int(np.nanargmin(scores[i]))
        chosen, rejected = samples[best][i], samples[worst][i]
        if scores[i, best] - scores[i, worst] < gap or chosen == rejected or not chosen or not rejected:
            continue
        out.append({"prompt": ctx, "chosen": chosen, "rejected": rejected, "chosen_score": float(scores[i, best]),
                    "rejected_score": float(scores[i, worst]), "group": ctx})
    return pd.DataFrame(out, columns=["prompt", "chosen", "rejected", "chosen_score", "rejected_score", "group"])
