"""Render an altair chart the way the dashboard shows it, offline, and read back what a person would see.

Streamlit draws charts with its own theme: axis labels 12 px, labels that would overlap hidden
(`labelOverlap`), labels cut at 100 px (`labelLimit`), and the whole chart fitted into the given size
(`autosize: fit`). These are the settings of Streamlit 1.67's chart theme (CustomTheme in its frontend bundle).
vl-convert renders the same Vega-Lite spec to SVG; a label Vega hid is drawn with opacity 0, a label it cut
ends with an ellipsis.
"""

from __future__ import annotations

import re

STREAMLIT_CONFIG = {
    "autosize": {"type": "fit", "contains": "padding"},
    "axis": {"labelFontSize": 12, "titleFontSize": 14, "labelOverlap": True, "labelLimit": 100,
             "labelSeparation": 2, "labelPadding": 16, "titlePadding": 24, "ticks": False, "labelFlush": True,
             "labelBound": False, "domain": False},
    "legend": {"labelFontSize": 14, "titleFontSize": 14},
}
_GROUP = re.compile(r'<g class="mark-text role-(axis-label|axis-title|legend-label|title|legend-title)"[^>]*>(.*?)</g>',
                    re.S)
_TEXT = re.compile(r"<text([^>]*)>(.*?)</text>", re.S)


def render(chart, width: int = 700) -> str:
    """SVG of the chart under Streamlit's theme, `width` px wide (the page's column)."""
    import vl_convert
    spec = chart.to_dict() if hasattr(chart, "to_dict") else dict(chart)
    spec["config"] = {**STREAMLIT_CONFIG, **spec.get("config", {})}
    spec.setdefault("width", width)
    return vl_convert.vegalite_to_svg(spec)


def visible_texts(svg: str, role: str) -> list[str]:
    """Texts of one role ('axis-label', 'axis-title', ...) that are drawn visibly, in drawing order."""
    out = []
    for kind, body in _GROUP.findall(svg):
        if kind != role:
            continue
        for attrs, text in _TEXT.findall(body):
            if 'opacity="0"' in attrs:
                continue
            if "<tspan" in text:  # a multi-line title
                text = " ".join(re.findall(r"<tspan[^>]*>(.*?)</tspan>", text))
            out.append(text.replace("&amp;", "&"))
    return out
