"""Step 5a: the reward models, one per method of the paper's Tables 1–2.

Owns: the method registry (`methods`), reward configs and targets, frozen text features (TF-IDF, MiniLM, the
generator's states), heads (ridge, ODIN, a fine-tuned LM regressor), the reward model with its persistence and
its trl reward callable, training several methods at once, and their metrics (Table 2).
May import: `data`, `causal` (text features), `models` (LM backbones), `errors`, `jsonio`, `text_measures`.
torch is imported inside the functions that need it.
"""

from .methods import (METHOD_LABELS, METHODS, REWARD_METHODS, RewardMethod, missing_requirement, parse_methods,
                      reward_method, usable_methods)
from .model import (BACKBONES, FROZEN_BACKBONES, FeatureCache, RewardColumns, RewardConfig, RewardFunction, RewardModel,
                    evaluate_reward, load_all, pearson, r_squared, reward_inputs, reward_table, train_all, train_reward,
                    training_target)
