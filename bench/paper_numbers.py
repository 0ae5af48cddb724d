"""The paper's Tables 1 and 2 (its numbers, keyed by our model and method names) and the reproduction's goals."""

from __future__ import annotations

# The paper's Table 1 (mean sentiment; titles naming a West/Central/East team, of 3,000) and Table 2
# (Pearson correlation of the reward with sentiment, train/valid), keyed by our model/method names.
PAPER_TABLE1 = {
    "orthogonal": {"base": (0.684, 177, 795, 717), "sft": (0.716, 159, 634, 610),
                   "rl_oracle": (0.950, 165, 714, 728), "rl_oracle_noise": (0.934, 172, 699, 664),
                   "rl_naive": (0.956, 214, 914, 1016), "rl_confounder_text": (0.932, 158, 655, 638),
                   "rl_confounder_layer": (0.935, 178, 679, 661), "rl_odin": (0.934, 178, 729, 680),
                   "rl_deconfounded": (0.939, 181, 692, 682)},
    "entangled": {"base": (0.450, 177, 795, 717), "sft": (0.716, 159, 634, 610),
                  "rl_oracle": (0.960, 187, 697, 720), "rl_oracle_noise": (0.958, 174, 716, 699),
                  "rl_naive": (0.735, 186, 908, 1041), "rl_confounder_text": (0.718, 166, 676, 629),
                  "rl_confounder_layer": (0.800, 189, 829, 835), "rl_odin": (0.807, 249, 1018, 1063),
                  "rl_deconfounded": (0.937, 170, 736, 694)},
}
PAPER_TABLE2 = {
    "orthogonal": {"oracle": (0.913, 0.872), "oracle_noise": (0.910, 0.891), "naive": (0.880, 0.859),
                   "confounder_text": (0.839, 0.827), "confounder_layer": (0.862, 0.841),
                   "odin": (0.654, 0.641), "deconfounded": (0.915, 0.886)},
    "entangled": {"oracle": (0.913, 0.872), "oracle_noise": (0.807, 0.802), "naive": (-0.073, -0.079),
                  "confounder_text": (-0.261, -0.253), "confounder_layer": (0.623, 0.627),
                  "odin": (-0.536, -0.542), "deconfounded": (0.898, 0.867)},
}
# Models that never see the observed outcome: the same in both scenarios (the paper reports them once). The
# second scenario reuses them from the first run: it starts from the first run's SFT model, skips SFT and the
# two oracle rewards, and its Table 1 takes these rows (and Table 2 the oracle rows) from the first run.
SHARED_MODELS = ("base", "sft", "rl_oracle", "rl_oracle_noise")
SHARED_METHODS = ("oracle", "oracle_noise")
GOAL_CORR, GOAL_ORACLE_GAP, GOAL_ABOVE_BASELINES, GOAL_MENTION_SLACK = 0.90, 0.02, 0.16, 0.05
