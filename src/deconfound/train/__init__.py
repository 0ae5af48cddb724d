"""Step 5b: fine-tuning the generator with trl — SFT, RL (GRPO/RLOO with a reward callable) and DPO.

Owns: the SFT/RL/DPO settings, the progress callback and the RL guards against reward hacking, the reward
wrapper that z-scores and clips, the trainers' shared plumbing (device, checkpoints, saving), and preference
pairs for DPO. May import: `models`, `errors`, `presets`, `text_measures`. It never imports `rewards`: RL takes
any reward callable. torch/trl are imported inside the functions that train.
"""

from .training import (PRESETS, REWARD_STATS_FILE, SUMMARY_FILE, Cancelled, DPOSettings, GuardedReward, RLSettings,
                       SFTSettings, TrainingSummary, build_preference_pairs, rl_config, rl_dataset, run_dpo, run_rl,
                       run_sft)
