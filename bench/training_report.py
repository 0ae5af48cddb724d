"""The machine a bench ran on, and bench_training.py's results as bench/results/training.md."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

PHASE_LABELS = {"generation": "generation", "reward": "reward scoring", "reference_logprobs": "reference log-probs",
                "policy_forward": "policy forward", "policy_backward": "policy backward", "optimizer": "optimiser",
                "other": "other (data, logging, callbacks)", "total": "**step**"}


def machine(root: Path) -> dict:
    """Platform, cores, library versions, the commit (or 'uncommitted') and the load when the bench started."""
    import peft
    import torch
    import transformers
    import trl
    commit = "uncommitted"
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "src", "bench"], cwd=root, capture_output=True,
                               text=True)
        if head.returncode == 0 and not dirty.stdout.strip():
            commit = head.stdout.strip()[:10]
    except OSError:
        pass
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"platform": platform.platform(), "cpu": cpu, "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "trl": trl.__version__, "peft": peft.__version__, "commit": commit,
            "load_average_start": os.getloadavg()}


def _f(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def write_markdown(report: dict, path: Path) -> None:
    """training.md: the step's phases (ours, bare, floor), generation throughput, levers, smoke model."""
    m = report["machine"]
    lines = ["# Training engine speed (CPU)", "",
             f"Run {report['finished_at']} on {m['cpu']} ({m['platform']}), {m['cpu_count']} cores, torch threads "
             f"{report['threads']}; bf16 instructions: {'yes' if report.get('cpu_bf16') else 'no'}; torch "
             f"{m['torch']}, transformers {m['transformers']}, trl {m['trl']}, peft {m['peft']}; commit "
             f"{m['commit']}; {report['total_s'] / 60:.1f} min in all. Load average at start "
             f"{', '.join(f'{x:.1f}' for x in m['load_average_start'])}, at end "
             f"{', '.join(f'{x:.1f}' for x in report['load_average_end'])}.", ""]
    smol = report.get("smol")
    if smol:
        s, flops, floor = smol["settings"], smol["flops"], smol["floor_s"]
        rate = report["gflops"][smol["precision"]]
        ours, bare = smol.get("ours", {}), smol.get("bare", {})
        total_floor = sum(floor.values())
        lines += ["## SmolLM2-135M-Instruct: one GRPO step", "",
                  f"LoRA r{s['lora_r']} ({s['lora_target_modules']}), {s['prompts_per_step']} prompts × "
                  f"{s['num_generations']} completions, ≤ {s['max_completion_length']} new tokens, β {s['beta']}, "
                  f"computing in {smol['precision']}; prompt {smol['prompt_tokens']:.0f} tokens (system prompt "
                  f"\"{smol['style']['system_prompt'][:60]}\", context ≤ {smol['style']['max_context_words']} words), "
                  f"completions {smol['completion_tokens']:.1f} tokens (median). Matmul rate on the model's layer "
                  f"shapes, measured in this run: {report['gflops']['fp32']:.0f} GFLOPS fp32, "
                  f"{report['gflops']['bf16']:.0f} GFLOPS bf16.", "",
                  "| phase | run_rl (s) | bare GRPOTrainer (s) | FLOP floor (s) |", "|---|---|---|---|"]
        for phase, label in PHASE_LABELS.items():
            fl = floor.get(phase)
            if phase == "total":
                fl = total_floor
            lines.append(f"| {label} | {_f(ours.get(phase))} | {_f(bare.get(phase))} | {_f(fl)} |")
        ratio_floor = ours["total"] / total_floor if ours.get("total") and total_floor else None
        ratio_bare = ours["total"] / bare["total"] if ours.get("total") and bare.get("total") else None
        lines += ["", f"- Our step is **{_f(ratio_floor)}× the FLOP floor** (target ≤ 2×) and **{_f(ratio_bare, 3)}× "
                  f"the bare trl trainer** (target ≤ 1.05×). Floor: {sum(flops.values()) / 1e9:.0f} GFLOP at "
                  f"{rate:.0f} GFLOPS ({smol['precision']}).",
                  f"- Steps (s), ours: {', '.join(_f(x) for x in smol['ours_steps'])}; bare: "
                  f"{', '.join(_f(x) for x in smol['bare_steps'])} (medians leave out each run's first step).", ""]
    if report.get("generation"):
        lines += ["## Generation throughput (SmolLM2-135M, batch 32, 20 new tokens, KV cache, seeded sampling)", "",
                  "| precision | prompt | headlines/s |", "|---|---|---|"]
        lines += [f"| {g['precision']} | {g['style']} | {_f(g['per_second'], 1)} |" for g in report["generation"]]
        lines.append("")
    if report.get("levers"):
        lines += ["## Levers (one short run each, median step after the first)", "",
                  "| lever | step (s) | prompt tokens | note |", "|---|---|---|---|"]
        for lever in report["levers"]:
            note = lever.get("error") or (f"first step {lever['first_step_s']:.1f} s (compiling)"
                                          if lever.get("first_step_s") else "")
            lines.append(f"| {lever['lever']} | {_f(lever.get('step_s'))} | "
                         f"{_f(lever.get('prompt_tokens'), 0)} | {note} |")
        lines.append("")
    sm = report.get("smoke")
    if sm:
        st = sm["step"]
        lines += ["## Smoke model (tiny 4×256, full fine-tune)", "",
                  f"RL step {_f(st.get('total'))} s (generation {_f(st.get('generation'))}, reward "
                  f"{_f(st.get('reward'))}, reference {_f(st.get('reference_logprobs'))}, forward "
                  f"{_f(st.get('policy_forward'))}, backward {_f(st.get('policy_backward'))}, optimiser "
                  f"{_f(st.get('optimizer'))}); generation {_f(sm['generations_per_s'], 1)} headlines/s at batch 32.",
                  ""]
    lines += ["Phases: generation = trl's `_generate_single_turn`; reward = `_calculate_rewards` (VADER oracle, "
              "z-scored and clipped); reference log-probs = log-probs computed without gradients (β > 0); policy "
              "forward / backward = the loss's forward and `accelerator.backward`; optimiser = AdamW's step; "
              "other = the rest of the step. The FLOP floor counts the matmuls a token passes through (LM head "
              "included, attention scores left out): generation (prefill + cached decode) and the reference "
              "forward at 2·N, the policy's forward 2·N and backward to the activations 2·N per token (frozen "
              "base weights need no weight gradients; LoRA's own FLOPs are negligible).", "",
              "Reproduce: `.venv/bin/python bench/bench_training.py` (`--quick`: smoke model only).", ""]
    path.write_text("\n".join(lines))
