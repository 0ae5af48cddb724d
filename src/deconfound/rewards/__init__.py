"""Step 5a: the reward models, one per method of the paper's Tables 1–2.

Owns: the method registry (`methods`), reward configs, inputs and targets (`config`), frozen text features
(`features`: TF-IDF, MiniLM, the generator's states), the heads (`heads`: ridge and ODIN on frozen features;
`lm_head`: a fine-tuned LM regressor), the reward model with its persistence and its trl reward callable
(`model`), training several methods at once (`training`), their metrics (`metrics`, Table 2), and the reward
retrained at the ends of the confounder estimate's interval (`band`).
May import: `data`, `causal` (text features), `models` (LM backbones), `errors`, `jsonio`, `text_measures`.
torch is imported inside the functions that need it.
"""

from .band import reward_band, reward_band_from_store
from .config import BACKBONES, FROZEN_BACKBONES, RewardColumns, RewardConfig, reward_inputs, training_target
from .features import FeatureCache
from .heads import OdinHead, RidgeHead
from .lm_head import LMRegressorHead
from .methods import (METHOD_LABELS, METHODS, REWARD_METHODS, RewardMethod, missing_requirement, parse_methods,
                      reward_method, usable_methods)
from .metrics import evaluate_reward, pearson, r_squared, reward_table
from .model import RewardFunction, RewardModel
from .training import load_all, train_all, train_reward
from .evaluator import EVALUATOR_LABEL, evaluator_backbone, evaluator_label, train_evaluator
