"""Which rows train what: the paper's five splits (App. D) and the split of a table that has none.

`sft` teaches the generator the logs' style, `rm` / `rm_valid` train and validate the reward models, `rl`
holds the RL prompts and `test` the held-out prompts every model writes for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("sft", "rm", "rm_valid", "rl", "test")
# App. D split of the 54,553 MIND sports articles; scaled to a table's size by `split_counts`.
PAPER_SPLITS = {"sft": 20_000, "rm": 10_000, "rm_valid": 3_000, "rl": 10_000, "test": 11_553}


def split_counts(n: int) -> dict[str, int]:
    """Rows per split for n rows, in the paper's App. D proportions (test takes the rest)."""
    total = sum(PAPER_SPLITS.values())
    counts = {k: max(1, round(n * v / total)) for k, v in PAPER_SPLITS.items() if k != "test"}
    counts["test"] = n - sum(counts.values())
    return counts


def assign_splits(data: pd.DataFrame, seed: int) -> tuple[pd.Series, str | None]:
    """The split of each row: the table's `split` column when it has the paper's splits, else a seeded
    split in the paper's proportions (App. D). Returns (splits, note)."""
    if "split" in data.columns:
        values = data["split"].astype(str)
        present = set(values.unique())
        if {"rm", "rl", "test"} <= present:
            note = None
            if "rm_valid" not in present:
                values = values.copy()
                rm = values.index[values == "rm"]
                valid = np.random.default_rng(seed).permutation(rm)[: max(1, len(rm) // 5)]
                values.loc[valid] = "rm_valid"
                note = "the split column has no rm_valid rows: 20% of the rm rows validate the reward models"
            return values, note
    counts = split_counts(len(data))
    labels = np.concatenate([[name] * counts[name] for name in SPLITS])
    order = np.random.default_rng(seed).permutation(len(data))
    values = pd.Series(index=data.index, dtype=object)
    values.iloc[order] = labels
    return values, (f"no usable split column: rows were split {', '.join(f'{k} {v}' for k, v in counts.items())} "
                    f"(seed {seed})")
