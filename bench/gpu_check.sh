#!/usr/bin/env bash
# The GPU path, checked end to end in at most 8 minutes on one GPU:
#   1. the environment: nvidia-smi, torch + CUDA + bf16, accelerate / trl / transformers / peft;
#   2. a shortened `gpu`-preset pipeline on the entangled demo table: SFT, the naive and deconfounded reward models,
#      RL for both, 300 held-out generations per model (the job the dashboard and `deconfound train` run);
#   3. the time of every stage, RL seconds per step, generations per second, GPU memory peaks (per stage from
#      torch in the main process, and the whole device sampled by nvidia-smi every 0.5 s);
#   4. bench/results/gpu.md (+ gpu.json).
#
#   bash bench/gpu_check.sh                  # on a GPU machine (after `make install`, or PYTHON=... pointing at one)
#   bash bench/gpu_check.sh --processes 2    # the same job on 2 GPUs (accelerate launch)
#   bash bench/gpu_check.sh --dry-run        # CPU only: a tiny model through the same code path (what the tests run);
#                                            # writes bench/results/gpu_dryrun.md instead
#   options: --out FILE.md   --budget-s SECONDS (default 480: the job is cancelled there)   --set KEY=VALUE (repeat)
#   The run folder stays in ${TMPDIR:-/tmp}/gpu_check.*/ (its path is in the report).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DRY_RUN=0
OUT=""
BUDGET_S=480
PROCESSES=1
SETS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY_RUN=1 ;;
    --out) OUT="$2"; shift ;;
    --budget-s) BUDGET_S="$2"; shift ;;
    --processes) PROCESSES="$2"; shift ;;
    --set) SETS+=("$2"); shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [[ -z "$OUT" ]]; then
  OUT="$ROOT/bench/results/$([[ $DRY_RUN == 1 ]] && echo gpu_dryrun.md || echo gpu.md)"
fi
if [[ ! -x "$PYTHON" ]] && ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "gpu_check.sh: no Python at $PYTHON: run \`make install\` first or set PYTHON=/path/to/python" >&2
  exit 2
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
export DECONFOUND_HOME="$WORK/home" DECONFOUND_DB="$WORK/home/studio.duckdb"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SAMPLER_PID=""
cleanup() { [[ -n "$SAMPLER_PID" ]] && kill "$SAMPLER_PID" 2>/dev/null || true; }
trap cleanup EXIT

# 1. The environment (nvidia-smi is optional: torch decides whether CUDA works).
SMI="$WORK/nvidia-smi.txt"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$SMI" 2>&1 || true
  # Whole-device memory in MiB, every 0.5 s, for the peak beside torch's own per-stage figure.
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$WORK/gpu_memory.csv" 2>/dev/null &
  SAMPLER_PID=$!
else
  echo "nvidia-smi not found" > "$SMI"
fi

# 2-4. The job and the report (one Python program; everything it runs is the package's own code path).
"$PYTHON" - "$DRY_RUN" "$OUT" "$BUDGET_S" "$PROCESSES" "$WORK" "$ROOT" "${SETS[@]+"${SETS[@]}"}" <<'PY'
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

dry_run, out, budget_s, processes = sys.argv[1] == "1", Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
work, root, sets = Path(sys.argv[5]), Path(sys.argv[6]), sys.argv[7:]
started = time.monotonic()

import torch  # noqa: E402

from deconfound import __version__, runs  # noqa: E402
from deconfound.data import Store  # noqa: E402
from deconfound.sim import load_demo  # noqa: E402


def version(name):
    try:
        from importlib.metadata import version as v
        return v(name)
    except Exception:
        return "missing"


cuda = torch.cuda.is_available()
env = {"python": platform.python_version(), "torch": torch.__version__, "cuda_available": cuda,
       "cuda_version": torch.version.cuda, "accelerate": version("accelerate"), "trl": version("trl"),
       "transformers": version("transformers"), "peft": version("peft"), "deconfound": __version__,
       "cpu_cores": os.cpu_count(), "nvidia_smi": (work / "nvidia-smi.txt").read_text().strip()}
if cuda:
    props = torch.cuda.get_device_properties(0)
    env |= {"gpus": torch.cuda.device_count(), "gpu": props.name, "gpu_memory_gb": round(props.total_memory / 2**30, 1),
            "bf16": torch.cuda.is_bf16_supported()}
print("environment:", json.dumps(env), flush=True)
if not cuda and not dry_run:
    sys.exit("gpu_check.sh: torch sees no CUDA device (a CPU build of torch, or no driver): install a CUDA build "
             "(make install TORCH_SPEC=...) or run with --dry-run")
if not cuda and processes > 1 and processes > (os.cpu_count() or 1):
    sys.exit(f"gpu_check.sh: {processes} processes on {os.cpu_count()} CPU cores")

# The shortened gpu-preset job: the preset's settings (LoRA, batches, bf16, the fine-tuned LM reward backbone,
# generation batch), fewer steps and prompts. The dry run swaps in a tiny model built from a config and fewer
# steps, so the same stages run on a CPU in about a minute.
overrides = {"methods": ["naive", "deconfounded"], "n_eval_prompts": 300, "gen_seeds": [0], "run_dpo": False}
if dry_run:
    os.environ["DECONFOUND_GPU_PRESET_ON_CPU"] = "1"
    overrides |= {"model.name": "tiny", "model.tiny_layers": 2, "model.tiny_width": 64, "model.tiny_vocab": 1000,
                  "sft.use_lora": False, "sft.max_steps": 8, "sft.batch_size": 8, "rl.use_lora": False,
                  "rl.max_steps": 4, "rl.prompts_per_step": 2,
                  "rl.num_generations": 4, "rl.max_completion_length": 8, "max_reward_rows": 400,
                  "reward.batch_size": 16, "gen_max_new_tokens": 8, "threads": 2}
else:
    overrides |= {"sft.max_steps": 150, "rl.max_steps": 40, "max_reward_rows": 4000}
overrides |= runs.parse_overrides(sets)

store = Store(os.environ["DECONFOUND_DB"])
load_demo(store, scenarios=("entangled",))
config = runs.preset_config("gpu", "demo_entangled", store=store, overrides=overrides)
job = runs.create_job(config, store=store)
command = runs.launch_command(job.id, processes)
print(f"job {job.id}: {command}", flush=True)
t0 = time.monotonic()
runs.start_job(job.id, num_processes=processes)
shown = None
while True:
    status = runs.job_status(job.id)
    line = f"{status.get('state')} {float(status.get('progress') or 0):.0%} {status.get('stage')}"
    if line != shown:
        print(f"  {time.monotonic() - t0:6.1f} s  {line}", flush=True)
        shown = line
    if status["state"] in runs.FINAL_STATES:
        break
    if time.monotonic() - t0 > budget_s:
        print(f"budget of {budget_s:.0f} s reached: cancelling", flush=True)
        status = runs.cancel_job(job.id)
        break
    time.sleep(2)
wall = time.monotonic() - t0

folder = runs.RunFolder(job.run_dir)
stages = folder.stages()
rl = {}
for method in config.methods:
    path = job.run_dir / "models" / f"rl_{method}" / "training_summary.json"
    if path.is_file():
        summary = json.loads(path.read_text())
        seconds = [h["step_seconds"] for h in summary["history"] if h.get("step_seconds")]
        rl[method] = {"steps": summary["steps"],
                      "median_step_s": round(statistics.median(seconds), 3) if seconds else None,
                      "completions_per_step": config.rl.prompts_per_step * config.rl.num_generations * processes}
generate = next((s for s in stages if s["stage"] == "generate"), None)
gen_rate = round(generate["rows"] / generate["seconds"], 1) if generate and generate.get("seconds") else None
memory_log = work / "gpu_memory.csv"
samples = [float(x) for x in memory_log.read_text().split()] if memory_log.is_file() else []
device_peak_gb = round(max(samples) / 1024, 2) if samples else None
commit = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=root, capture_output=True,
                        text=True).stdout.strip()
dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout.strip())
met = status["state"] == "completed" and wall <= 480 and not dry_run
result = {"mode": "cpu dry run" if dry_run else "gpu", "state": status["state"], "message": status.get("message"),
          "wall_s": round(wall, 1), "script_s": round(time.monotonic() - started, 1), "target_s": 480,
          "within_target": met, "processes": processes, "command": command, "run_dir": str(job.run_dir),
          "stages": [{k: s.get(k) for k in ("stage", "seconds", "gpu_peak_gb")} for s in stages],
          "rl": rl, "generations": generate.get("rows") if generate else None, "generations_per_s": gen_rate,
          "device_peak_gb": device_peak_gb, "environment": env, "overrides": overrides,
          "commit": commit + ("+dirty" if dirty else ""), "load_average": os.getloadavg(),
          "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}

title = "GPU check" + (" — CPU dry run (tiny model, same code path; NOT a GPU measurement)" if dry_run else "")
gpu = f"{env.get('gpu')} ({env.get('gpu_memory_gb')} GB, bf16 {env.get('bf16')})" if cuda else "none (CPU)"
lines = [f"# {title}", "",
         f"Run {result['date']} on {platform.platform()}, {env['cpu_cores']} CPU cores, GPU: {gpu}; "
         f"torch {env['torch']} "
         f"(CUDA {env['cuda_version']}), accelerate {env['accelerate']}, trl {env['trl']}, transformers "
         f"{env['transformers']}, peft {env['peft']}; commit {result['commit']}; load average at the end "
         f"{result['load_average'][0]:.1f}. nvidia-smi: {env['nvidia_smi']}.", "",
         f"**{status['state']}** in {wall:.1f} s ({wall / 60:.1f} min) with {processes} process(es); target: the "
         "shortened pipeline within 8 minutes on one GPU — "
         + ("not applicable (a CPU dry run checks the code path, not the speed)." if dry_run
            else f"{'met' if met else 'not met'}."), "",
         f"Job: `gpu` preset on demo_entangled (20,000 rows), methods naive + deconfounded, settings changed: "
         f"`{json.dumps(overrides)}`. Command: `{command}`.", "",
         "| stage | seconds | GPU peak (GB, main process) |", "|---|---|---|"]
lines += [f"| {s['stage']} | {s['seconds']} | {s['gpu_peak_gb'] if s.get('gpu_peak_gb') is not None else '—'} |"
          for s in result["stages"] if s.get("seconds") is not None]
lines += ["", "| RL method | steps | median s/step | completions/step |", "|---|---|---|---|"]
lines += [f"| {m} | {v['steps']} | {v['median_step_s']} | {v['completions_per_step']} |" for m, v in rl.items()]
lines += ["", f"- generations: {result['generations']} in the generate stage, {gen_rate} per second (model loads "
              "included)",
          "- whole-device memory peak (nvidia-smi, every 0.5 s): "
          f"{device_peak_gb if device_peak_gb is not None else '—'} GB",
          f"- state message: {status.get('message')}", "",
          "Reproduce: `bash bench/gpu_check.sh" + (" --dry-run" if dry_run else "") + "` (results in "
          f"{'bench/results/gpu_dryrun.md' if dry_run else 'bench/results/gpu.md'})."]
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text("\n".join(lines) + "\n")
out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
print(f"wrote {out} ({status['state']}, {wall:.1f} s)", flush=True)
sys.exit(0 if status["state"] == "completed" else 1)
PY
