"""Reward models for every method of the paper's Tables 1–2, trained on one split and saved with metrics.

Methods (`METHODS`) differ only in the target they regress on and in how the confounder C enters:

- `oracle`: the truth column (simulations only); `oracle_noise`: truth + N(0, σ), seeded.
- `naive`: the raw outcome y.
- `confounder_text`: y, with C's value written into the input ("popularity: 2.3 | text: ...").
- `confounder_layer`: y, with standardised C joined to the representation before the (ridge/linear) head.
- `odin` (Chen et al., 2024): two heads q + c fitted to y; c is pushed to correlate with C (in the direction
  C moves y), the quality head q to be uncorrelated with C (corr²), plus an orthogonality penalty
  (w_q·w_c)² on the head weights. The reward is q only.
- `deconfounded`: the corrected outcome y − ĥ(C) from the IV/DML estimate (`estimators`).

What the reward reads: by default the TEXT only (the headline). In the paper's eq. 1 the quality part
g(T) is a function of the text; the context (abstract) is what the generator is conditioned on, not what it
chooses. If the reward also read the context, a naive model could learn the prompt-level offset
(−1.05·s(abstract) in the entangled simulation) directly from it: that term is constant within a prompt, so
it would not even steer RL, and the entangled failure would be an artefact of the input rather than the
confounding the paper studies. `RewardConfig.include_context` prepends the context for data where the
quality of a text does depend on what it was written for.

Backbones: frozen features with a ridge head — "tfidf" (word 1–2-grams fitted on the training inputs;
fast, for smoke runs and tests), "minilm" (all-MiniLM-L6-v2 sentence embeddings from
`embeddings.embed_texts`, the paper's Upworthy set-up of embeddings + an L2 head), "generator" (the frozen
last-token hidden state of the generator, `models.load_generator`) — and "finetune", a regression head on
the last-token state of the LM, fine-tuned end to end (or with LoRA) for one epoch with MSE (the paper's
MIND set-up, App. D; `lr` is a setting and `lr_grid` a validation grid search). The ridge λ is chosen on
the validation split against each method's own target unless `l2` is fixed (the paper stresses that λ
matters); the valid metrics of a λ chosen that way are therefore slightly optimistic.

A trained `RewardModel` persists to its folder (config.json + metrics.json + joblib/torch files), reloads
in a fresh process with `RewardModel.load(folder)`, scores batches with `score(...)`, and hands RL a trl
reward callable with `reward_func()`: rewards standardised by the model's mean/sd on its training set and
clipped to ±`clip`, so every method's reward lives on the same bounded scale.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import DeconfoundError
from ..jsonio import json_default
from ..text_measures import completion_text
from .methods import METHODS, REWARD_METHODS

BACKBONES = ("minilm", "tfidf", "generator", "finetune")
FROZEN_BACKBONES = ("minilm", "tfidf", "generator")
DEFAULT_L2_GRID = tuple(float(v) for v in np.round(10.0 ** np.arange(-3.0, 4.01, 0.5), 6))  # 1e-3 … 1e4
FORMAT_VERSION = 1
_SCORE_CHUNK = 2048  # rows featurised at once when scoring with a frozen backbone


# ------------------------------------------------------------------ configuration
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


# ------------------------------------------------------------------ inputs and targets
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
            parts.append(f"context: {_clean(contexts[i])}")
        body = _clean(text)
        out.append(" | ".join(parts + [f"text: {body}"]) if parts else body)
    return out


def _clean(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _require(frame: pd.DataFrame, column: str | None, why: str) -> np.ndarray:
    if not column:
        raise DeconfoundError(f"{why}: no column is set for it")
    if column not in frame.columns:
        raise DeconfoundError(f"{why}: column '{column}' is not in the data "
                              f"(columns: {', '.join(map(str, frame.columns))})")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    if np.isfinite(values).sum() == 0:
        raise DeconfoundError(f"{why}: column '{column}' has no numeric values")
    return values


def training_target(config: RewardConfig, frame: pd.DataFrame, columns: RewardColumns,
                    noise_sd: float | None = None) -> np.ndarray:
    """The values the method regresses on (see the module table); oracle_noise draws its noise from
    `config.seed` (pass `noise_sd` to reuse the σ fixed on the training split)."""
    method = config.method
    if method in ("oracle", "oracle_noise"):
        truth = _require(frame, columns.truth, f"the {method} reward needs the ground-truth column")
        if method == "oracle":
            return truth
        sd = noise_sd if noise_sd is not None else _noise_sd(config, truth)
        return truth + np.random.default_rng(config.seed).normal(0.0, sd, size=len(truth))
    if method == "deconfounded":
        return _require(frame, columns.corrected, "the deconfounded reward needs the corrected outcome "
                                                  "(run the Deconfound step first)")
    return _require(frame, columns.outcome, f"the {method} reward needs the outcome column")


def _noise_sd(config: RewardConfig, truth: np.ndarray) -> float:
    return float(config.noise_sd) if config.noise_sd is not None else float(config.noise_frac * np.nanstd(truth))


# ------------------------------------------------------------------ frozen features
class _TfidfFeatures:
    """Word 1–2-grams with sublinear TF-IDF, fitted on the training inputs (sparse, so the ridge head sees
    every word: a 128-d LSA reduction such as `embeddings.TfidfEmbedder` loses the word-level signal).
    Single-character tokens are kept so digits of a confounder written into the text stay visible."""

    name = "tfidf"

    def __init__(self, max_features: int = 50_000, vectorizer=None):
        self.max_features = max_features
        self.vectorizer = vectorizer

    def fit(self, inputs: list[str]) -> "_TfidfFeatures":
        from ..causal import fit_tfidf
        self.vectorizer, _ = fit_tfidf(inputs, max_features=self.max_features, single_char_tokens=True,
                                       purpose="learn a reward from")
        return self

    def transform(self, inputs: list[str]):
        return self.vectorizer.transform(inputs).astype(np.float64).tocsr()

    def save(self, folder: Path) -> None:
        import joblib
        joblib.dump(self.vectorizer, folder / "tfidf.joblib")

    @classmethod
    def load(cls, folder: Path, config: RewardConfig) -> "_TfidfFeatures":
        import joblib
        return cls(config.tfidf_max_features, joblib.load(folder / "tfidf.joblib"))


class _MemoFeatures:
    """A frozen encoder that embeds each distinct input once per process (shared across reward methods)."""

    name = "memo"

    def __init__(self):
        self.memo: dict[str, np.ndarray] = {}

    def fit(self, inputs: list[str]) -> "_MemoFeatures":
        return self

    max_memo = 100_000  # RL scores ever-new completions: bound the memory (≈150 MB of 384-d float32)

    def transform(self, inputs: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in inputs if t not in self.memo))
        if len(self.memo) + len(todo) > self.max_memo:
            self.memo.clear()
            todo = list(dict.fromkeys(inputs))
        if todo:
            self.memo.update(zip(todo, self._embed(todo)))
        return np.stack([self.memo[t] for t in inputs]).astype(np.float64) if inputs else np.zeros((0, 0))

    def save(self, folder: Path) -> None:  # nothing fitted: the encoder is reloaded from its source
        return None


class _MiniLMFeatures(_MemoFeatures):
    name = "minilm"

    def __init__(self, batch_size: int = 64):
        super().__init__()
        self.batch_size = batch_size

    def _embed(self, inputs: list[str]) -> np.ndarray:
        from ..causal import embed_texts
        return embed_texts(inputs, model="minilm", batch_size=self.batch_size)

    @classmethod
    def load(cls, folder: Path, config: RewardConfig) -> "_MiniLMFeatures":
        return cls(config.embed_batch_size)


class _GeneratorFeatures(_MemoFeatures):
    """The generator's final hidden state at the last real token of each input, frozen."""

    name = "generator"

    def __init__(self, model_path: str, batch_size: int = 32, max_length: int = 64):
        super().__init__()
        self.model_path, self.batch_size, self.max_length = model_path, batch_size, max_length
        self._model = None

    def _embed(self, inputs: list[str]) -> np.ndarray:
        import torch
        if self._model is None:
            from ..models import load_generator
            if not Path(self.model_path).exists():
                raise DeconfoundError(f"generator folder {self.model_path} is gone; retrain the reward model")
            self._model, self._tokenizer = load_generator(self.model_path)
            self._model.eval()
            _ensure_pad_token(self._tokenizer)
        device = next(self._model.parameters()).device
        out = []
        with torch.inference_mode():
            for start in range(0, len(inputs), self.batch_size):
                batch = self._tokenizer(inputs[start:start + self.batch_size], padding=True, truncation=True,
                                        max_length=self.max_length, return_tensors="pt").to(device)
                hidden = self._model(**batch, output_hidden_states=True).hidden_states[-1]
                out.append(_last_token(hidden, batch["attention_mask"]).float().cpu().numpy())
        return np.concatenate(out)

    @classmethod
    def load(cls, folder: Path, config: RewardConfig) -> "_GeneratorFeatures":
        return cls(config.model_path, config.embed_batch_size, config.max_length)


def _ensure_pad_token(tokenizer) -> None:
    tokenizer.padding_side = "right"  # _last_token reads the position attention_mask.sum() - 1
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token


def _last_token(hidden, attention_mask):
    """Hidden state of each row's last real token (right padding)."""
    import torch
    last = attention_mask.long().sum(1).clamp(min=1) - 1
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class FeatureCache:
    """Frozen-backbone features shared by the reward models of one run: the encoder is loaded once and each
    distinct input is embedded once (TF-IDF is fitted once per input format: plain text, text with the
    confounder written in, text with context)."""

    def __init__(self, backbone: str, model_path: str | None = None, batch_size: int = 64, max_length: int = 64,
                 tfidf_max_features: int = 50_000):
        if backbone not in FROZEN_BACKBONES:
            raise DeconfoundError(f"FeatureCache is for frozen backbones ({', '.join(FROZEN_BACKBONES)}), "
                                  f"not {backbone!r}")
        if backbone == "generator" and not model_path:
            raise DeconfoundError("the 'generator' reward backbone needs model_path (a language-model folder)")
        self.backbone, self.model_path = backbone, model_path
        self.batch_size, self.max_length, self.tfidf_max_features = batch_size, max_length, tfidf_max_features
        self._featurizers: dict[str, object] = {}

    @classmethod
    def for_config(cls, config: RewardConfig) -> "FeatureCache":
        """A cache matching a reward config's backbone settings."""
        return cls(config.backbone, config.model_path, config.embed_batch_size, config.max_length,
                   config.tfidf_max_features)

    def featurizer(self, input_format: str, train_inputs: list[str]):
        """The encoder for one input format, fitted on `train_inputs` the first time (TF-IDF only)."""
        key = input_format if self.backbone == "tfidf" else self.backbone
        if key not in self._featurizers:
            if self.backbone == "tfidf":
                self._featurizers[key] = _TfidfFeatures(self.tfidf_max_features).fit(train_inputs)
            elif self.backbone == "minilm":
                self._featurizers[key] = _MiniLMFeatures(self.batch_size)
            else:
                self._featurizers[key] = _GeneratorFeatures(self.model_path, self.batch_size, self.max_length)
        return self._featurizers[key]


_FEATURE_CLASSES = {"tfidf": _TfidfFeatures, "minilm": _MiniLMFeatures, "generator": _GeneratorFeatures}


# ------------------------------------------------------------------ heads on frozen features
def _with_confounder(features, z: np.ndarray):
    """[features, z]: the standardised confounder as one more column (sparse-aware)."""
    column = np.asarray(z, dtype=np.float64).reshape(-1, 1)
    if hasattr(features, "tocsr"):
        from scipy import sparse
        return sparse.hstack([features, sparse.csr_matrix(column)], format="csr")
    return np.hstack([features, column])


def _fit_ridge(X_train, y_train, X_valid, y_valid, grid: Sequence[float]):
    """Ridge for each λ in grid; the one with the lowest validation MSE (its λ, model, MSE per λ).
    BLAS runs on one thread here: these solves are small, and on a shared 2-core machine multi-threaded
    OpenBLAS spins (a 3.7k×384 decomposition took 15 s with 2 threads under load, 0.14 s with 1)."""
    from sklearn.linear_model import Ridge
    from threadpoolctl import threadpool_limits
    sparse = hasattr(X_train, "tocsr")
    solver = "sparse_cg" if sparse else "auto"
    with threadpool_limits(limits=1, user_api="blas"):
        if len(grid) > 1 and not sparse:
            curve = _dense_ridge_curve(np.asarray(X_train), y_train, np.asarray(X_valid), y_valid, grid)
        else:
            curve = {}
            for lam in grid:
                model = Ridge(alpha=float(lam), solver=solver).fit(X_train, y_train)
                curve[float(lam)] = float(np.mean((model.predict(X_valid) - y_valid) ** 2)) if len(y_valid) else 0.0
        best = min(curve, key=curve.get)
        return best, Ridge(alpha=best, solver=solver).fit(X_train, y_train), curve


def _dense_ridge_curve(X_train, y_train, X_valid, y_valid, grid) -> dict[float, float]:
    """Validation MSE of ridge (with intercept) for every λ from one eigendecomposition of the centred
    Gram matrix — the same solutions as sklearn's Ridge, without one linear solve per λ."""
    x_mean, y_mean = X_train.mean(0), y_train.mean()
    centred = X_train - x_mean
    eigenvalues, basis = np.linalg.eigh(centred.T @ centred)
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    projected_y = basis.T @ (centred.T @ (y_train - y_mean))
    valid_basis = (X_valid - x_mean) @ basis
    curve = {}
    for lam in grid:
        predicted = valid_basis @ (projected_y / (eigenvalues + float(lam))) + y_mean
        curve[float(lam)] = float(np.mean((predicted - y_valid) ** 2))
    return curve


def _corr_torch(a, b):
    a = a - a.mean()
    b = b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm() + 1e-8)


def _odin_loss(q, c, y, z, weight, config: RewardConfig, l2_per_row: float, direction: float = 1.0):
    """ODIN (Chen et al., 2024) for a regression target: q + c fits y; c follows the confounder (in the
    direction the confounder moves the outcome), q is decorrelated from it; the two heads' weight vectors
    are pushed apart; plus the ridge L2."""
    fit = ((q + c - y) ** 2).mean()
    follow = -direction * _corr_torch(c, z)
    decorrelate = _corr_torch(q, z) ** 2
    # ODIN's penalty is |w_q·w_c|; its square has the same minimum without the kink at 0, on which L-BFGS
    # stalled (measured on the demo: outcome R² 0.06–0.26 with |·| vs 0.82 with (·)², same start).
    orthogonal = (weight[0] * weight[1]).sum() ** 2
    loss = (fit + config.odin_confounder_weight * follow + config.odin_decorrelation_weight * decorrelate
            + config.odin_orthogonality_weight * orthogonal + l2_per_row * (weight ** 2).sum())
    parts = {"fit": float(fit.detach()), "corr_c": float(_corr_torch(c, z).detach()),
             "corr_q": float(_corr_torch(q, z).detach()), "ortho": float(orthogonal.detach())}
    return loss, parts


def _fit_odin_frozen(X, y_std: np.ndarray, z: np.ndarray, lam: float, direction: float, config: RewardConfig,
                     progress, stage):
    """Two linear heads on frozen features, fitted full-batch with L-BFGS (the correlation terms need the
    whole sample; L-BFGS meets ODIN's constraints far more tightly than Adam in the same time).
    Returns (weight (2, d), bias (2,)) as numpy."""
    import torch
    torch.manual_seed(config.seed)
    if hasattr(X, "tocoo"):
        coo = X.tocoo()
        features = torch.sparse_coo_tensor(np.vstack([coo.row, coo.col]), coo.data.astype(np.float32), coo.shape,
                                           check_invariants=False).coalesce()
        matmul = torch.sparse.mm
    else:
        features = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        matmul = torch.mm
    n, d = X.shape
    head = torch.nn.Linear(d, 2)
    torch.nn.init.normal_(head.weight, std=0.01)
    torch.nn.init.zeros_(head.bias)
    y_t = torch.as_tensor(y_std, dtype=torch.float32)
    z_t = torch.as_tensor(z, dtype=torch.float32)
    optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=config.odin_steps, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)
    evaluations = [0]

    def closure():
        optimizer.zero_grad()
        out = matmul(features, head.weight.t()) + head.bias
        loss, parts = _odin_loss(out[:, 0], out[:, 1], y_t, z_t, head.weight, config, lam / n, direction)
        loss.backward()
        evaluations[0] += 1
        if progress and evaluations[0] % 25 == 0:
            progress(stage, min(evaluations[0], config.odin_steps), config.odin_steps,
                     {"loss": float(loss.detach()), **parts})
        return loss

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small problem: extra threads only spin on a shared machine
    try:
        optimizer.step(closure)
    finally:
        torch.set_num_threads(threads)
    return head.weight.detach().numpy().astype(np.float64), head.bias.detach().numpy().astype(np.float64)


# ------------------------------------------------------------------ fine-tuned LM head
def _lm_regressor_class():
    import torch

    class LMRegressor(torch.nn.Module):
        """A linear head (1 output, 2 for ODIN) on the LM's last-token state, optionally joined with the
        standardised confounder (confounder_layer)."""

        def __init__(self, backbone, n_out: int, n_extra: int):
            super().__init__()
            self.backbone = backbone
            hidden = backbone.config.hidden_size
            self.head = torch.nn.Linear(hidden + n_extra, n_out)
            torch.nn.init.normal_(self.head.weight, std=0.02)
            torch.nn.init.zeros_(self.head.bias)

        def forward(self, input_ids, attention_mask, extra=None):
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            pooled = _last_token(hidden, attention_mask).float()
            if extra is not None:
                pooled = torch.cat([pooled, extra.reshape(-1, 1).to(pooled.dtype)], dim=1)
            return self.head(pooled)

    return LMRegressor


def _device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_backbone(model_path: str):
    """The transformer body (no LM head) of a model or adapter folder, float32 on the CPU, and its tokenizer."""
    from ..models import load_generator, load_tokenizer
    if not Path(model_path).exists():
        raise DeconfoundError(f"language-model folder {model_path} does not exist")
    causal_lm, _ = load_generator(model_path, merge=True, for_training=True)
    backbone = getattr(causal_lm, causal_lm.base_model_prefix, causal_lm)
    tokenizer = load_tokenizer(model_path, padding_side="right")
    _ensure_pad_token(tokenizer)
    return backbone, tokenizer


def _build_lm_regressor(config: RewardConfig):
    import torch
    torch.manual_seed(config.seed)
    backbone, tokenizer = _load_backbone(config.model_path)
    if config.lora:
        from peft import LoraConfig, get_peft_model
        backbone = get_peft_model(backbone, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                                       lora_dropout=config.lora_dropout,
                                                       target_modules="all-linear"))
    n_out = 2 if config.method == "odin" else 1
    n_extra = 1 if config.method == "confounder_layer" else 0
    return _lm_regressor_class()(backbone, n_out, n_extra).to(_device()), tokenizer


def _lm_forward(net, tokenizer, inputs: list[str], extra, max_length: int):
    import torch
    device = next(net.parameters()).device
    batch = tokenizer(inputs, padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(device)
    extra_t = None if extra is None else torch.as_tensor(np.asarray(extra), dtype=torch.float32, device=device)
    return net(batch["input_ids"], batch["attention_mask"], extra_t)


def _fit_lm(net, tokenizer, inputs: list[str], y_std: np.ndarray, z: np.ndarray | None, lr: float,
            config: RewardConfig, progress, stage, direction: float = 1.0) -> None:
    """Fine-tune the regression head (and the LM or its LoRA adapters) with MSE (+ ODIN's terms)."""
    import torch
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = math.ceil(len(inputs) / config.batch_size)
    total = max(1, steps_per_epoch * config.epochs)
    warmup = max(1, total // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    device = next(net.parameters()).device
    step = 0
    for _ in range(config.epochs):
        order = rng.permutation(len(inputs))
        for start in range(0, len(order), config.batch_size):
            rows = order[start:start + config.batch_size]
            if len(rows) < 2:
                continue  # a correlation (ODIN) or a useful gradient needs two rows
            extra = z[rows] if config.method == "confounder_layer" else None
            out = _lm_forward(net, tokenizer, [inputs[i] for i in rows], extra, config.max_length)
            y_t = torch.as_tensor(y_std[rows], dtype=torch.float32, device=device)
            if config.method == "odin":
                z_t = torch.as_tensor(z[rows], dtype=torch.float32, device=device)
                loss, parts = _odin_loss(out[:, 0], out[:, 1], y_t, z_t, net.head.weight, config, 0.0,
                                         direction)
            else:
                loss, parts = ((out[:, 0] - y_t) ** 2).mean(), {}
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            if progress and (step % 10 == 0 or step == total):
                progress(stage, step, total, {"loss": loss.item(), "lr": lr, **parts})
    net.eval()


def _predict_lm(net, tokenizer, inputs: list[str], z: np.ndarray | None, config: RewardConfig) -> np.ndarray:
    """Head outputs (n, 1 or 2) in standardised-target units."""
    import torch
    out = []
    net.eval()
    with torch.inference_mode():
        for start in range(0, len(inputs), config.batch_size):
            extra = None if z is None else z[start:start + config.batch_size]
            out.append(_lm_forward(net, tokenizer, inputs[start:start + config.batch_size], extra,
                                   config.max_length).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2 if config.method == "odin" else 1))


# ------------------------------------------------------------------ the model
class RewardModel:
    """A trained reward model: `score` predicts its target for texts, `reward_func` serves RL."""

    def __init__(self, config: RewardConfig, columns: RewardColumns, state: dict, metrics: dict | None = None):
        self.config, self.columns, self.state = config, columns, state
        self.metrics: dict = metrics or {}
        self.out_dir: Path | None = None
        self._features = None      # frozen backbones: the encoder
        self._ridge = None         # frozen heads (sklearn Ridge)
        self._odin = None          # frozen ODIN head: (weight (2, d), bias (2,))
        self._net = None           # finetune: LMRegressor
        self._tokenizer = None

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

    def _inputs(self, texts, contexts, confounder) -> list[str]:
        if self.config.include_context and contexts is None:
            raise DeconfoundError(f"the {self.config.method} reward was trained with the context in its input: "
                                  f"pass the contexts (column '{self.columns.context}')")
        return reward_inputs(texts, contexts if self.config.include_context else None,
                             confounder if self.config.method == "confounder_text" else None,
                             confounder_name=self.columns.confounder or "confounder")

    def _standardised_confounder(self, confounder) -> np.ndarray:
        values = np.asarray(confounder, dtype=np.float64)
        values = np.where(np.isfinite(values), values, self.state["confounder_mean"])
        return (values - self.state["confounder_mean"]) / self.state["confounder_sd"]

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
        texts = [_clean(t) for t in texts]
        contexts = None if contexts is None else [_clean(c) for c in contexts]  # positional, whatever the index
        if contexts is not None and len(contexts) != len(texts):
            raise DeconfoundError(f"got {len(contexts)} contexts for {len(texts)} texts")
        confounder = self._check_confounder(len(texts), confounder)
        if self.config.backbone == "finetune":
            raw = self._score_lm(texts, contexts, confounder)
        else:
            raw = np.concatenate([self._score_frozen(texts[s:s + _SCORE_CHUNK],
                                                     None if contexts is None else contexts[s:s + _SCORE_CHUNK],
                                                     None if confounder is None else confounder[s:s + _SCORE_CHUNK])
                                  for s in range(0, len(texts), _SCORE_CHUNK)]) if texts else np.zeros(0)
        if standardize:
            return (raw - self.state["score_mean"]) / self.state["score_sd"]
        return raw

    def _score_frozen(self, texts, contexts, confounder) -> np.ndarray:
        X = self._features.transform(self._inputs(texts, contexts, confounder))
        if self.config.method == "confounder_layer":
            X = _with_confounder(X, self._standardised_confounder(confounder))
        if self._odin is not None:
            weight, bias = self._odin
            q = np.asarray(X @ weight[0]).reshape(-1) + bias[0]
            return q * self.state["target_sd"] + self.state["target_mean"]
        return self._ridge.predict(X)

    def _score_lm(self, texts, contexts, confounder) -> np.ndarray:
        z = None if self.config.method != "confounder_layer" else self._standardised_confounder(confounder)
        out = _predict_lm(self._net, self._tokenizer, self._inputs(texts, contexts, confounder), z, self.config)
        return out[:, 0] * self.state["target_sd"] + self.state["target_mean"]

    def reward_func(self) -> "RewardFunction":
        """A trl reward callable `f(completions, prompts=None, **columns) -> list[float]` (GRPO/RLOO)."""
        return RewardFunction(self)

    # -------------------------------------------------------------- persistence
    def save(self, out_dir: str | Path) -> Path:
        """Write config.json, metrics.json and the weights into out_dir."""
        import joblib
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        payload = {"format_version": FORMAT_VERSION, "config": self.config.to_dict(),
                   "columns": self.columns.to_dict(), "state": self.state}
        (out / "config.json").write_text(json.dumps(payload, indent=2))
        if self._features is not None:
            self._features.save(out)
        if self._ridge is not None:
            joblib.dump(self._ridge, out / "head.joblib")
        if self._odin is not None:
            import torch
            weight, bias = self._odin
            torch.save({"weight": torch.as_tensor(weight), "bias": torch.as_tensor(bias)}, out / "head.pt")
        if self._net is not None:
            import torch
            if self.config.lora:
                self._net.backbone.save_pretrained(out / "adapter")
            else:
                self._net.backbone.save_pretrained(out / "backbone")
            self._tokenizer.save_pretrained(out / "tokenizer")
            torch.save(self._net.head.state_dict(), out / "head.pt")
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
        model = cls(RewardConfig.from_dict(payload["config"]), RewardColumns.from_dict(payload["columns"]),
                    payload["state"], metrics)
        config = model.config
        if config.backbone == "finetune":
            model._load_lm(out)
        else:
            model._features = _FEATURE_CLASSES[config.backbone].load(out, config)
            if config.method == "odin":
                import torch
                head = torch.load(out / "head.pt", map_location="cpu")
                model._odin = (head["weight"].numpy(), head["bias"].numpy())
            else:
                import joblib
                model._ridge = joblib.load(out / "head.joblib")
        model.out_dir = out
        return model

    def _load_lm(self, out: Path) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        config = self.config
        if config.lora:
            from peft import PeftModel
            backbone, _ = _load_backbone(config.model_path)
            backbone = PeftModel.from_pretrained(backbone, out / "adapter")
        else:
            backbone = AutoModel.from_pretrained(out / "backbone")
        self._tokenizer = AutoTokenizer.from_pretrained(out / "tokenizer")
        _ensure_pad_token(self._tokenizer)
        net = _lm_regressor_class()(backbone, 2 if config.method == "odin" else 1,
                                    1 if config.method == "confounder_layer" else 0)
        net.head.load_state_dict(torch.load(out / "head.pt", map_location="cpu"))
        self._net = net.to(_device()).eval()

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


# ------------------------------------------------------------------ training
def train_reward(config: RewardConfig, train: pd.DataFrame, valid: pd.DataFrame, columns: RewardColumns,
                 out_dir: str | Path, progress=None, features: FeatureCache | None = None) -> RewardModel:
    """Train one reward model on `train`, pick λ (or lr) on `valid`, save it with metrics.json in out_dir.

    `features` shares a frozen encoder between several calls (see `train_all`)."""
    started = time.perf_counter()
    stage = f"rewards/{config.method}"
    if config.backbone in ("generator", "finetune") and not config.model_path:
        raise DeconfoundError(f"the {config.backbone!r} reward backbone needs model_path (a language-model folder); "
                              "or use the minilm or tfidf backbone")
    train, valid = _drop_missing(config, train, columns), _drop_missing(config, valid, columns)
    if len(train) < 10:
        raise DeconfoundError(f"the {config.method} reward has {len(train)} usable training rows; it needs at least 10")
    state: dict = {}
    if config.method == "oracle_noise":
        state["noise_sd"] = _noise_sd(config, _require(train, columns.truth, "oracle_noise needs the truth column"))
    y_train = training_target(config, train, columns, state.get("noise_sd"))
    y_valid = training_target(replace(config, seed=config.seed + 1), valid, columns, state.get("noise_sd"))
    state["target_mean"] = float(np.mean(y_train))
    state["target_sd"] = float(np.std(y_train)) or 1.0
    conf_train = conf_valid = None
    if REWARD_METHODS[config.method].fits_confounder:
        conf_train = _require(train, columns.confounder, f"the {config.method} reward needs a confounder column")
        conf_valid = _require(valid, columns.confounder, f"the {config.method} reward needs a confounder column")
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
    if config.backbone == "finetune":
        knobs = _train_lm(model, train, valid, y_train, y_valid, conf_train, conf_valid, progress, stage)
    else:
        features = features or FeatureCache.for_config(config)
        knobs = _train_frozen(model, features, train, valid, y_train, y_valid, conf_train, conf_valid,
                              progress, stage)
    train_scores = model.score(*_score_args(model, train))
    state["score_mean"] = float(np.mean(train_scores))
    state["score_sd"] = float(np.std(train_scores)) or 1.0
    model.metrics = {"method": config.method, "backbone": config.backbone, "n_train": len(train),
                     "n_valid": len(valid), "target": _target_name(config, columns),
                     "train": evaluate_reward(model, train, y_train, scores=train_scores, text_only=False),
                     "valid": evaluate_reward(model, valid, y_valid) if len(valid) else {},
                     "lambda": knobs.get("lambda"), "lr": knobs.get("lr"), "selection": knobs.get("curve"),
                     "noise_sd": state.get("noise_sd"), "seconds": round(time.perf_counter() - started, 3)}
    model.save(out_dir)
    if progress:
        progress(stage, 1, 1, {"valid_pearson_truth": model.metrics["valid"].get("pearson_truth")})
    return model


def _train_frozen(model: RewardModel, features: FeatureCache, train, valid, y_train, y_valid,
                  conf_train, conf_valid, progress, stage) -> dict:
    config = model.config
    inputs_train = model._inputs(*_text_args(model, train, conf_train))
    inputs_valid = model._inputs(*_text_args(model, valid, conf_valid))
    model._features = features.featurizer(model.input_format, inputs_train)
    X_train, X_valid = model._features.transform(inputs_train), model._features.transform(inputs_valid)
    if config.method == "confounder_layer":
        X_train = _with_confounder(X_train, model._standardised_confounder(conf_train))
        X_valid = _with_confounder(X_valid, model._standardised_confounder(conf_valid))
    grid = [config.l2] if config.l2 is not None else list(config.l2_grid)
    if len(grid) > 1 and not len(y_valid):
        raise DeconfoundError("choosing the ridge λ needs validation rows (split rm_valid): add them or set l2")
    lam, ridge, curve = _fit_ridge(X_train, y_train, X_valid, y_valid, grid)
    if config.method != "odin":
        model._ridge = ridge
        return {"lambda": lam, "curve": curve}
    # ODIN uses the λ that the plain-outcome ridge chose on these features, so it is regularised like naive.
    y_std = (y_train - model.state["target_mean"]) / model.state["target_sd"]
    model._odin = _fit_odin_frozen(X_train, y_std, model._standardised_confounder(conf_train), lam,
                                   model.state["odin_direction"], config, progress, stage)
    return {"lambda": lam, "curve": curve}


def _train_lm(model: RewardModel, train, valid, y_train, y_valid, conf_train, conf_valid, progress, stage) -> dict:
    config = model.config
    inputs_train = model._inputs(*_text_args(model, train, conf_train))
    inputs_valid = model._inputs(*_text_args(model, valid, conf_valid))
    y_std = (y_train - model.state["target_mean"]) / model.state["target_sd"]
    z_train = None if conf_train is None else model._standardised_confounder(conf_train)
    z_valid = None if conf_valid is None else model._standardised_confounder(conf_valid)
    best, curve = None, {}
    for lr in config.lr_grid or (config.lr,):
        net, tokenizer = _build_lm_regressor(config)
        _fit_lm(net, tokenizer, inputs_train, y_std, z_train, lr, config, progress, stage,
                model.state.get("odin_direction", 1.0))
        if len(valid):
            predicted = _predict_lm(net, tokenizer, inputs_valid,
                                    z_valid if config.method == "confounder_layer" else None, config)
            fitted = predicted.sum(1) if config.method == "odin" else predicted[:, 0]
            mse = float(np.mean((fitted * model.state["target_sd"] + model.state["target_mean"] - y_valid) ** 2))
        else:
            mse = 0.0
        curve[lr] = mse
        if best is None or mse < best[0]:
            best = (mse, lr, net, tokenizer)
    _, lr, model._net, model._tokenizer = best
    return {"lr": lr, "curve": curve if len(curve) > 1 else None}


def _drop_missing(config: RewardConfig, frame: pd.DataFrame, columns: RewardColumns) -> pd.DataFrame:
    """Rows with a text and a finite target (and confounder, where the method uses it)."""
    keep = frame[columns.text].notna().to_numpy()
    needed = {"oracle": columns.truth, "oracle_noise": columns.truth,
              "deconfounded": columns.corrected}.get(config.method, columns.outcome)
    for column in [needed] + ([columns.confounder] if REWARD_METHODS[config.method].fits_confounder else []):
        if column and column in frame.columns:
            keep = keep & np.isfinite(pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float))
    return frame.loc[keep].reset_index(drop=True)


def _target_name(config: RewardConfig, columns: RewardColumns) -> str | None:
    return {"oracle": columns.truth, "oracle_noise": f"{columns.truth} + noise",
            "deconfounded": columns.corrected}.get(config.method, columns.outcome)


def _text_args(model: RewardModel, frame: pd.DataFrame, confounder):
    contexts = None
    if model.config.include_context:
        if not model.columns.context or model.columns.context not in frame.columns:
            raise DeconfoundError("include_context is on but no context column is set or present")
        contexts = frame[model.columns.context].tolist()
    return frame[model.columns.text].tolist(), contexts, confounder


def _score_args(model: RewardModel, frame: pd.DataFrame):
    confounder = None
    if model.needs_confounder:
        confounder = pd.to_numeric(frame[model.columns.confounder], errors="coerce").to_numpy(dtype=float)
    return _text_args(model, frame, confounder)


# ------------------------------------------------------------------ metrics
def pearson(a, b) -> float | None:
    """Pearson correlation over rows where both are finite; None when undefined (constant or < 3 rows)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return None
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def r_squared(actual, predicted) -> float | None:
    """1 − SSE/SST over finite rows; None when undefined."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    ok = np.isfinite(actual) & np.isfinite(predicted)
    if ok.sum() < 3 or np.var(actual[ok]) == 0:
        return None
    return float(1.0 - np.sum((actual[ok] - predicted[ok]) ** 2) / np.sum((actual[ok] - actual[ok].mean()) ** 2))


def evaluate_reward(model: RewardModel, frame: pd.DataFrame, target: np.ndarray | None = None,
                    scores: np.ndarray | None = None, text_only: bool = True) -> dict:
    """Table 2's numbers for one split: Pearson of the reward with the truth, R² against the raw outcome
    and against the method's own target, the reward's correlation with the confounder, and (for methods
    that read the confounder) the truth correlation with the confounder held at its training mean — the
    part of the reward that RL can move by changing the text; `text_only=False` skips that second scoring
    pass)."""
    columns = model.columns
    if scores is None:
        scores = model.score(*_score_args(model, frame))
    out = {"pearson_truth": None, "r2_outcome": None, "r2_target": None}
    if columns.truth and columns.truth in frame.columns:
        out["pearson_truth"] = pearson(scores, pd.to_numeric(frame[columns.truth], errors="coerce"))
    if columns.outcome in frame.columns:
        out["r2_outcome"] = r_squared(pd.to_numeric(frame[columns.outcome], errors="coerce"), scores)
    if target is not None:
        out["r2_target"] = r_squared(target, scores)
    if columns.confounder and columns.confounder in frame.columns:
        out["pearson_confounder"] = pearson(scores, pd.to_numeric(frame[columns.confounder], errors="coerce"))
    if text_only and model.needs_confounder and columns.truth and columns.truth in frame.columns:
        texts, contexts, _ = _text_args(model, frame, None)
        held = model.score(texts, contexts, np.full(len(frame), model.state["confounder_mean"]))
        out["pearson_truth_text_only"] = pearson(held, pd.to_numeric(frame[columns.truth], errors="coerce"))
    return out


# ------------------------------------------------------------------ several methods at once
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


def reward_table(results: Mapping[str, RewardModel | dict] | Iterable[RewardModel | dict]) -> pd.DataFrame:
    """Table 2: one row per method with the Pearson correlation of its reward with the truth on the train
    and validation splits (plus the valid R² on the outcome, λ/lr and seconds). Accepts reward models or
    their metrics dicts (metrics.json)."""
    items = results.values() if isinstance(results, Mapping) else results
    rows = []
    for item in items:
        metrics = item.metrics if isinstance(item, RewardModel) else dict(item)
        train, valid = metrics.get("train") or {}, metrics.get("valid") or {}
        rows.append({"method": metrics.get("method"), "backbone": metrics.get("backbone"),
                     "train_pearson_truth": train.get("pearson_truth"),
                     "valid_pearson_truth": valid.get("pearson_truth"),
                     "valid_pearson_truth_text_only": valid.get("pearson_truth_text_only"),
                     "valid_r2_outcome": valid.get("r2_outcome"),
                     "lambda": metrics.get("lambda"), "lr": metrics.get("lr"), "seconds": metrics.get("seconds")})
    order = {m: i for i, m in enumerate(METHODS)}
    table = pd.DataFrame(rows, columns=["method", "backbone", "train_pearson_truth", "valid_pearson_truth",
                                        "valid_pearson_truth_text_only", "valid_r2_outcome", "lambda", "lr",
                                        "seconds"])
    return table.sort_values("method", key=lambda s: s.map(order).fillna(len(order)),
                             kind="stable").reset_index(drop=True)


def _fmt(value) -> str:
    return "  n/a" if value is None else f"{value:+.3f}"
