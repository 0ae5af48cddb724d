"""Heads on frozen features: ridge (`RidgeHead`) and ODIN's two linear heads (`OdinHead`), plus ODIN's loss,
which the fine-tuned LM head (`lm_head`) shares.

Every head has one interface: `fit(x_train, y_train, z_train, x_valid, y_valid, z_valid, progress, stage)`
returns the knobs it chose ({"lambda" or "lr", "curve"}), `predict(x, z)` gives the reward score in target
units, `save(folder)` / `load(folder, config, state)` persist it. `x` is what the head reads (a feature matrix
here, input strings for the LM head), `z` the standardised confounder (None where the method has none); `state`
is the reward model's standardisation (target mean/sd, ODIN's direction), saved in its config.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DeconfoundError
from .config import RewardConfig


class RidgeHead:
    """sklearn's Ridge on frozen features (confounder_layer: with the standardised confounder as one more
    column); saved as head.joblib."""

    def __init__(self, config: RewardConfig, state: dict, ridge=None):
        self.config, self.state, self.ridge = config, state, ridge

    def fit(self, x_train, y_train, z_train, x_valid, y_valid, z_valid, progress=None, stage: str = "") -> dict:
        """Fit one ridge per λ of the grid and keep the best on the validation rows."""
        lam, self.ridge, curve = _select_ridge(self._join(x_train, z_train), y_train, self._join(x_valid, z_valid),
                                               y_valid, self.config)
        return {"lambda": lam, "curve": curve}

    def predict(self, x, z=None) -> np.ndarray:
        """The predicted target of each row."""
        return self.ridge.predict(self._join(x, z))

    def _join(self, features, z):
        return _with_confounder(features, z) if self.config.method == "confounder_layer" else features

    def save(self, folder: Path) -> None:
        """head.joblib: the fitted Ridge."""
        import joblib
        joblib.dump(self.ridge, folder / "head.joblib")

    @classmethod
    def load(cls, folder: Path, config: RewardConfig, state: dict) -> "RidgeHead":
        """The Ridge saved in folder."""
        import joblib
        return cls(config, state, joblib.load(folder / "head.joblib"))


class OdinHead:
    """ODIN's quality head q and confounder head c, linear on frozen features, fitted to the standardised
    target; the reward is q only. Saved as head.pt ({"weight": (2, d), "bias": (2,)})."""

    def __init__(self, config: RewardConfig, state: dict, weight: np.ndarray | None = None,
                 bias: np.ndarray | None = None):
        self.config, self.state, self.weight, self.bias = config, state, weight, bias

    def fit(self, x_train, y_train, z_train, x_valid, y_valid, z_valid, progress=None, stage: str = "") -> dict:
        """Fit both heads with ODIN's loss (full batch, L-BFGS)."""
        # ODIN uses the λ that the plain-outcome ridge chose on these features, so it is regularised like naive.
        lam, _, curve = _select_ridge(x_train, y_train, x_valid, y_valid, self.config)
        y_std = (y_train - self.state["target_mean"]) / self.state["target_sd"]
        self.weight, self.bias = _fit_odin_frozen(x_train, y_std, z_train, lam, self.state["odin_direction"],
                                                  self.config, progress, stage)
        return {"lambda": lam, "curve": curve}

    def predict(self, x, z=None) -> np.ndarray:
        """The quality head's output in target units (the confounder is not read)."""
        q = np.asarray(x @ self.weight[0]).reshape(-1) + self.bias[0]
        return q * self.state["target_sd"] + self.state["target_mean"]

    def save(self, folder: Path) -> None:
        """head.pt: both heads' weight and bias."""
        import torch
        torch.save({"weight": torch.as_tensor(self.weight), "bias": torch.as_tensor(self.bias)}, folder / "head.pt")

    @classmethod
    def load(cls, folder: Path, config: RewardConfig, state: dict) -> "OdinHead":
        """The two heads saved in folder."""
        import torch
        head = torch.load(folder / "head.pt", map_location="cpu")
        return cls(config, state, head["weight"].numpy(), head["bias"].numpy())


# ------------------------------------------------------------------ ridge
def _with_confounder(features, z: np.ndarray):
    """[features, z]: the standardised confounder as one more column (sparse-aware)."""
    column = np.asarray(z, dtype=np.float64).reshape(-1, 1)
    if hasattr(features, "tocsr"):
        from scipy import sparse
        return sparse.hstack([features, sparse.csr_matrix(column)], format="csr")
    return np.hstack([features, column])


def _select_ridge(X_train, y_train, X_valid, y_valid, config: RewardConfig):
    """The config's λ, or the best of its grid on the validation rows: (λ, fitted Ridge, MSE per λ)."""
    grid = [config.l2] if config.l2 is not None else list(config.l2_grid)
    if len(grid) > 1 and not len(y_valid):
        raise DeconfoundError("choosing the ridge λ needs validation rows (split rm_valid): add them or set l2")
    return _fit_ridge(X_train, y_train, X_valid, y_valid, grid)


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


# ------------------------------------------------------------------ ODIN
def _corr_torch(a, b):
    a = a - a.mean()
    b = b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm() + 1e-8)


def odin_loss(q, c, y, z, weight, config: RewardConfig, l2_per_row: float, direction: float = 1.0):
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
        loss, parts = odin_loss(out[:, 0], out[:, 1], y_t, z_t, head.weight, config, lam / n, direction)
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
