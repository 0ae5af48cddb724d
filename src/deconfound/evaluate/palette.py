"""The colours of a comparison, defined once: one colour per model and one per marker group, the same in every
chart of the Compare page, the Train page's curves, the marker highlights and the HTML report.

A model's colour follows its reward method (RL and DPO on the same reward share a hue, DPO lighter), so the
'naive' reward, its RL model and its curve look alike everywhere; base and SFT are greys. Marker groups take
colours of their own, in the order the groups are given, from a palette that no model uses.
"""

from __future__ import annotations

from typing import Iterable

from ..rewards import METHODS

# One hue per reward method, in the paper's order (Vega's tableau10, minus the greys the fixed models use).
METHOD_COLORS = {"oracle": "#4c78a8", "oracle_noise": "#72b7b2", "naive": "#e45756", "confounder_text": "#f58518",
                 "confounder_layer": "#b279a2", "odin": "#9d755d", "deconfounded": "#54a24b"}
FIXED_COLORS = {"base": "#9e9e9e", "sft": "#4d4d4d"}
EXTRA_COLORS = ("#17becf", "#bcbd22", "#8c564b", "#e377c2", "#7f7f7f", "#1f77b4")  # models named by hand
# Marker groups: a set no model uses (a group's bars are never mistaken for a model's).
GROUP_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                "#bcbd22", "#7f7f7f")
HIGHLIGHT_ALPHA = "55"  # marker highlights: the group's colour at a third of its strength, text stays legible

def _lighter(hex_color: str, share: float = 0.45) -> str:
    """`hex_color` mixed with white (`share` of white)."""
    rgb = [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c + (255 - c) * share):02x}" for c in rgb)


def model_color(name: str) -> str:
    """The colour of a model of a run ('base', 'sft', 'rl_<method>', 'dpo_<method>'); a training stage
    ('rl/naive', 'dpo/odin') or a reward method ('naive') takes its model's colour."""
    name = name.replace("/", "_")
    if name in FIXED_COLORS:
        return FIXED_COLORS[name]
    if name in METHOD_COLORS or name in METHODS:
        return METHOD_COLORS.get(name) or _extra(name)
    kind, _, method = name.partition("_")
    if kind in ("rl", "dpo", "rewards") and method in METHOD_COLORS:
        return _lighter(METHOD_COLORS[method]) if kind == "dpo" else METHOD_COLORS[method]
    return _extra(name)


def _extra(name: str) -> str:
    """A colour for a model or method without one of its own, the same for the same name in every chart."""
    return EXTRA_COLORS[sum(map(ord, name)) % len(EXTRA_COLORS)]


def model_colors(names: Iterable[str]) -> dict[str, str]:
    """{model name: colour} for `model_color`."""
    return {name: model_color(name) for name in names}


def group_colors(groups: Iterable[str]) -> dict[str, str]:
    """{marker group: colour}, in the order the groups are given (the comparison's marker groups)."""
    return {group: GROUP_COLORS[i % len(GROUP_COLORS)] for i, group in enumerate(groups)}


def highlight_color(color: str) -> str:
    """The background of a highlighted marker: the group's colour, see-through (CSS #rrggbbaa)."""
    return color + HIGHLIGHT_ALPHA
