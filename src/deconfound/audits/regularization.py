"""The regularisation audit (§3.2, Fig. 4–5): how the L2 strength λ of an observational reward head moves its
training and validation error, its ranking of held-out A/B pairs (when the table has A/B tests) and its temporal
leakage (Fig. 4d: the correlation, across months, of the head's mean prediction on the validation rows with the
training rows' mean outcome), which λ validation picks, which the held-out pairs would pick, and which a rule
that needs no experiment picks.

The rule (`rule_pick`, fixed before it was run on any table): take the validation-optimal λ_v and the standard
error SE of its validation MSE (sd of the squared errors / √n); the admissible λ are those ≥ λ_v whose
validation MSE is within one SE of the best (the one-standard-error rule); among them pick the **strongest whose
temporal leakage |r| is below the diagnostics' threshold (0.5)**; if none is below it, the strongest admissible
λ (and say the leakage stayed). Stronger regularisation is preferred while the data cannot tell the fits apart,
and a head whose predictions still follow the monthly outcome is passed over, because it has learned the
calendar, not the text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..data import Roles, Store
from ..errors import DeconfoundError
from ..jsonio import jsonable
from .ab import ABAuditConfig, ABPrepared, counts_of, prepare_ab
from .ab_data import ab_roles_problem
from .heads import check_grid, rank_pairs, ridge_path, text_features

LEAKAGE_THRESHOLD = 0.5  # the diagnostics' default (causal.DiagnosticsConfig.leakage_corr)


@dataclass
class LambdaAuditResult:
    """The λ sweep and the three picks; `to_dict()` is `deconfound audit lambda --json`."""

    table: str
    curve: pd.DataFrame  # lambda, train_mse, valid_mse, valid_se, leakage, test_auc (A/B tables)
    picks: dict          # "validation", "rule", and "test" (A/B tables): λ
    rule_reason: str
    has_pairs: bool
    counts: dict
    config: dict
    threshold: float = LEAKAGE_THRESHOLD
    notes: list[str] = field(default_factory=list)

    def at(self, lam: float, column: str) -> float:
        """A column of the curve at one λ."""
        row = self.curve.loc[np.isclose(self.curve["lambda"], lam)]
        return float(row[column].iloc[0]) if len(row) else math.nan

    def verdict(self) -> str:
        """The answer in plain words."""
        v, r = self.picks["validation"], self.picks["rule"]
        same = np.isclose(v, r)
        text = (f"Validation error alone picks λ = {v:g}; the rule that needs no experiment picks "
                f"{'the same λ' if same else f'λ = {r:g}'} ({self.rule_reason}).")
        if self.has_pairs:
            t = self.picks["test"]
            auc_v, auc_r, auc_t = self.at(v, "test_auc"), self.at(r, "test_auc"), self.at(t, "test_auc")
            if same:
                text += f" On the held-out A/B pairs both reach AUC {auc_v:.3f}"
            elif auc_r > auc_v:
                text += f" On the held-out A/B pairs the rule's pick does better: AUC {auc_r:.3f} against {auc_v:.3f}"
            elif auc_r < auc_v:
                text += (f" On the held-out A/B pairs the rule's pick does worse: AUC {auc_r:.3f} against "
                         f"{auc_v:.3f}")
            else:
                text += f" On the held-out A/B pairs both picks reach AUC {auc_r:.3f}"
            text += f"; the best λ for those pairs would be {t:g} (AUC {auc_t:.3f})."
        return text

    def summary(self) -> str:
        """The verdict and the curve as a table."""
        curve = self.curve.copy()
        lines = [self.verdict(), "", curve.to_string(index=False, float_format=lambda x: f"{x:.4g}")]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict: verdict, picks (λ), auc_at_picks (A/B tables), curve records, counts, config, notes."""
        auc = {k: self.at(v, "test_auc") for k, v in self.picks.items()} if self.has_pairs else None
        return jsonable({"kind": "lambda_audit", "table": self.table, "verdict": self.verdict(), "picks": self.picks,
                         "auc_at_picks": auc, "rule": {"reason": self.rule_reason, "leakage_threshold": self.threshold},
                         "curve": self.curve.to_dict(orient="records"), "counts": self.counts, "config": self.config,
                         "notes": self.notes})


def monthly_leakage(pred: np.ndarray, valid_time: pd.Series, train_y: np.ndarray, train_time: pd.Series) -> float:
    """Pearson r across calendar months of the mean validation prediction and the mean training outcome (months
    present in both; NaN with fewer than 3 months or no variation)."""
    def monthly(values, times) -> pd.Series:
        return pd.Series(np.asarray(values, dtype=float)).groupby(
            pd.to_datetime(pd.Series(times)).dt.to_period("M").to_numpy()).mean()
    v, t = monthly(pred, valid_time), monthly(train_y, train_time)
    both = pd.concat([v.rename("p"), t.rename("y")], axis=1).dropna()
    if len(both) < 3 or both["p"].std() == 0 or both["y"].std() == 0:
        return math.nan
    return float(np.corrcoef(both["p"], both["y"])[0, 1])


def rule_pick(curve: pd.DataFrame, threshold: float = LEAKAGE_THRESHOLD) -> tuple[float, str]:
    """The λ the rule picks from a curve with lambda, valid_mse, valid_se and leakage (see the module docstring),
    and why, in words."""
    curve = curve.sort_values("lambda").reset_index(drop=True)
    best = int(curve["valid_mse"].idxmin())
    bound = curve.loc[best, "valid_mse"] + curve.loc[best, "valid_se"]
    admissible = curve[(curve.index >= best) & (curve["valid_mse"] <= bound)]
    if curve["leakage"].isna().all():
        lam = float(admissible["lambda"].max())
        return lam, "the strongest λ within one standard error of the best validation error; no monthly leakage " \
                    "could be measured (no timestamp, or fewer than 3 months)"
    clean = admissible[admissible["leakage"].abs() < threshold]
    if len(clean):
        return float(clean["lambda"].max()), (f"the strongest λ within one standard error of the best validation "
                                               f"error whose monthly leakage is below {threshold:g}")
    lam = float(admissible["lambda"].max())
    leak = curve.loc[curve["lambda"] == lam, "leakage"].iloc[0]
    return lam, (f"the strongest λ within one standard error of the best validation error; none of those kept the "
                 f"monthly leakage below {threshold:g} (it is {leak:+.2f} there)")


def _observational_rows(store: Store, table: str, roles: Roles, config: ABAuditConfig) -> tuple[pd.DataFrame, dict]:
    """A plain log (no A/B columns): text, outcome, time; split 80/20 into train/valid with no text in both."""
    if not roles.text or not roles.outcome:
        raise DeconfoundError(f"'{table}' needs a text and an outcome column tagged on Roles for the λ audit")
    columns = [roles.text, roles.outcome] + ([roles.timestamp] if roles.timestamp else [])
    raw = store.read_frame(table, columns)
    frame = pd.DataFrame({"text": raw[roles.text].astype("string"),
                          "outcome": pd.to_numeric(raw[roles.outcome], errors="coerce")})
    if roles.timestamp:
        frame["time"] = raw[roles.timestamp]
    frame = frame.dropna(subset=["text", "outcome"]).reset_index(drop=True)
    if config.max_tests and len(frame) > config.max_tests:
        frame = frame.sample(n=config.max_tests, random_state=config.seed).reset_index(drop=True)
    texts = frame["text"].unique()
    if len(texts) < 10:
        raise DeconfoundError(f"'{table}' has only {len(texts)} distinct texts: the λ audit needs at least 10")
    valid_texts = set(np.random.default_rng(config.seed).permutation(texts)[: max(1, len(texts) // 5)])
    frame["split"] = np.where(frame["text"].isin(valid_texts), "valid", "train")
    return frame, {"rows": len(frame), "train_rows": int((frame["split"] == "train").sum()),
                   "valid_rows": int((frame["split"] == "valid").sum())}


def lambda_audit(store: Store, table: str, config: ABAuditConfig | None = None, roles: Roles | None = None,
                 progress=None, prepared: ABPrepared | None = None,
                 threshold: float = LEAKAGE_THRESHOLD) -> LambdaAuditResult:
    """Sweep λ for the observational head (ridge on frozen text features) and report the picks. A/B tables
    (experiment and arm tagged) use the A/B audit's observational subset and judge every λ on its held-out pairs;
    other tables split their rows 80/20."""
    config = config or ABAuditConfig()
    grid = check_grid(config.grid)
    roles = roles if roles is not None else store.require_roles(table)
    has_pairs = ab_roles_problem(roles) is None
    notes: list[str] = []
    if has_pairs:
        prep = prepared or prepare_ab(store, table, config, roles, progress)
        obs = prep.observational
        x = prep.features[prep.obs_rows]
        notes += prep.notes
        counts = counts_of(prep)
    else:
        obs, counts = _observational_rows(store, table, roles, config)
        train_texts = obs.loc[obs["split"] == "train", "text"].unique().tolist()
        x = text_features(obs["text"].tolist(), config.embeddings, fit_on=train_texts, progress=progress)
        notes.append("no experiment and arm columns tagged: no held-out A/B pairs, so the picks cannot be judged "
                     "against experiments here")
    tr, va = obs["split"].to_numpy() == "train", obs["split"].to_numpy() == "valid"
    y = obs["outcome"].to_numpy(dtype=float)
    if tr.sum() < 2 or va.sum() < 2:
        raise DeconfoundError("too few rows to fit and validate the head for the λ audit")
    mean, sd = float(y[tr].mean()), float(y[tr].std() or 1.0)
    models = ridge_path(x[tr], (y[tr] - mean) / sd, grid)
    has_time = "time" in obs and obs["time"].notna().any()
    if not has_time:
        notes.append("no timestamp tagged: the temporal leakage cannot be measured")
    rows = []
    for lam, model in zip(grid, models):
        pred_tr, pred_va = model.predict(x[tr]) * sd + mean, model.predict(x[va]) * sd + mean
        sq = (pred_va - y[va]) ** 2
        row = {"lambda": lam, "train_mse": float(np.mean((pred_tr - y[tr]) ** 2)), "valid_mse": float(sq.mean()),
               "valid_se": float(sq.std(ddof=1) / math.sqrt(len(sq))),
               "leakage": monthly_leakage(pred_va, obs.loc[va, "time"], y[tr], obs.loc[tr, "time"]) if has_time
               else math.nan}
        if has_pairs:
            test = prep.pairs_of("test")
            row["test_auc"] = rank_pairs(model.predict(prep.features), test["a"].to_numpy(), test["b"].to_numpy(),
                                         test["winner"].to_numpy()).auc
        rows.append(row)
    curve = pd.DataFrame(rows)
    lam_rule, reason = rule_pick(curve, threshold)
    picks = {"validation": float(curve.loc[curve["valid_mse"].idxmin(), "lambda"]), "rule": lam_rule}
    if has_pairs:
        picks["test"] = float(curve.loc[curve["test_auc"].idxmax(), "lambda"])
    return LambdaAuditResult(table=table, curve=curve, picks=picks, rule_reason=reason, has_pairs=has_pairs,
                             counts=counts, config=config.to_dict(), threshold=threshold, notes=notes)
