"""Step 5b: fine-tuning the generator with trl — SFT, RL (GRPO/RLOO or sample-and-rank with a reward callable) and DPO.

Every stage takes a model folder and returns a model folder that `models.generate` and
`models.load_generator` understand (a full folder, or a LoRA adapter folder beside its base), with
`training_summary.json` (per-step metrics, guards that fired) and the prompt style it was trained with.
progress(stage, step, total, metrics) is called after every optimiser step; raising `Cancelled` from it stops
the trainer cleanly (a checkpoint is saved first, so `resume=True` continues).

Owns: the SFT/RL/DPO settings and the training summary (`settings`), the progress callback, the RL guards
against reward hacking and the reward wrapper that z-scores and clips (`callbacks`), the trainers' shared
plumbing: device, checkpoints, saving (`plumbing`), one module per trainer (`sft`, `rl`, `dpo`), sample-and-rank
fine-tuning, the CPU-friendly RL algorithm (`sample_rank`), and preference pairs for DPO (`pairs`). May import: `models`, `errors`, `jsonio`, `presets`, `text_measures`. It never
imports `rewards`: RL takes any reward callable. torch/trl are imported inside the functions that train.
"""

from .callbacks import REWARD_STATS_FILE, Cancelled, GuardedReward
from .dpo import run_dpo
from .pairs import build_preference_pairs
from .rl import RL_ALGORITHMS, rl_config, rl_dataset, run_rl
from .sample_rank import run_sample_rank
from .settings import PRESETS, SUMMARY_FILE, DPOSettings, RLSettings, SFTSettings, TrainingSummary
from .sft import run_sft
