"""How a reward model is configured and what it regresses on: `RewardConfig`, `RewardColumns`, the input strings
(`reward_inputs`) and each method's target (`training_target`).

Methods (`METHODS`) differ only in the target they regress on and in how the confounder C enters:

- `oracle`: the truth column (simulations only); `oracle_noise`: truth + N(0, σ), seeded.
- `naive`: the raw outcome y.
- `confounder_text`: y, with C's value written into the input ("popularity: 2.3 | text: ...").
- `confounder_layer`: y, with standardised C joined to the representation before the (ridge/linear) head.
- `odin` (Chen et al., 2024): two heads q + c fitted to y; c is pushed to correlate with C (in the direction
  C moves y), the quality head q to be uncorrelated with C (corr²), plus an orthogonality penalty
  (w_q·w_c)² on the head weights. The reward is q only.
- `deconfounded`: the corrected outcome y − ĥ(C) from the IV/DML estimate (`causal`).

What the reward reads: by default the TEXT only (the headline). In the paper's eq. 1 the quality part
g(T) is a function of the text; the context (abstract) is what the generator is conditioned on, not what it
chooses. If the reward also read the context, a naive model could learn the prompt-level offset
(−1.05·s(abstract) in the entangled simulation) directly from it: that term is constant within a prompt, so
it would not even steer RL, and the entangled failure would be an artefact of the input rather than the
confounding the paper studies. `RewardConfig.include_context` prepends the context for data where the
quality of a text does depend on what it was written for.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import DeconfoundError
from .methods import METHODS, REWARD_METHODS

BACKBONES = ("minilm", "tfidf", "generator", "finetune")
FROZEN_BACKBONES = ("minilm", "tfidf", "generator")
DEFAULT_L2_GRID = tuple(float(v) for v in np.round(10.0 ** np.arange(-3.0, 4.01, 0.5), 6))  # 1e-3 … 1e4


@dataclass
class RewardConfig:
    """How to train one reward model; serialisable to JSON and saved in the model folder."""

    method: str = field(metadata={"help": f"one of {', '.join(METHODS)}"})
    backbone: str = field(default="minilm", metadata={"help": "minilm | tfidf | generator (frozen last-token state "
                                                              "of the generator) | finetune (LM regression head)"})
    l2: float | None = field(default=None, metadata={"help": "ridge λ of frozen-feature heads; None = chosen on the "
                                                             "validation split from l2_grid"})
    l2_grid: tuple[float, ...] = field(default=DEFAULT_L2_GRID, metadata={"help": "λ values tried when l2 is None"})
    include_context: bool = field(default=False, metadata={"help": "prepend the context (prompt) to the text the "
                                                                   "reward reads; off by default (see module doc)"})
    noise_sd: float | None = field(default=None, metadata={"help": "oracle_noise: σ of the added noise; None = "
                                                                   "noise_frac·sd(truth)"})
    noise_frac: float = field(default=0.5, metadata={"help": "oracle_noise: σ as a fraction of sd(truth) "
                                                             "(0.5 gives corr ≈ 0.9 with the truth)"})
    model_path: str | None = field(default=None, metadata={"help": "LM folder for the generator/finetune backbones"})
    lr: float = field(default=6e-4, metadata={"help": "finetune: learning rate (paper grid 2e-4…2e-3)"})
    lr_grid: tuple[float, ...] = field(default=(), metadata={"help": "finetune: learning rates to try, best valid "
                                                                     "MSE kept (paper: 2e-4, 6e-4, 8e-4, 1e-3, 2e-3)"})
    epochs: int = field(default=1, metadata={"help": "finetune: passes over the training rows (paper: one)"})
    batch_size: int = field(default=32, metadata={"help": "finetune: rows per step; also the LM scoring batch"})
    max_length: int = field(default=64, metadata={"help": "finetune/generator: tokens kept per input"})
    weight_decay: float = field(default=0.0, metadata={"help": "finetune: AdamW weight decay (its L2)"})
    lora: bool = field(default=False, metadata={"help": "finetune: train LoRA adapters instead of all weights"})
    lora_r: int = field(default=16, metadata={"help": "finetune: LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "finetune: LoRA alpha"})
    lora_dropout: float = field(default=0.1, metadata={"help": "finetune: LoRA dropout"})
    odin_confounder_weight: float = field(default=1.0, metadata={"help": "odin: weight of −corr(c, C)·sign "
                                                                         "(the confounder head follows C in the "
                                                                         "direction C moves the outcome)"})
    odin_decorrelation_weight: float = field(default=10.0, metadata={"help": "odin: weight of corr(q, C)² (the "
                                                                             "quality head ignores C; 10 keeps "
                                                                             "|corr| ≈ 0.01 on the demo)"})
    odin_orthogonality_weight: float = field(default=1.0, metadata={"help": "odin: weight of (w_q·w_c)²"})
    odin_steps: int = field(default=200, metadata={"help": "odin (frozen features): L-BFGS iterations"})
    tfidf_max_features: int = field(default=50_000, metadata={"help": "tfidf: vocabulary cap"})
    embed_batch_size: int = field(default=64, metadata={"help": "minilm/generator: texts per forward pass"})
    clip: float = field(default=5.0, metadata={"help": "reward_func: standardised rewards are clipped to ±clip "
                                                       "(bounded rewards resist hacking)"})
    seed: int = field(default=0, metadata={"help": "seeds the oracle noise, ODIN's init and fine-tuning"})

    def __post_init__(self):
        if self.method not in METHODS:
            raise DeconfoundError(f"unknown reward method {self.method!r}: use one of {', '.join(METHODS)}")
        if self.backbone not in BACKBONES:
            raise DeconfoundError(f"unknown reward backbone {self.backbone!r}: use one of {', '.join(BACKBONES)}")
        if self.l2 is not None and self.l2 < 0:
            raise DeconfoundError(f"l2 must be ≥ 0 (got {self.l2})")
        self.l2_grid = tuple(float(v) for v in self.l2_grid)
        self.lr_grid = tuple(float(v) for v in self.lr_grid)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "RewardConfig":
        """Build from a dict, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class RewardColumns:
    """Which columns of the training frame play which part."""

    text: str = field(default="text", metadata={"help": "the text T the reward scores"})
    context: str | None = field(default=None, metadata={"help": "the prompt/context (read only with include_context)"})
    outcome: str = field(default="outcome", metadata={"help": "the observed outcome y"})
    truth: str | None = field(default=None, metadata={"help": "ground-truth quality (oracle target; metrics)"})
    confounder: str | None = field(default=None, metadata={"help": "the confounder C (one numeric column)"})
    corrected: str | None = field(default=None, metadata={"help": "the deconfounded outcome y − ĥ(C)"})

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RewardColumns":
        """Build from a dict, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_roles(cls, roles, corrected: str | None = None) -> "RewardColumns":
        """Columns from a table's `roles.Roles` (the first confounder) and the corrected-outcome column."""
        return cls(text=roles.text, context=roles.context, outcome=roles.outcome, truth=roles.truth,
                   confounder=roles.confounders[0] if roles.confounders else None, corrected=corrected)


# ------------------------------------------------------------------ inputs
def reward_inputs(texts: Sequence[str], contexts: Sequence[str] | None = None,
                  confounder: Sequence[float] | None = None, *, confounder_name: str = "confounder") -> list[str]:
    """The strings a reward model reads: the text, preceded by the context and/or the confounder's value
    when given (e.g. "popularity: 2.3 | context: ... | text: Great win")."""
    out = []
    for i, text in enumerate(texts):
        parts = []
        if confounder is not None:
            parts.append(f"{confounder_name}: {float(confounder[i]):.1f}")
        if contexts is not None:
            parts.append(f"context: {clean_text(contexts[i])}")
        body = clean_text(text)
        out.append(" | ".join(parts + [f"text: {body}"]) if parts else body)
    return out


def clean_text(value) -> str:
    """A cell as stripped text ("" for None/NaN)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


# ------------------------------------------------------------------ targets
def require_column(frame: pd.DataFrame, column: str | None, why: str) -> np.ndarray:
    """A numeric column of `frame` as floats, or an error saying `why` it was needed and what is missing."""
    if not column:
        raise DeconfoundError(f"{why}: no column is set for it")
    if column not in frame.columns:
        raise DeconfoundError(f"{why}: column '{column}' is not in the data "
                              f"(columns: {', '.join(map(str, frame.columns))})")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    if np.isfinite(values).sum() == 0:
        raise DeconfoundError(f"{why}: column '{column}' has no numeric values")
    return values


def target_column(method: str, columns: RewardColumns) -> str | None:
    """The column a method's target is read from: the truth, the corrected outcome or the outcome."""
    spec = REWARD_METHODS[method]
    if spec.needs_truth:
        return columns.truth
    return columns.corrected if spec.needs_corrected else columns.outcome


def training_target(config: RewardConfig, frame: pd.DataFrame, columns: RewardColumns,
                    noise_sd: float | None = None) -> np.ndarray:
    """The values the method regresses on (see the module doc); oracle_noise draws its noise from
    `config.seed` (pass `noise_sd` to reuse the σ fixed on the training split)."""
    method, spec = config.method, REWARD_METHODS[config.method]
    if spec.needs_truth:
        truth = require_column(frame, columns.truth, f"the {method} reward needs the ground-truth column")
        if method != "oracle_noise":
            return truth
        sd = noise_sd if noise_sd is not None else oracle_noise_sd(config, truth)
        return truth + np.random.default_rng(config.seed).normal(0.0, sd, size=len(truth))
    if spec.needs_corrected:
        return require_column(frame, columns.corrected, "the deconfounded reward needs the corrected outcome "
                                                        "(run the Deconfound step first)")
    return require_column(frame, columns.outcome, f"the {method} reward needs the outcome column")


def oracle_noise_sd(config: RewardConfig, truth: np.ndarray) -> float:
    """σ of oracle_noise's noise: `noise_sd` if set, else `noise_frac`·sd(truth)."""
    return float(config.noise_sd) if config.noise_sd is not None else float(config.noise_frac * np.nanstd(truth))


def target_name(config: RewardConfig, columns: RewardColumns) -> str | None:
    """How metrics.json names the target, e.g. "quality + noise" for oracle_noise."""
    column = target_column(config.method, columns)
    return f"{column} + noise" if config.method == "oracle_noise" else column


def drop_missing(config: RewardConfig, frame: pd.DataFrame, columns: RewardColumns) -> pd.DataFrame:
    """Rows with a text and a finite target (and confounder, where the method uses it)."""
    keep = frame[columns.text].notna().to_numpy()
    needed = target_column(config.method, columns)
    for column in [needed] + ([columns.confounder] if REWARD_METHODS[config.method].fits_confounder else []):
        if column and column in frame.columns:
            keep = keep & np.isfinite(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float))
    return frame.loc[keep].reset_index(drop=True)
