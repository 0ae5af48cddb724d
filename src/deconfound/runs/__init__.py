"""Step 5c: training runs — one run folder per job, the stages that fill it, and the worker process.

Owns: `TrainConfig` and its overrides, building a config from a preset, the stages (estimate → base → SFT →
rewards → RL/DPO → generate) and the runner that resumes them, progress and ETA, the run folder's files, jobs
(create, start, status, cancel, resume, list) and the processes behind them. May import: `data`, `causal`,
`models`, `rewards`, `train`, `presets`, `errors`, `paths`, `jsonio`. No torch at import time: the dashboard
imports this package; the stages import the trainers when they run.
"""

from .folder import RunFolder, now_iso
from .jobs import (ACTIVE_STATES, CANCEL_GRACE_S, FINAL_STATES, JOB_ID_RE, Job, accelerate_command, cancel_job,
                   create_job, format_job_line, format_seconds, get_job, group_alive, job_dir, job_processes,
                   job_status, list_jobs, new_job_id, pid_alive, process_start_time, resume_job, start_job, wait_job,
                   worker_alive, worker_command)
from .pipeline import (OVERRIDES_ENV, RunProgress, TrainConfig, apply_overrides, cancelled_errors, env_overrides,
                       eval_prompts, generate_for_run, generate_frame, load_config_file, load_run_data, parse_overrides,
                       plan_stages, preset_config, read_prompts, resolve_in, run_models, run_pipeline)
