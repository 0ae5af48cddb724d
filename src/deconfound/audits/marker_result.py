"""What the marker audit found (Table 3 and its deconfounded counterpart): per run (model × training seed ×
generation seed) the share of generations containing each marker word, the mean and standard error over runs per
model, and two-sample t-tests over runs (App. B: "both increases statistically significant").

Models: base (generation seeds only), sft, dpo_naive (pairs ranked by the raw outcome) and dpo_deconfounded (pairs
ranked by the outcome with the rule grouping's effect removed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import NotFoundError
from ..evaluate import compile_markers, marker_hits, welch_pvalue
from ..jsonio import jsonable, read_json
from .marker import MarkerAuditConfig
from .rules import marker_words

MODEL_ORDER = ("base", "sft", "dpo_naive", "dpo_deconfounded")
MODEL_LABELS = {"base": "Base model", "sft": "SFT", "dpo_naive": "DPO on the raw outcome (naive)",
                "dpo_deconfounded": "DPO on the deconfounded outcome"}
COMPARISONS = (("sft", "dpo_naive"), ("sft", "dpo_deconfounded"), ("dpo_naive", "dpo_deconfounded"))
ALPHA = 0.05


def _p(value) -> str:
    """A p-value for a sentence ("p = 0.003"), or why there is none."""
    return f"p = {value:.2g}" if value is not None and np.isfinite(value) else "no test: one run per model"


@dataclass
class MarkerAuditResult:
    """Marker rates per run and per model, the tests between models, and what the pairs looked like."""

    words: list[str]
    runs: pd.DataFrame      # model, train_seed, gen_seed, n, and one rate column per word
    prepare: dict           # rows, marked rows, correction, arms: {pairs, one_marked, marked_chosen, ...}
    config: dict
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """Table 3: per model, generations per run, runs, and each word's mean % and standard error over runs."""
        rows = []
        for model in [m for m in MODEL_ORDER if m in set(self.runs["model"])]:
            part = self.runs[self.runs["model"] == model]
            row = {"model": model, "label": MODEL_LABELS[model], "generations_per_run": int(part["n"].median()),
                   "runs": len(part)}
            for word in self.words:
                values = 100 * part[word].to_numpy(dtype=float)
                row[f"{word} %"] = float(values.mean())
                row[f"{word} se"] = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def tests(self) -> pd.DataFrame:
        """Welch t-tests over runs: for each word, SFT vs naive DPO, SFT vs deconfounded DPO, naive vs deconfounded."""
        rows = []
        for word in self.words:
            for a, b in COMPARISONS:
                x = self.runs.loc[self.runs["model"] == a, word].to_numpy(dtype=float)
                y = self.runs.loc[self.runs["model"] == b, word].to_numpy(dtype=float)
                if len(x) and len(y):
                    rows.append({"word": word, "a": a, "b": b, "mean_a": float(x.mean()), "mean_b": float(y.mean()),
                                 "difference": float(y.mean() - x.mean()), "pvalue": welch_pvalue(x, y)})
        return pd.DataFrame(rows)

    def _test(self, word: str, a: str, b: str) -> dict:
        tests = self.tests()
        row = tests[(tests["word"] == word) & (tests["a"] == a) & (tests["b"] == b)]
        return row.iloc[0].to_dict() if len(row) else {}

    def amplified(self, word: str, model: str) -> bool:
        """Whether `model` uses the word significantly more often than SFT (one-sided reading of the t-test)."""
        test = self._test(word, "sft", model)
        return bool(test) and test["difference"] > 0 and np.isfinite(test["pvalue"]) and test["pvalue"] < ALPHA

    def verdict(self) -> str:
        """The answer in plain words, for the first marker word (the others are in the table)."""
        word = self.words[0]
        naive, deconf = self._test(word, "sft", "dpo_naive"), self._test(word, "sft", "dpo_deconfounded")
        if not naive:
            return "The audit has no SFT and DPO runs to compare yet."
        sft, dn, dd = 100 * naive["mean_a"], 100 * naive["mean_b"], 100 * deconf.get("mean_b", math.nan)
        if self.amplified(word, "dpo_naive"):
            text = (f"Naive fine-tuning amplifies the spurious marker: after DPO on the raw outcome, '{word}' appears "
                    f"in {dn:.1f}% of generations against {sft:.1f}% after SFT ({_p(naive['pvalue'])}).")
        else:
            text = (f"Naive DPO did not measurably amplify the marker here: '{word}' appears in {dn:.1f}% of "
                    f"generations against {sft:.1f}% after SFT ({_p(naive['pvalue'])}).")
        if self.amplified(word, "dpo_deconfounded"):
            text += (f" DPO on the deconfounded outcome amplifies it too ({dd:.1f}%, {_p(deconf['pvalue'])}): "
                     "removing the rule's effect did not stop it.")
        elif deconf:
            text += f" DPO on the deconfounded outcome does not ({dd:.1f}%, {_p(deconf['pvalue'])} against SFT)"
            vs = self._test(word, "dpo_naive", "dpo_deconfounded")
            if vs and vs["difference"] < 0 and vs["pvalue"] < ALPHA:
                text += f", and stays below naive DPO ({_p(vs['pvalue'])})"
            text += "."
        return text

    def summary(self) -> str:
        """The verdict, the pairs, Table 3 and the tests."""
        lines = [self.verdict(), ""]
        for arm, info in (self.prepare.get("arms") or {}).items():
            lines.append(f"{arm} pairs: {info['pairs']:,}; with one marked text: marked chosen "
                         f"{info['marked_chosen']:,}, marked rejected {info['marked_rejected']:,}")
        table = self.table()
        if len(table):
            lines += ["", table.drop(columns="label").to_string(index=False, float_format=lambda x: f"{x:.2f}")]
        tests = self.tests()
        if len(tests):
            lines += ["", tests.to_string(index=False, float_format=lambda x: f"{x:.3g}")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready: verdict, words, table, tests, runs, pairs (per arm), correction, config."""
        return jsonable({"kind": "marker_audit", "verdict": self.verdict(), "words": self.words,
                         "table": self.table().to_dict(orient="records"),
                         "tests": self.tests().to_dict(orient="records"),
                         "runs": self.runs.to_dict(orient="records"), "pairs": self.prepare.get("arms", {}),
                         **{k: self.prepare.get(k) for k in ("correction", "marked_effect", "rows", "marked_rows")},
                         "config": self.config, "notes": self.notes})


def run_rates(generations: pd.DataFrame, words: list[str]) -> pd.DataFrame:
    """One row per (model, training seed, generation seed): n and the share of texts containing each word."""
    hits = marker_hits(generations["text"].astype(str).tolist(), compile_markers({w: [w] for w in words}))
    frame = pd.concat([generations[["model", "train_seed", "gen_seed"]].reset_index(drop=True), hits.astype(float)],
                      axis=1)
    grouped = frame.groupby(["model", "train_seed", "gen_seed"], sort=False)
    runs = grouped[words].mean().reset_index()
    runs.insert(3, "n", grouped.size().to_numpy())
    return runs


def marker_result(run_dir) -> MarkerAuditResult:
    """The result of a marker audit's run folder (from generations.csv and prepare.json)."""
    run_dir = Path(run_dir)
    path = run_dir / "generations.csv"
    if not path.is_file():
        raise NotFoundError(f"{run_dir} has no generations yet: the audit has not finished")
    config = MarkerAuditConfig.from_dict(read_json(run_dir / "config.json", default={}))
    words = marker_words(config.marker)
    generations = pd.read_csv(path, keep_default_na=False)
    notes = []
    if len(config.train_seeds) * len(config.gen_seeds) < 2:
        notes.append("one run per model: no standard errors or t-tests (use several training or generation seeds)")
    return MarkerAuditResult(words=words, runs=run_rates(generations, words),
                             prepare=read_json(run_dir / "prepare.json", default={}) or {}, config=config.to_dict(),
                             notes=notes)
