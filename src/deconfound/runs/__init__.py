"""Step 5c: training runs — one run folder per job, the stages that fill it, and the worker process.

Owns: `TrainConfig` and its overrides, building a config from a preset, the stages (estimate → base → SFT →
rewards → RL/DPO → generate) and the runner that resumes them, progress and ETA, the run folder's files, jobs
(create, start, status, cancel, resume, list) and the processes behind them. May import: `data`, `causal`,
`models`, `rewards`, `train`, `presets`, `errors`, `paths`, `jsonio`. No torch at import time: the dashboard
imports this package; the stages import the trainers when they run.
"""

from .folder import RunFolder, now_iso
from .jobs import (ABOUT_FILE, ACTIVE_STATES, CANCEL_FILE, CANCEL_GRACE_S, FINAL_STATES, JOB_ID_RE, Job,
                   accelerate_command, cancel_job, cancel_requested, create_job, create_job_from_folder,
                   format_job_line, format_seconds, get_job, is_run_folder_config, job_dir, job_processes_count,
                   job_status, launch_command, list_jobs, new_job_id, resume_job, run_duration, start_job, wait_job,
                   worker_alive)
from .launch import GPU_PRESET_ON_CPU_ENV, check_processes, check_rl_algorithm, worker_command
from .processes import (accelerate_installed, cpu_cores, cuda_device_count, group_alive, job_processes, pid_alive,
                        process_start_time)
from .config import (OVERRIDES_ENV, TrainConfig, apply_overrides, default_threads, env_overrides, load_config_file,
                     parse_overrides, preset_config)
from .progress import RunProgress
from .runner import cancelled_errors, drop_incomplete_checkpoints, run_pipeline
from .stages import eval_prompts, load_run_data, plan_stages
from .evaluator import (EVALUATOR_DIR, build_evaluator, default_marker_groups, evaluator_summary, fluency_frame,
                        marker_groups_for, needs_evaluator, write_fluency)
from .trained import generate_for_run, generate_frame, read_prompts, resolve_in, run_models
