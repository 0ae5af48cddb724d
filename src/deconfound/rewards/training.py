"""Training reward models for every method of the paper's Tables 1–2, on one split, each saved with its metrics;
`train_all` trains several methods sharing one frozen encoder, `load_all` reloads them. The methods' targets and
inputs are defined in `config`.

Backbones: frozen features with a ridge head — "tfidf" (word 1–2-grams fitted on the training inputs;
fast, for smoke runs and tests), "minilm" (all-MiniLM-L6-v2 sentence embeddings from
`causal.embed_texts`, the paper's Upworthy set-up of embeddings + an L2 head), "generator" (the frozen
last-token hidden state of the generator, `models.load_generator`) — and "finetune", a regression head on
the last-token state of the LM, fine-tuned end to end (or with LoRA) for one epoch with MSE (the paper's
MIND set-up, App. D; `lr` is a setting and `lr_grid` a validation grid search). The ridge λ is chosen on
the validation split against each method's own target unless `l2` is fixed (the paper stresses that λ
matters); the valid metrics of a λ chosen that way are therefore slightly optimistic.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..errors import DeconfoundError
from .config import (FROZEN_BACKBONES, RewardColumns, RewardConfig, drop_missing, oracle_noise_sd, require_column,
                     target_name, training_target)
from .features import FeatureCache
from .methods import METHODS, REWARD_METHODS
from .metrics import evaluate_reward, pearson
from .model import RewardModel, head_class


def train_reward(config: RewardConfig, train: pd.DataFrame, valid: pd.DataFrame, columns: RewardColumns,
                 out_dir: str | Path, progress=None, features: FeatureCache | None = None) -> RewardModel:
    """Train one reward model on `train`, pick λ (or lr) on `valid`, save it with metrics.json in out_dir.

    `features` shares a frozen encoder between several calls (see `train_all`)."""
    started = time.perf_counter()
    stage = f"rewards/{config.method}"
    if config.backbone in ("generator", "finetune") and not config.model_path:
        raise DeconfoundError(f"the {config.backbone!r} reward backbone needs model_path (a language-model folder); "
                              "or use the minilm or tfidf backbone")
    train, valid = drop_missing(config, train, columns), drop_missing(config, valid, columns)
    if len(train) < 10:
        raise DeconfoundError(f"the {config.method} reward has {len(train)} usable training rows; it needs at least 10")
    state: dict = {}
    if config.method == "oracle_noise":
        state["noise_sd"] = oracle_noise_sd(config, require_column(train, columns.truth,
                                                                   "oracle_noise needs the truth column"))
    y_train = training_target(config, train, columns, state.get("noise_sd"))
    y_valid = training_target(replace(config, seed=config.seed + 1), valid, columns, state.get("noise_sd"))
    state["target_mean"] = float(np.mean(y_train))
    state["target_sd"] = float(np.std(y_train)) or 1.0
    conf_train = conf_valid = None
    if REWARD_METHODS[config.method].fits_confounder:
        conf_train = require_column(train, columns.confounder, f"the {config.method} reward needs a confounder column")
        conf_valid = require_column(valid, columns.confounder, f"the {config.method} reward needs a confounder column")
        state["confounder_mean"] = float(np.mean(conf_train))
        state["confounder_sd"] = float(np.std(conf_train)) or 1.0
    if config.method == "odin":
        # ODIN pushes its length head to correlate positively with length, the way length moves the reward;
        # for a general confounder that direction is the sign of its correlation with the outcome. With
        # |corr| instead, the confounder head can satisfy the term by tracking quality with the opposite
        # sign (quality and C are anti-correlated in the entangled simulation).
        state["odin_direction"] = 1.0 if (pearson(y_train, conf_train) or 0.0) >= 0 else -1.0
    model = RewardModel(config, columns, state)
    if progress:
        progress(stage, 0, 1, {})
    knobs = _fit_head(model, features, train, valid, y_train, y_valid, conf_train, conf_valid, progress, stage)
    train_scores = model.score_frame(train)
    state["score_mean"] = float(np.mean(train_scores))
    state["score_sd"] = float(np.std(train_scores)) or 1.0
    model.metrics = {"method": config.method, "backbone": config.backbone, "n_train": len(train),
                     "n_valid": len(valid), "target": target_name(config, columns),
                     "train": evaluate_reward(model, train, y_train, scores=train_scores, text_only=False),
                     "valid": evaluate_reward(model, valid, y_valid) if len(valid) else {},
                     "lambda": knobs.get("lambda"), "lr": knobs.get("lr"), "selection": knobs.get("curve"),
                     "noise_sd": state.get("noise_sd"), "seconds": round(time.perf_counter() - started, 3)}
    model.save(out_dir)
    if progress:
        progress(stage, 1, 1, {"valid_pearson_truth": model.metrics["valid"].get("pearson_truth")})
    return model


def _fit_head(model: RewardModel, features: FeatureCache | None, train, valid, y_train, y_valid, conf_train,
              conf_valid, progress, stage) -> dict:
    """Give the model its featuriser (frozen backbones) and its fitted head; the knobs the head chose."""
    config = model.config
    inputs_train = model.inputs(*model.frame_args(train, conf_train))
    inputs_valid = model.inputs(*model.frame_args(valid, conf_valid))
    z_train = None if conf_train is None else model.standardised_confounder(conf_train)
    z_valid = None if conf_valid is None else model.standardised_confounder(conf_valid)
    x_train, x_valid = inputs_train, inputs_valid  # the fine-tuned LM reads the strings themselves
    if config.backbone != "finetune":
        model.features = (features or FeatureCache.for_config(config)).featurizer(model.input_format, inputs_train)
        x_train, x_valid = model.features.transform(inputs_train), model.features.transform(inputs_valid)
    model.head = head_class(config)(config, model.state)
    return model.head.fit(x_train, y_train, z_train, x_valid, y_valid, z_valid, progress, stage)


def train_all(methods: Iterable[str], train: pd.DataFrame, valid: pd.DataFrame, columns: RewardColumns,
              out_root: str | Path, config: RewardConfig | None = None, progress=None,
              features: FeatureCache | None = None) -> dict[str, RewardModel]:
    """Train each requested method on the same split into out_root/<method>/, sharing one frozen encoder
    (each text is embedded once for all frozen-backbone methods). `config` holds the shared settings
    (its method is replaced per method)."""
    base = config or RewardConfig(method="naive")
    methods = list(dict.fromkeys(methods))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise DeconfoundError(f"unknown reward method(s) {', '.join(unknown)}: use {', '.join(METHODS)}")
    if features is None and base.backbone in FROZEN_BACKBONES:
        features = FeatureCache.for_config(base)
    results = {}
    for method in methods:
        results[method] = train_reward(replace(base, method=method), train, valid, columns,
                                       Path(out_root) / method, progress=progress, features=features)
    return results


def load_all(out_root: str | Path) -> dict[str, RewardModel]:
    """Every reward model saved under out_root/<method>/."""
    root = Path(out_root)
    return {folder.name: RewardModel.load(folder)
            for folder in sorted(root.iterdir()) if (folder / "config.json").exists()} if root.exists() else {}
