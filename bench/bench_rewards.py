"""Benchmark: the paper's Table 2 on our simulation — every reward method × backbone × scenario.

    python bench/bench_rewards.py                                # tfidf + minilm, 3 seeds (~10 min cold on 2 cores)
    python bench/bench_rewards.py --backbones tfidf --seeds 1    # seconds

For each scenario (the shipped demo tables, data/demo_*.csv) the IV-deconfounded outcome is computed once
with the project's 2SLS (`causal.fit_iv`: popularity endogenous, team-region dummies as instruments, on
the whole table, as a run does). Each seed then trains every reward method on the same train/valid split:
seed 0 uses the table's own rm / rm_valid split, seeds 1 and 2 re-split those same rows at random into
the same sizes; the seed also drives the oracle noise and ODIN's initialisation. Cells are medians over the
seeds of the Pearson correlation between the reward and the true quality (headline sentiment) on the
train and validation rows, next to the paper's Table 2. MiniLM embeddings are computed once per distinct
input (and cached on disk by `embeddings`), so training seconds are for the heads; the MiniLM encoding
speed is measured separately on uncached texts. Writes bench/results/rewards.json and rewards.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from deconfound import causal  # noqa: E402
from deconfound.paths import demo_data_dir  # noqa: E402
from deconfound.rewards import (METHODS, FeatureCache, RewardColumns, RewardConfig, reward_inputs,  # noqa: E402
                                train_all)
from deconfound.sim import DEMO_ROLES, simulate  # noqa: E402

SCENARIOS = ("orthogonal", "entangled")
COLUMNS = RewardColumns(text="text", context="context", outcome="outcome", truth="quality",
                        confounder="popularity", corrected="corrected")
# The paper's Table 2 (MIND, SmolLM2 fine-tuned regression heads): (train, valid) per scenario.
PAPER_TABLE_2 = {
    "oracle": {"orthogonal": (0.913, 0.872), "entangled": (0.913, 0.872)},
    "oracle_noise": {"orthogonal": (0.910, 0.891), "entangled": (0.807, 0.802)},
    "naive": {"orthogonal": (0.880, 0.859), "entangled": (-0.073, -0.079)},
    "confounder_text": {"orthogonal": (0.839, 0.827), "entangled": (-0.261, -0.253)},
    "confounder_layer": {"orthogonal": (0.862, 0.841), "entangled": (0.623, 0.627)},
    "odin": {"orthogonal": (0.654, 0.641), "entangled": (-0.536, -0.542)},
    "deconfounded": {"orthogonal": (0.915, 0.886), "entangled": (0.898, 0.867)},
}
LABELS = {"oracle": "Model with only sentiment (oracle)", "oracle_noise": "Sentiment + noise (oracle_noise)",
          "naive": "Observed performance (naive)", "confounder_text": "Pop. in text (confounder_text)",
          "confounder_layer": "Pop. in layer (confounder_layer)", "odin": "ODIN (odin)",
          "deconfounded": "DeconfoundLM-IV (deconfounded)"}


def load_scenario(scenario: str) -> tuple[pd.DataFrame, float]:
    """The demo table with the IV-corrected outcome; also the IV coefficient on popularity."""
    path = demo_data_dir() / f"demo_{scenario}.csv"
    frame = pd.read_csv(path, parse_dates=["published_at"]) if path.exists() else simulate(scenario=scenario)
    result = causal.fit_iv(frame, DEMO_ROLES)
    frame["corrected"], _ = causal.deconfounded_outcome(frame, result)
    return frame, float(result.coef["popularity"])


def split_for_seed(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seed 0: the table's rm / rm_valid rows; other seeds: the same rows re-split at random (same sizes)."""
    train, valid = frame[frame["split"] == "rm"], frame[frame["split"] == "rm_valid"]
    if seed == 0:
        return train.reset_index(drop=True), valid.reset_index(drop=True)
    pool = pd.concat([train, valid]).sample(frac=1.0, random_state=seed)
    return pool.iloc[:len(train)].reset_index(drop=True), pool.iloc[len(train):].reset_index(drop=True)


def minilm_speed(texts: list[str]) -> dict:
    """Texts per second of MiniLM on uncached headlines (model load excluded)."""
    from deconfound.causal import embed_texts
    embed_texts(texts[:8], model="minilm", cache=False)  # load the model
    start = time.perf_counter()
    embed_texts(texts, model="minilm", cache=False)
    seconds = time.perf_counter() - start
    return {"texts": len(texts), "seconds": round(seconds, 2), "texts_per_s": round(len(texts) / seconds, 1)}


def run(backbones: list[str], seeds: list[int], out_dir: Path) -> dict:
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    rows, info = [], {"iv_coef": {}, "embedding_seconds": {}, "split_sizes": {}}
    minilm_cache = FeatureCache("minilm") if "minilm" in backbones else None  # texts are shared by scenarios
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in SCENARIOS:
            frame, coef = load_scenario(scenario)
            info["iv_coef"][scenario] = round(coef, 4)
            pool = frame[frame["split"].isin(["rm", "rm_valid"])]
            info.setdefault("corr_quality_popularity", {})[scenario] = round(
                float(np.corrcoef(pool["quality"], pool["popularity"])[0, 1]), 3)
            info["split_sizes"][scenario] = {"train": int((frame["split"] == "rm").sum()),
                                      "valid": int((frame["split"] == "rm_valid").sum())}
            if minilm_cache is not None:  # embed every input once up front, so head timings exclude it
                start = time.perf_counter()
                encoder = minilm_cache.featurizer("text", [])
                encoder.transform(pool["text"].tolist())
                encoder.transform(reward_inputs(pool["text"].tolist(), None, pool["popularity"].to_numpy(),
                                                confounder_name="popularity"))
                info["embedding_seconds"][scenario] = round(time.perf_counter() - start, 1)
            for seed in seeds:
                train, valid = split_for_seed(frame, seed)
                if minilm_cache is not None:  # the valid rows at the training-mean popularity (text-only metric)
                    start = time.perf_counter()
                    held = np.full(len(valid), train["popularity"].mean())
                    minilm_cache.featurizer("text", []).transform(
                        reward_inputs(valid["text"].tolist(), None, held, confounder_name="popularity"))
                    info["embedding_seconds"][scenario] += round(time.perf_counter() - start, 1)
                for backbone in backbones:
                    cache = minilm_cache if backbone == "minilm" else FeatureCache(backbone)
                    models = train_all(METHODS, train, valid, COLUMNS, Path(tmp) / f"{scenario}_{backbone}_{seed}",
                                       RewardConfig(method="naive", backbone=backbone, seed=seed), features=cache)
                    for method, model in models.items():
                        m = model.metrics
                        rows.append({"scenario": scenario, "backbone": backbone, "seed": seed, "method": method,
                                     "train": m["train"]["pearson_truth"], "valid": m["valid"]["pearson_truth"],
                                     "valid_text_only": m["valid"].get("pearson_truth_text_only"),
                                     "valid_r2_outcome": m["valid"]["r2_outcome"], "lambda": m["lambda"],
                                     "train_corr_confounder": m["train"].get("pearson_confounder"),
                                     "seconds": m["seconds"]})
                        print(f"{scenario:10s} seed {seed} {model.summary()}", flush=True)
    if minilm_cache is not None:
        info["minilm_speed"] = minilm_speed(frame["text"].iloc[-400:].tolist())
    return {"rows": rows, **info}


def medians(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    return frame.groupby(["backbone", "scenario", "method"], sort=False).agg(
        train=("train", "median"), valid=("valid", "median"), valid_min=("valid", "min"), valid_max=("valid", "max"),
        valid_text_only=("valid_text_only", "median"), seconds=("seconds", "median"),
        seeds=("seed", "count")).reset_index()


def machine() -> dict:
    import sklearn
    import torch
    import transformers
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "src", "bench"], cwd=ROOT, capture_output=True,
                                    text=True).stdout.strip())
        commit = commit + (" (uncommitted changes)" if dirty else "")
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = "uncommitted"
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__,
            "scikit_learn": sklearn.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "commit": commit}


def fmt(value) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:+.3f}"


def markdown(result: dict) -> str:
    table = medians(result["rows"])
    seeds = sorted({r["seed"] for r in result["rows"]})
    lines = ["# Reward models vs. the truth (paper Table 2 on our simulation)", "",
             f"Pearson correlation between each reward and the true quality (headline sentiment), train / valid, "
             f"median over {len(seeds)} seed(s) {seeds}. Rows (train/valid): {result['split_sizes']}. "
             f"IV coefficient on popularity (true 0.1): {result['iv_coef']}. Reward reads the headline only; "
             "λ chosen on the validation rows. Paper: MIND, SmolLM2 regression heads.", ""]
    odin_corr = max(abs(r["train_corr_confounder"]) for r in result["rows"] if r["method"] == "odin")
    for backbone in table["backbone"].unique():
        part = table[table["backbone"] == backbone].set_index(["scenario", "method"])
        lines += [f"## Backbone: {backbone}", "",
                  "| method | orthogonal (ours) | orthogonal (paper) | entangled (ours) | entangled (paper) "
                  "| entangled valid, confounder held fixed | head s |",
                  "|---|---|---|---|---|---|---|"]
        for method in METHODS:
            cells = []
            for scenario in SCENARIOS:
                row = part.loc[(scenario, method)]
                paper = PAPER_TABLE_2[method][scenario]
                cells += [f"{fmt(row['train'])} / {fmt(row['valid'])}", f"{paper[0]:+.3f} / {paper[1]:+.3f}"]
            ent = part.loc[("entangled", method)]
            seconds = np.median([part.loc[(s, method)]["seconds"] for s in SCENARIOS])
            lines.append(f"| {LABELS[method]} | " + " | ".join(cells) +
                         f" | {fmt(ent['valid_text_only'])} | {seconds:.1f} |")
        lines.append("")
    lines += ["## What it shows", ""]
    for backbone in table["backbone"].unique():
        part = table[table["backbone"] == backbone].set_index(["scenario", "method"])["valid"]
        rho = result["corr_quality_popularity"]["entangled"]
        lines.append(
            f"- {backbone}: the deconfounded reward follows the truth in both scenarios "
            f"({part[('orthogonal', 'deconfounded')]:.2f} orthogonal, {part[('entangled', 'deconfounded')]:.2f} "
            f"entangled). With entangled confounding the rewards trained on the raw outcome collapse — naive "
            f"{part[('entangled', 'naive')]:.2f}, pop. in text {part[('entangled', 'confounder_text')]:.2f}, pop. in "
            f"layer {part[('entangled', 'confounder_layer')]:.2f} — and ODIN reaches "
            f"{part[('entangled', 'odin')]:.2f}: a reward uncorrelated with popularity can correlate with quality "
            f"at most sqrt(1 − ρ²) = {np.sqrt(1 - rho ** 2):.2f} here (ρ = corr(quality, popularity) = {rho:.2f}).")
    lines += ["- Differences from the paper: our truth (VADER sentiment) is a bag-of-words score of a templated "
              "corpus, so the text-only oracle is near perfect; ODIN here is fitted to convergence on frozen features "
              "and stays positive in the entangled case instead of the paper's negative value; and the pop.-in-layer "
              "reward scored with each row's popularity is lower than the paper's, while its text part (last column) "
              "tracks quality well — inside one RL prompt popularity is constant, so RL sees only that part.", ""]
    lines += ["## Notes", "",
              "- *confounder held fixed*: for the rewards that read popularity (in text, in layer), the valid "
              "correlation when every row is scored at the training-mean popularity — the part of the reward RL can "
              "move by changing the headline (within one prompt the popularity is fixed).",
              "- ODIN: two linear heads fitted to the outcome; the confounder head follows popularity, the quality "
              "head (the reward) is decorrelated from it (largest |corr(reward, popularity)| on train over all runs: "
              f"{odin_corr:.3f}) with an orthogonality penalty on the two weight vectors.",
              "- Valid range over seeds (min … max) is in rewards.json; head seconds exclude MiniLM encoding."]
    if "minilm_speed" in result:
        speed = result["minilm_speed"]
        lines.append(f"- MiniLM encoding: {speed['texts_per_s']} uncached headlines/s "
                     f"({speed['texts']} in {speed['seconds']} s); embedding all inputs per scenario: "
                     f"{result['embedding_seconds']} s (0 when the disk cache was warm).")
    m = result["machine"]
    lines += [f"- Machine: {m['platform']}, {m['cpu_count']} CPUs (load average at the end {m['load_average']}), "
              f"torch {m['torch']}, scikit-learn {m['scikit_learn']}; commit {m['commit']}; "
              f"total {result['total_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="tfidf,minilm", help="comma-separated: tfidf, minilm, generator")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0..n-1)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="output folder")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite rewards.md from rewards.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.markdown_only:
        result = json.loads((out / "rewards.json").read_text())
        if "corr_quality_popularity" not in result:
            result["corr_quality_popularity"] = {}
            for scenario in SCENARIOS:
                frame = pd.read_csv(demo_data_dir() / f"demo_{scenario}.csv")
                pool = frame[frame["split"].isin(["rm", "rm_valid"])]
                result["corr_quality_popularity"][scenario] = round(
                    float(np.corrcoef(pool["quality"], pool["popularity"])[0, 1]), 3)
            (out / "rewards.json").write_text(json.dumps(result, indent=2, default=float))
        (out / "rewards.md").write_text(markdown(result))
        return 0
    started = time.perf_counter()
    result = run([b.strip() for b in args.backbones.split(",") if b.strip()], list(range(args.seeds)), Path(args.out))
    result["machine"] = machine()
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    result["medians"] = medians(result["rows"]).to_dict(orient="records")
    result["paper_table_2"] = PAPER_TABLE_2
    out.mkdir(parents=True, exist_ok=True)
    (out / "rewards.json").write_text(json.dumps(result, indent=2, default=float))
    (out / "rewards.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
