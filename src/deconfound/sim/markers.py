"""What the simulation knows about its own texts: the team names a generation can mention (the demo's
marker groups) and neutral sports headlines to probe a reward with. The general evaluation asks here,
through `evaluate.defaults`, only for runs whose data is the simulation's.
"""

from __future__ import annotations

from .simulate import TEAM_NAMES_BY_REGION

# A column only the simulation writes: data that has it is the team simulation.
SIGNATURE_COLUMN = "team_region"
# Neutral headlines a team name is filled into: the reward's preference between regions on otherwise equal text.
PROBE_TEMPLATES = ("{name} Win Again", "{name} Sign New Coach", "{name} Lose at Home", "Injury Update for {name}")


def is_simulation_data(columns) -> bool:
    """Whether a table with these column names is the team simulation (it carries `team_region`)."""
    return SIGNATURE_COLUMN in set(columns)


def team_marker_groups() -> dict[str, list[str]]:
    """The demo's marker groups: every team's full name and nickname, per region (West/Central/East)."""
    return {region: list(names) for region, names in TEAM_NAMES_BY_REGION.items()}
