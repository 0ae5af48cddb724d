"""The reward model: a featuriser (frozen backbones) and a head, with the columns and standardisation it was
trained with; and `RewardFunction`, its trl reward callable.

A trained `RewardModel` persists to its folder (config.json + metrics.json + joblib/torch files), reloads
in a fresh process with `RewardModel.load(folder)`, scores batches with `score(...)`, and hands RL a trl
reward callable with `reward_func()`: rewards standardised by the model's mean/sd on its training set and
clipped to ±`clip`, so every method's reward lives on the same bounded scale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import DeconfoundError
from ..jsonio import json_default
from ..text_measures import completion_text
from .config import RewardColumns, RewardConfig, clean_text, reward_inputs
from .features import load_features
from .heads import OdinHead, RidgeHead
from .lm_head import LMRegressorHead
from .methods import REWARD_METHODS

FORMAT_VERSION = 1
_SCORE_CHUNK = 2048  # rows featurised at once when scoring with a frozen backbone


def head_class(config: RewardConfig):
    """The head a config trains: the fine-tuned LM regressor, ODIN's two heads or ridge (frozen features)."""
    if config.backbone == "finetune":
        return LMRegressorHead
    return OdinHead if config.method == "odin" else RidgeHead


class RewardModel:
    """A trained reward model: `score` predicts its target for texts, `reward_func` serves RL."""

    def __init__(self, config: RewardConfig, columns: RewardColumns, state: dict, metrics: dict | None = None,
                 features=None, head=None):
        self.config, self.columns, self.state = config, columns, state
        self.metrics: dict = metrics or {}
        self.out_dir: Path | None = None
        self.features = features  # frozen backbones: the featuriser; None for the fine-tuned LM head
        self.head = head          # RidgeHead, OdinHead or LMRegressorHead (see head_class)

    # -------------------------------------------------------------- inputs
    @property
    def needs_confounder(self) -> bool:
        """True when scoring needs the confounder's value (it is written into the input or joined to it)."""
        return REWARD_METHODS[self.config.method].scores_confounder

    @property
    def input_format(self) -> str:
        """Which parts the input string holds, e.g. "confounder+text"."""
        parts = (["confounder"] if self.config.method == "confounder_text" else []) + \
                (["context"] if self.config.include_context else []) + ["text"]
        return "+".join(parts)

    def inputs(self, texts, contexts, confounder) -> list[str]:
        """The strings the model reads for these texts (see `reward_inputs`)."""
        if self.config.include_context and contexts is None:
            raise DeconfoundError(f"the {self.config.method} reward was trained with the context in its input: "
                                  f"pass the contexts (column '{self.columns.context}')")
        return reward_inputs(texts, contexts if self.config.include_context else None,
                             confounder if self.config.method == "confounder_text" else None,
                             confounder_name=self.columns.confounder or "confounder")

    def standardised_confounder(self, confounder) -> np.ndarray:
        """The confounder on the training scale (missing values at its training mean)."""
        values = np.asarray(confounder, dtype=np.float64)
        values = np.where(np.isfinite(values), values, self.state["confounder_mean"])
        return (values - self.state["confounder_mean"]) / self.state["confounder_sd"]

    def frame_args(self, frame: pd.DataFrame, confounder=None) -> tuple:
        """(texts, contexts, confounder) of a frame's rows, the contexts only when the model reads them."""
        contexts = None
        if self.config.include_context:
            if not self.columns.context or self.columns.context not in frame.columns:
                raise DeconfoundError("include_context is on but no context column is set or present")
            contexts = frame[self.columns.context].tolist()
        return frame[self.columns.text].tolist(), contexts, confounder

    def _check_confounder(self, n: int, confounder):
        if not self.needs_confounder:
            return None
        if confounder is None:
            raise DeconfoundError(f"the {self.config.method} reward scores a text together with its confounder: "
                                  f"pass the values of '{self.columns.confounder}'")
        values = np.asarray(confounder, dtype=np.float64).reshape(-1)
        if len(values) != n:
            raise DeconfoundError(f"got {len(values)} confounder values for {n} texts")
        return np.where(np.isfinite(values), values, self.state["confounder_mean"])

    # -------------------------------------------------------------- scoring
    def score(self, texts: Sequence[str], contexts: Sequence[str] | None = None,
              confounder: Sequence[float] | None = None, *, standardize: bool = False) -> np.ndarray:
        """The reward of each text: the head's prediction of the method's target (ODIN: its quality head
        q only). `standardize` rescales by the training scores' mean/sd, as `reward_func` does."""
        texts = [clean_text(t) for t in texts]
        contexts = None if contexts is None else [clean_text(c) for c in contexts]  # positional, whatever the index
        if contexts is not None and len(contexts) != len(texts):
            raise DeconfoundError(f"got {len(contexts)} contexts for {len(texts)} texts")
        confounder = self._check_confounder(len(texts), confounder)
        if self.features is None:
            raw = self._predict(texts, contexts, confounder)
        else:
            raw = np.concatenate([self._predict(texts[s:s + _SCORE_CHUNK],
                                                None if contexts is None else contexts[s:s + _SCORE_CHUNK],
                                                None if confounder is None else confounder[s:s + _SCORE_CHUNK])
                                  for s in range(0, len(texts), _SCORE_CHUNK)]) if texts else np.zeros(0)
        if standardize:
            return (raw - self.state["score_mean"]) / self.state["score_sd"]
        return raw

    def score_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """The reward of each row of a frame (the confounder read from its column where the model needs it)."""
        confounder = None
        if self.needs_confounder:
            confounder = pd.to_numeric(frame[self.columns.confounder], errors="coerce").to_numpy(dtype=float)
        return self.score(*self.frame_args(frame, confounder))

    def _predict(self, texts, contexts, confounder) -> np.ndarray:
        inputs = self.inputs(texts, contexts, confounder)
        z = None if confounder is None else self.standardised_confounder(confounder)
        return self.head.predict(inputs if self.features is None else self.features.transform(inputs), z)

    def reward_func(self) -> "RewardFunction":
        """A trl reward callable `f(completions, prompts=None, **columns) -> list[float]` (GRPO/RLOO)."""
        return RewardFunction(self)

    # -------------------------------------------------------------- persistence
    def save(self, out_dir: str | Path) -> Path:
        """Write config.json, metrics.json and the weights into out_dir."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"format_version": FORMAT_VERSION, "config": self.config.to_dict(),
                   "columns": self.columns.to_dict(), "state": self.state}
        (out / "config.json").write_text(json.dumps(payload, indent=2))
        if self.features is not None:
            self.features.save(out)
        self.head.save(out)
        self.write_metrics(out)
        self.out_dir = out
        return out

    def write_metrics(self, out_dir: str | Path) -> Path:
        """metrics.json next to the model."""
        path = Path(out_dir) / "metrics.json"
        path.write_text(json.dumps(self.metrics, indent=2, default=json_default))
        return path

    @classmethod
    def load(cls, out_dir: str | Path) -> "RewardModel":
        """Reload a saved reward model (a fresh process is fine)."""
        out = Path(out_dir)
        if not (out / "config.json").exists():
            raise DeconfoundError(f"no reward model in {out} (config.json is missing): train it first")
        payload = json.loads((out / "config.json").read_text())
        metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else {}
        config, state = RewardConfig.from_dict(payload["config"]), payload["state"]
        features = None if config.backbone == "finetune" else load_features(out, config)
        model = cls(config, RewardColumns.from_dict(payload["columns"]), state, metrics, features,
                    head_class(config).load(out, config, state))
        model.out_dir = out
        return model

    # -------------------------------------------------------------- reporting
    def summary(self) -> str:
        """One line: method, backbone, Pearson with the truth on train/valid, λ or lr."""
        m = self.metrics
        train, valid = m.get("train", {}), m.get("valid", {})
        knob = f"λ={m['lambda']:g}" if m.get("lambda") is not None else (f"lr={m['lr']:g}" if m.get("lr") else "")
        return (f"{self.config.method:16s} {self.config.backbone:9s} corr(truth) "
                f"train {_fmt(train.get('pearson_truth'))} valid {_fmt(valid.get('pearson_truth'))}"
                f" | R² outcome valid {_fmt(valid.get('r2_outcome'))} | {knob} | {m.get('seconds', float('nan')):.1f}s")

    def to_dict(self) -> dict:
        """Config, columns and metrics as one JSON-ready dict."""
        return {"config": self.config.to_dict(), "columns": self.columns.to_dict(), "metrics": self.metrics,
                "out_dir": str(self.out_dir) if self.out_dir else None}


class RewardFunction:
    """The trl reward callable of a `RewardModel`. trl passes every dataset column as a keyword (one value
    per completion), so the confounder reaches a confounder_text/confounder_layer reward as
    `columns[<confounder column>]` (or `confounder=`) and the context as `columns[<context column>]`
    (or `context=`)."""

    def __init__(self, model: RewardModel):
        self.model = model
        self.__name__ = f"reward_{model.config.method}"  # trl names logged rewards after it

    def __call__(self, completions, prompts=None, **columns) -> list[float]:
        model = self.model
        texts = [completion_text(c).strip() for c in completions]
        contexts = self._column(columns, model.columns.context, "context") if model.config.include_context else None
        if model.config.include_context and contexts is None:
            raise DeconfoundError(f"the {model.config.method} reward reads the context: put the column "
                                  f"'{model.columns.context or 'context'}' in the RL prompts dataset")
        confounder = self._column(columns, model.columns.confounder, "confounder") if model.needs_confounder else None
        if model.needs_confounder and confounder is None:
            raise DeconfoundError(f"the {model.config.method} reward needs the confounder column "
                                  f"'{model.columns.confounder}' in the RL prompts dataset")
        rewards = model.score(texts, contexts, confounder, standardize=True)
        return [float(v) for v in np.clip(rewards, -model.config.clip, model.config.clip)]

    @staticmethod
    def _column(columns: dict, name: str | None, alias: str):
        for key in (name, alias):
            if key and key in columns and columns[key] is not None:
                return list(columns[key])
        return None


def _fmt(value) -> str:
    return "  n/a" if value is None else f"{value:+.3f}"
