"""The reward methods of the paper's Tables 1–2, each defined once: what it regresses on, how the
confounder enters, and what a table must have for it to run. The pipeline, the reward models, the
evaluation, the pages and the CLI all read this registry (no torch, no heavy imports).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DeconfoundError


@dataclass(frozen=True)
class RewardMethod:
    """One reward method."""

    name: str            # CLI --methods, folder names, rl_<name> model names
    label: str           # how tables and charts name it
    meaning: str         # one line for a user choosing methods
    target: str          # what the reward regresses on: "truth", "truth + noise", "outcome", "corrected outcome"
    confounder: str      # how the confounder enters: "ignored", "written into the input", "joined to the
                         # representation", "fitted by a second head", "subtracted from the outcome"
    needs_truth: bool = False        # only tables with a ground-truth column (simulations)
    needs_confounder: bool = False   # the table must have a confounder tagged
    needs_corrected: bool = False    # trains on the deconfounded outcome y − ĥ(C)
    fits_confounder: bool = False    # reads the confounder column while training
    scores_confounder: bool = False  # needs the confounder's value to score a text


REWARD_METHODS: dict[str, RewardMethod] = {m.name: m for m in (
    RewardMethod("oracle", "true quality (oracle)",
                 "rewards the true quality (only simulations have it): the best any method could do",
                 target="truth", confounder="ignored", needs_truth=True),
    RewardMethod("oracle_noise", "true quality + noise",
                 "the true quality plus noise: a realistic upper bound",
                 target="truth + noise", confounder="ignored", needs_truth=True),
    RewardMethod("naive", "observed outcome (naive)",
                 "rewards the raw outcome, confounders and all (what most teams would do)",
                 target="outcome", confounder="ignored"),
    RewardMethod("confounder_text", "confounder in the prompt",
                 "writes the confounder's value into the reward model's input",
                 target="outcome", confounder="written into the input", needs_confounder=True,
                 fits_confounder=True, scores_confounder=True),
    RewardMethod("confounder_layer", "confounder in the last layer",
                 "feeds the confounder as a number next to the text's representation",
                 target="outcome", confounder="joined to the representation", needs_confounder=True,
                 fits_confounder=True, scores_confounder=True),
    RewardMethod("odin", "ODIN (two heads)",
                 "ODIN: a second head soaks up the confounder, RL uses the quality head",
                 target="outcome", confounder="fitted by a second head", needs_confounder=True,
                 fits_confounder=True),
    RewardMethod("deconfounded", "deconfounded (DeconfoundLM)",
                 "DeconfoundLM: rewards the outcome after removing the estimated confounder effect",
                 target="corrected outcome", confounder="subtracted from the outcome", needs_confounder=True,
                 needs_corrected=True),
)}
METHODS = tuple(REWARD_METHODS)  # the paper's order (Table 1 rows)
METHOD_LABELS = {name: m.label for name, m in REWARD_METHODS.items()}


def reward_method(name: str) -> RewardMethod:
    """The registered method of this name, or a clear error listing the known ones."""
    try:
        return REWARD_METHODS[name]
    except KeyError:
        raise DeconfoundError(f"unknown reward method {name!r}: use one of {', '.join(METHODS)}") from None


def parse_methods(methods) -> list[str]:
    """A comma string or list of method names, checked against the registry (duplicates dropped)."""
    items = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else [str(m).strip() for m in methods]
    items = [m for m in dict.fromkeys(items) if m]
    unknown = [m for m in items if m not in REWARD_METHODS]
    if unknown:
        raise DeconfoundError(f"unknown method(s) {', '.join(unknown)}: choose from {', '.join(METHODS)}")
    if not items:
        raise DeconfoundError(f"choose at least one method ({', '.join(METHODS)})")
    return items


def missing_requirement(method: str, roles) -> str | None:
    """Why `method` cannot run on a table with these `Roles` (None when it can)."""
    spec = reward_method(method)
    if spec.needs_truth and not roles.truth:
        return "no ground-truth column is tagged"
    if spec.needs_confounder and not roles.confounders:
        return "no confounder is tagged"
    return None


def usable_methods(roles, methods=METHODS) -> list[str]:
    """The methods (of `methods`, in their order) a table with these roles can train."""
    return [m for m in methods if missing_requirement(m, roles) is None]
