"""What a run is judged by when the user does not say: the quality scorer, the marker groups counted and the
headlines a reward is probed with. The one place where the general evaluation asks the simulation about its
own data (`sim.is_simulation_data`); everything else in `evaluate` works on any run.

The simulation's truth is VADER sentiment, so its runs are judged by it and count team names. Any other table
has no such truth: its runs are judged by the independent evaluator (an evaluator reward trained on the
deconfounded outcome from held-out rows with a backbone no RL reward saw; `runs.evaluator`), beside fluency, and
count the phrases the marker scan flags as spurious (plus a categorical confounder's levels, a time confounder's
weekday and month names) — all made once per run in RUN_DIR/evaluator/.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DeconfoundError, NotFoundError

SCORER_LABELS = {"sentiment": "sentiment (VADER, 0–1)",
                 "evaluator": "estimated by an independent deconfounded reward model"}
# Neutral sentences a marker is filled into when the run's data is not the simulation's.
GENERIC_PROBE_TEMPLATES = ("{name}", "News about {name}", "{name}: what you need to know", "An update on {name}")


def data_columns(run_dir: str | Path) -> list[str]:
    """Column names of the run's data snapshot (empty when it has none or it cannot be read)."""
    data = Path(run_dir) / "data.parquet"
    if not data.is_file():
        return []
    try:
        import pyarrow.parquet as pq
        return list(pq.read_schema(data).names)
    except Exception:  # an unreadable snapshot: judged like any other data
        return []


def is_simulation_run(run_dir: str | Path) -> bool:
    """Whether the run trained on the built-in team simulation (the demo tables and `deconfound simulate`)."""
    from ..sim import is_simulation_data
    return is_simulation_data(data_columns(run_dir))


def judged_by_evaluator(run_dir: str | Path | None) -> bool:
    """Whether a run is judged by the independent evaluator: it trained on a table of its own (a data snapshot that
    is not the simulation's), whose texts have no truth to score them by."""
    return run_dir is not None and (Path(run_dir) / "data.parquet").is_file() and not is_simulation_run(run_dir)


def default_scorer(run_dir: str | Path | None = None) -> str:
    """The quality measure when none is chosen: 'sentiment' (VADER, the simulation's truth) for the simulation
    (and folders without a data snapshot), 'evaluator' for a run on any other table."""
    return "evaluator" if judged_by_evaluator(run_dir) else "sentiment"


def default_markers(run_dir: str | Path) -> dict[str, list[str]]:
    """Team names per region when the run trained on the team simulation; for any other table the groups the
    run's data suggests (spurious phrases, a categorical confounder's levels, a time confounder's calendar
    names: `runs.default_marker_groups`); none without a data snapshot (the user gives word lists)."""
    if is_simulation_run(run_dir):
        from ..sim import team_marker_groups
        return team_marker_groups()
    if judged_by_evaluator(run_dir) and (Path(run_dir) / "config.json").is_file():
        from ..runs import default_marker_groups
        return default_marker_groups(run_dir)
    return {}


def evaluator_scorer(run_dir: str | Path) -> Callable[[list[str], list[str]], np.ndarray]:
    """The run's independent evaluator as a scorer (built now when the run has none yet: older runs)."""
    from ..runs import EVALUATOR_DIR, build_evaluator
    folder = Path(run_dir) / EVALUATOR_DIR / "reward"
    if not (folder / "config.json").is_file():
        build_evaluator(run_dir)
    from ..rewards import RewardModel  # torch only for MiniLM features
    model = RewardModel.load(folder)
    return lambda texts, contexts: np.asarray(model.score(list(texts)), dtype=float)


def scorer_label(scorer: str, run_dir: str | Path | None = None) -> str:
    """How the quality column is named: the evaluator's label says what it is and its held-out correlation."""
    if scorer == "evaluator" and run_dir is not None:
        from ..runs import evaluator_summary
        summary = evaluator_summary(run_dir)
        if summary and summary.get("label"):
            return summary["label"]
    return SCORER_LABELS.get(scorer, scorer)


def probe_templates(run_dir: str | Path) -> tuple[str, ...]:
    """Neutral texts a marker name is filled into to probe a reward: sports headlines for the simulation,
    plain sentences otherwise."""
    if is_simulation_run(run_dir):
        from ..sim import PROBE_TEMPLATES
        return PROBE_TEMPLATES
    return GENERIC_PROBE_TEMPLATES


def quality_scorer(scorer: str, run_dir: str | Path | None = None) -> Callable[[list[str], list[str]], np.ndarray]:
    """The function f(texts, contexts) -> scores for a scorer name ('sentiment', 'evaluator' or
    'reward:<method>')."""
    if scorer == "evaluator":
        if run_dir is None:
            raise DeconfoundError("the evaluator belongs to a run: give the run folder")
        return evaluator_scorer(run_dir)
    if scorer == "sentiment":
        from ..sim import quality_scores
        return lambda texts, contexts: quality_scores(texts)
    if scorer.startswith("reward:"):
        method = scorer.split(":", 1)[1]
        folder = Path(run_dir or ".") / "rewards" / method
        if not folder.is_dir():
            raise NotFoundError(f"the run has no '{method}' reward model ({folder} is missing): choose one of "
                                f"{', '.join(p.name for p in folder.parent.glob('*')) or 'none'} or 'sentiment'")
        from ..rewards import RewardModel  # torch: only when a reward model is the scorer
        model = RewardModel.load(folder)

        def score(texts, contexts):
            # Rewards that read the confounder score generated text at its training mean: only the text varies.
            confounder = np.full(len(texts), model.state["confounder_mean"]) if model.needs_confounder else None
            return np.asarray(model.score(list(texts), list(contexts), confounder), dtype=float)
        return score
    raise DeconfoundError(f"unknown scorer {scorer!r}: use 'evaluator', 'sentiment' or 'reward:<method>'")


def marker_phrase(group: str, groups: dict) -> str:
    """How a marker group reads in a sentence: 'East teams' for the simulation's team regions, else
    "'Happy' markers"."""
    from ..sim import team_marker_groups
    return f"{group} teams" if groups == team_marker_groups() else f"'{group}' markers"
