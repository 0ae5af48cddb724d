"""The fine-tuned LM head (`LMRegressorHead`): a regression head on the last-token state of the LM, trained end to
end (or with LoRA) for one epoch with MSE, plus ODIN's terms for `odin` (the paper's MIND set-up, App. D; `lr` is
a setting and `lr_grid` a validation grid search). Same interface as the frozen heads in `heads`, reading input
strings instead of a feature matrix. Saved as backbone/ (or adapter/ with LoRA), tokenizer/ and head.pt.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import DeconfoundError
from .config import RewardConfig
from .features import ensure_pad_token, last_token
from .heads import odin_loss


class LMRegressorHead:
    """A linear head (1 output, 2 for ODIN) on a fine-tuned LM; the reward is the first output."""

    def __init__(self, config: RewardConfig, state: dict, net=None, tokenizer=None):
        self.config, self.state, self.net, self.tokenizer = config, state, net, tokenizer

    def fit(self, x_train: list[str], y_train, z_train, x_valid: list[str], y_valid, z_valid, progress=None,
            stage: str = "") -> dict:
        """Fine-tune one LM per learning rate of the grid and keep the lowest validation MSE."""
        config, state = self.config, self.state
        y_std = (y_train - state["target_mean"]) / state["target_sd"]
        best, curve = None, {}
        for lr in config.lr_grid or (config.lr,):
            net, tokenizer = _build_lm_regressor(config)
            _fit_lm(net, tokenizer, x_train, y_std, z_train, lr, config, progress, stage,
                    state.get("odin_direction", 1.0))
            if len(x_valid):
                predicted = _predict_lm(net, tokenizer, x_valid,
                                        z_valid if config.method == "confounder_layer" else None, config)
                fitted = predicted.sum(1) if config.method == "odin" else predicted[:, 0]
                mse = float(np.mean((fitted * state["target_sd"] + state["target_mean"] - y_valid) ** 2))
            else:
                mse = 0.0
            curve[lr] = mse
            if best is None or mse < best[0]:
                best = (mse, lr, net, tokenizer)
        _, lr, self.net, self.tokenizer = best
        return {"lr": lr, "curve": curve if len(curve) > 1 else None}

    def predict(self, x: list[str], z=None) -> np.ndarray:
        """The first output in target units (confounder_layer joins z to the LM state)."""
        z = z if self.config.method == "confounder_layer" else None
        out = _predict_lm(self.net, self.tokenizer, x, z, self.config)
        return out[:, 0] * self.state["target_sd"] + self.state["target_mean"]

    def save(self, folder: Path) -> None:
        """backbone/ (adapter/ with LoRA), tokenizer/ and head.pt."""
        import torch
        if self.config.lora:
            self.net.backbone.save_pretrained(folder / "adapter")
        else:
            self.net.backbone.save_pretrained(folder / "backbone")
        self.tokenizer.save_pretrained(folder / "tokenizer")
        torch.save(self.net.head.state_dict(), folder / "head.pt")

    @classmethod
    def load(cls, folder: Path, config: RewardConfig, state: dict) -> "LMRegressorHead":
        """The fine-tuned LM (or the base LM with its adapter), tokenizer and head saved in folder."""
        import torch
        from transformers import AutoModel, AutoTokenizer
        if config.lora:
            from peft import PeftModel
            backbone, _ = _load_backbone(config.model_path)
            backbone = PeftModel.from_pretrained(backbone, folder / "adapter")
        else:
            backbone = AutoModel.from_pretrained(folder / "backbone")
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        ensure_pad_token(tokenizer)
        net = _lm_regressor_class()(backbone, 2 if config.method == "odin" else 1,
                                    1 if config.method == "confounder_layer" else 0)
        net.head.load_state_dict(torch.load(folder / "head.pt", map_location="cpu"))
        return cls(config, state, net.to(_device()).eval(), tokenizer)


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
            pooled = last_token(hidden, attention_mask).float()
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
    ensure_pad_token(tokenizer)
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
                loss, parts = odin_loss(out[:, 0], out[:, 1], y_t, z_t, net.head.weight, config, 0.0,
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
