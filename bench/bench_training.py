"""Training-engine speed on CPU, in one run: where a SmolLM2-135M RL step's time goes, how close it is to what
the hardware allows, what each speed lever gives, and the smoke model's numbers.

For SmolLM2-135M-Instruct with LoRA r16, 4 prompts × 4 completions, ≤ 20 new tokens, β 0.05 (GRPO):
- the median seconds per step split into generation, reward scoring, reference log-probs, policy forward,
  policy backward and optimiser (`rl_profile.StepProfile`), for `train.run_rl` and for a bare trl GRPOTrainer
  with the identical config, dataset, LoRA and reward (alternating runs, so load drifts hit both alike);
- the FLOP floor: the step's FLOPs (`rl_profile.step_flops`) over the matmul rate measured in the same run on
  the model's own layer shapes, in the dtype the step computes in;
- generation throughput at batch 32 (`models.generate_with_stats`, KV cache, seeded sampling);
- levers, each one short run against the default: precision (bf16 where the CPU has AVX512-BF16/AMX vs fp32),
  the prompt's length (editor prompt + context truncated), torch threads, LoRA target modules, torch.compile.
Writes bench/results/training.json and training.md.

    python bench/bench_training.py            # everything (~20 min on 2 idle cores)
    python bench/bench_training.py --quick    # smoke model only
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rl_profile import PHASES, StepProfile, step_flops, weighted_gflops  # noqa: E402
from training_report import machine, write_markdown  # noqa: E402

from deconfound.models import (ModelSpec, PromptStyle, cpu_has_bf16, format_prompt, generate_with_stats,  # noqa: E402
                               load_generator, resolve_model_path, set_torch_threads)
from deconfound.sim import SimulationConfig, quality_scores, simulate  # noqa: E402
from deconfound.train import (GuardedReward, RLSettings, SFTSettings, TrainingSummary, rl_config,  # noqa: E402
                              rl_dataset, run_rl, run_sft)
from deconfound.train.plumbing import _lora, _quiet  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SMOL = dict(use_lora=True, lora_r=16, lora_alpha=32, prompts_per_step=4, num_generations=4, max_completion_length=20,
            beta=0.05, learning_rate=2e-5, save_steps=1000)


def oracle_reward(completions, prompts=None, **columns):
    """The simulation's quality measure (VADER), a cheap reward like the paper's oracle."""
    return quality_scores(list(completions)).tolist()


def styled_policy(model_dir: Path, style: PromptStyle, folder: Path) -> Path:
    """The model folder as it is, with another prompt style (links to its files, its own prompt file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for item in model_dir.iterdir():
        if item.name != "deconfound_prompt.json" and not (folder / item.name).exists():
            (folder / item.name).symlink_to(item)
    style.save(folder)
    return folder


def ours(policy: Path, prompts, settings: RLSettings, workdir: Path, profile: StepProfile) -> dict:
    start = time.perf_counter()
    before = len(profile.steps)
    out = run_rl(policy, oracle_reward, prompts, settings, workdir / "model", progress=lambda *a: None,
                 reward_stats=(0.5, 0.25))
    summary = TrainingSummary.load(out)
    return {"wall_s": time.perf_counter() - start, "steps": profile.steps[before:],
            "completion_tokens": statistics.median(h["completion_length"] for h in summary.history
                                                   if h.get("completion_length"))}


def bare(policy: Path, prompts, settings: RLSettings, workdir: Path, profile: StepProfile) -> dict:
    """trl's GRPOTrainer with our exact config, dataset, LoRA and guarded reward: the difference to `run_rl` is
    only our loop (progress callback, guards, summaries, saving)."""
    from trl import GRPOTrainer
    start = time.perf_counter()
    before = len(profile.steps)
    model, tokenizer = load_generator(policy, for_training=True)
    dataset = rl_dataset(prompts, PromptStyle.load(policy), settings)
    reward = GuardedReward(oracle_reward, settings, stats=(0.5, 0.25))
    trainer = _quiet(GRPOTrainer(model=model, reward_funcs=[reward], args=rl_config(settings, workdir),
                                 train_dataset=dataset, processing_class=tokenizer, peft_config=_lora(settings)))
    trainer.train()
    trainer.save_model(str(workdir / "final"))
    return {"wall_s": time.perf_counter() - start, "steps": profile.steps[before:]}


def phase_medians(steps: list[dict], skip_first: bool) -> dict:
    """Median seconds per phase (the first step of a run warms up allocations and lazy imports)."""
    steps = steps[1:] if skip_first and len(steps) > 1 else steps
    keys = list(PHASES) + ["other", "total"]
    return {k: statistics.median(s.get(k, 0.0) for s in steps) for k in keys} if steps else {}


def prompt_tokens(policy: Path, contexts: list[str]) -> float:
    """Median tokens of the chat prompt the policy is trained on (its prompt style)."""
    from deconfound.models import load_tokenizer
    tokenizer = load_tokenizer(policy)
    style = PromptStyle.load(policy)
    return statistics.median(len(tokenizer(format_prompt(tokenizer, c, style), add_special_tokens=False)["input_ids"])
                             for c in contexts[:64])


def smol_rl(policy: Path, prompts, settings: RLSettings, workdir: Path, reps: int, compare_bare: bool) -> dict:
    """Our RL step (and the bare trainer's), phase by phase, alternating `reps` runs of each."""
    profile = StepProfile()
    runs = {"ours": [], "bare": []}
    with profile.active():
        for rep in range(reps):
            for name, fn in (("ours", ours), ("bare", bare)) if compare_bare else (("ours", ours),):
                folder = workdir / f"{name}-{rep}"
                result = fn(policy, prompts, settings, folder, profile)
                runs[name].append(result)
                shutil.rmtree(folder, ignore_errors=True)
                print(f"    {name} rep {rep}: {result['wall_s']:.1f} s, steps "
                      f"{[round(s['total'], 2) for s in result['steps']]}", flush=True)
    out = {name: phase_medians([s for r in results for s in r["steps"][1:]], skip_first=False)
           for name, results in runs.items() if results}
    out["completion_tokens"] = statistics.median(r["completion_tokens"] for r in runs["ours"])
    out["ours_steps"] = [s["total"] for r in runs["ours"] for s in r["steps"]]
    out["bare_steps"] = [s["total"] for r in runs["bare"] for s in r["steps"]]
    return out


def generation_rate(policy: Path, contexts: list[str], precision: str, batch: int, new_tokens: int,
                    reps: int) -> float:
    """Median generations per second at `batch` prompts per batch, the model already loaded."""
    from deconfound.models import pick_device, resolve_precision
    model, tokenizer = load_generator(policy, dtype=resolve_precision(precision, pick_device()[0]))
    rates = [generate_with_stats(policy, contexts, seed=rep, batch_size=batch, model=model, tokenizer=tokenizer,
                                 max_new_tokens=new_tokens).per_second for rep in range(reps)]
    return statistics.median(rates)


def levers(policies: dict[str, Path], prompts, base: RLSettings, workdir: Path, threads: int) -> list:
    """One short run per lever against the default settings: median step seconds of each."""
    trials = [("default (bf16 where native, short prompt, all-linear LoRA)", policies["short"], {}),
              ("fp32 instead of bf16", policies["short"], {"precision": "fp32"}),
              ("full editor prompt, context 40 words", policies["editor40"], {}),
              ("full editor prompt, whole context", policies["editor"], {}),
              (f"torch threads 1 instead of {threads}", policies["short"], {"torch_threads": 1}),
              ("LoRA on q_proj,v_proj only", policies["short"], {"lora_target_modules": "q_proj,v_proj"})]
    out = []
    profile = StepProfile()
    with profile.active():
        for name, policy, change in trials:
            settings = RLSettings(**(base.to_dict() | change))
            folder = workdir / f"lever-{len(out)}"
            try:
                result = ours(policy, prompts, settings, folder, profile)
                step = phase_medians(result["steps"], skip_first=True)
                out.append({"lever": name, "change": change, "step_s": step.get("total"), "phases": step,
                            "prompt_tokens": prompt_tokens(policy, prompts["context"].tolist())})
            except Exception as exc:  # a lever that does not run is a result too
                out.append({"lever": name, "change": change, "error": f"{type(exc).__name__}: {exc}"[:300]})
            shutil.rmtree(folder, ignore_errors=True)
            print(f"  lever {name}: {out[-1].get('step_s') or out[-1].get('error')}", flush=True)
    out.append(compile_lever(policies["short"], prompts, base, workdir / "compile"))
    return out


def compile_lever(policy: Path, prompts, settings: RLSettings, workdir: Path) -> dict:
    """torch.compile of the policy inside trl (TrainingArguments.torch_compile): first step and later steps."""
    from trl import GRPOTrainer
    profile = StepProfile()
    try:
        with profile.active():
            model, tokenizer = load_generator(policy, for_training=True)
            args = rl_config(settings, workdir)
            args.torch_compile = True
            trainer = _quiet(GRPOTrainer(model=model, reward_funcs=[GuardedReward(oracle_reward, settings,
                                                                                  stats=(0.5, 0.25))],
                                         args=args, train_dataset=rl_dataset(prompts, PromptStyle.load(policy),
                                                                             settings),
                                         processing_class=tokenizer, peft_config=_lora(settings)))
            trainer.train()
        steps = [s["total"] for s in profile.steps]
        result = {"lever": "torch.compile", "change": {"torch_compile": True},
                  "step_s": statistics.median(steps[1:]) if len(steps) > 1 else None,
                  "first_step_s": steps[0] if steps else None}
    except Exception as exc:
        result = {"lever": "torch.compile", "change": {"torch_compile": True},
                  "error": f"{type(exc).__name__}: {exc}"[:300]}
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"  lever torch.compile: {result.get('step_s') or result.get('error')}", flush=True)
    return result


def smoke(data, prompts, workdir: Path, threads: int, steps: int) -> dict:
    """The smoke preset's tiny model: SFT, then RL steps (phases) and generation throughput."""
    corpus = data["context"].tolist() + data["text"].tolist()
    tiny = resolve_model_path(ModelSpec(name="tiny"), corpus, out_dir=workdir / "tiny")
    sft = run_sft(tiny, data[data["split"] == "sft"], SFTSettings.for_preset("smoke", max_steps=30,
                                                                             torch_threads=threads),
                  workdir / "tiny_sft")
    settings = RLSettings.for_preset("smoke", max_steps=steps, torch_threads=threads)
    profile = StepProfile()
    with profile.active():
        result = ours(sft, prompts, settings, workdir / "smoke-rl", profile)
    contexts = data[data["split"] == "test"]["context"].tolist()[:128]
    return {"settings": settings.to_dict(), "step": phase_medians(result["steps"], skip_first=True),
            "generations_per_s": generation_rate(sft, contexts, "fp32", 32, settings.max_completion_length, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2, help="alternating runs of ours and bare")
    parser.add_argument("--steps", type=int, default=5, help="RL steps per SmolLM2 run (the first is warm-up)")
    parser.add_argument("--quick", action="store_true", help="smoke model only")
    parser.add_argument("--no-levers", action="store_true", help="skip the lever runs")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default min(2, cores))")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite training.md from training.json")
    args = parser.parse_args()
    if args.markdown_only:
        write_markdown(json.loads((RESULTS / "training.json").read_text()), RESULTS / "training.md")
        return
    threads = set_torch_threads(args.threads)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="bench_training_"))
    report = {"machine": machine(ROOT), "reps": args.reps, "threads": threads, "cpu_bf16": cpu_has_bf16()}
    data = simulate(SimulationConfig(n=2000, seed=0))
    prompts = data[data["split"] == "rl"][["context"]].reset_index(drop=True)
    contexts = data[data["split"] == "test"]["context"].tolist()
    try:
        print("smoke model", flush=True)
        report["smoke"] = smoke(data, prompts, workdir, threads, steps=4)
        if not args.quick:
            smol = resolve_model_path(ModelSpec())
            from transformers import AutoConfig
            config = AutoConfig.from_pretrained(smol)
            policies = {"short": styled_policy(smol, PromptStyle(system_prompt="Write a headline for this news story.",
                                                                 max_context_words=30), workdir / "p-short"),
                        "editor40": styled_policy(smol, PromptStyle(max_context_words=40), workdir / "p-editor40"),
                        "editor": styled_policy(smol, PromptStyle(), workdir / "p-editor")}
            precision = "bf16" if cpu_has_bf16() else "fp32"
            base = RLSettings(**SMOL, max_steps=args.steps, torch_threads=threads, precision="auto")
            print("FLOP probe", flush=True)
            report["gflops"] = {d: weighted_gflops(config, d) for d in ("fp32", "bf16")}
            print("SmolLM2 RL step: ours vs bare GRPOTrainer", flush=True)
            rl = smol_rl(policies["short"], prompts, base, workdir, args.reps, compare_bare=True)
            tokens = prompt_tokens(policies["short"], prompts["context"].tolist())
            flops = step_flops(config, 16, tokens, rl["completion_tokens"])
            report["smol"] = rl | {"precision": precision, "prompt_tokens": tokens, "flops": flops,
                                   "floor_s": {p: flops[p] / (report["gflops"][precision] * 1e9) for p in flops},
                                   "settings": base.to_dict(), "style": PromptStyle.load(policies["short"]).to_dict()}
            print("generation throughput", flush=True)
            report["generation"] = [
                {"precision": prec, "style": name, "batch": 32, "new_tokens": 20,
                 "per_second": generation_rate(policies[name], contexts[:96], prec, 32, 20, 2)}
                for prec in ("fp32", "bf16") for name in ("short", "editor")]
            if not args.no_levers:
                report["levers"] = levers(policies, prompts, base, workdir, threads)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report["load_average_end"] = os.getloadavg()
    report["total_s"] = time.perf_counter() - started
    report["finished_at"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(report, indent=2))
    write_markdown(report, RESULTS / "training.md")
    print((RESULTS / "training.md").read_text())


if __name__ == "__main__":
    main()
