"""The charts of the Diagnostics and Deconfound pages (Altair specs), so the pages only lay out widgets and a
chart is defined once. Each takes a result or a table the package computed and returns an Altair chart;
`st.altair_chart` (or `chart.to_dict()`) renders it. Altair is imported inside each function, so the CLI
does not pay for it.
"""

from __future__ import annotations

import pandas as pd

from .diagnostics.entanglement import EntanglementResult
from .results import ESTIMATOR_LABELS

STATUS_COLORS = {"spurious": "#d62728", "robust": "#2ca02c", "hidden by confounder": "#9467bd"}
R2_MEASURES = {"r2_text": "text", "r2_instruments": "instruments",
               "r2_text_beyond_instruments": "text beyond instruments"}


def time_chart(frame: pd.DataFrame, title: str, outcome: str, sort: list | None = None):
    """Mean outcome per level (weekday or month) as bars with 95% confidence intervals as error bars."""
    import altair as alt
    base = alt.Chart(frame).encode(x=alt.X("level:N", sort=sort, title=title))
    bars = base.mark_bar(opacity=0.7).encode(
        y=alt.Y("mean:Q", title=f"mean {outcome}", scale=alt.Scale(zero=False)),
        tooltip=["level", "n", alt.Tooltip("mean:Q", format=".4f"), alt.Tooltip("ci_low:Q", format=".4f"),
                 alt.Tooltip("ci_high:Q", format=".4f")])
    errors = base.mark_errorbar().encode(y=alt.Y("ci_low:Q", title=f"mean {outcome} (95% CI)"), y2="ci_high:Q")
    return (bars + errors).properties(height=260)


def marker_chart(rows: pd.DataFrame):
    """Raw outcome lift per marker as bars coloured by status, the lift after controlling as a black dot
    (rows from `marker_chart_rows`, in their order)."""
    import altair as alt
    colors = alt.Scale(domain=list(STATUS_COLORS), range=list(STATUS_COLORS.values()))
    base = alt.Chart(rows).encode(y=alt.Y("marker:N", sort=list(rows["marker"]), title=None))
    bars = base.mark_bar(opacity=0.75).encode(
        x=alt.X("lift:Q", title="outcome lift when present"), color=alt.Color("status:N", scale=colors),
        tooltip=["marker", "n", "status", alt.Tooltip("lift:Q", format="+.4f"),
                 alt.Tooltip("adjusted_lift:Q", format="+.4f", title="after controlling")])
    dots = base.mark_point(filled=True, color="black", size=40).encode(x="adjusted_lift:Q")
    return (bars + dots).properties(height=max(240, 20 * len(rows)))


def entanglement_chart(result: EntanglementResult):
    """Per confounder, the R² of the text, of the instruments, and of the text beyond the instruments."""
    import altair as alt
    long = result.confounders.melt(id_vars="confounder", value_vars=list(R2_MEASURES),
                                   var_name="measure", value_name="R²").dropna()
    long["measure"] = long["measure"].map(R2_MEASURES)
    chart = alt.Chart(long).mark_bar().encode(
        x=alt.X("R²:Q", scale=alt.Scale(domain=[min(0, float(long["R²"].min())), 1])),
        y=alt.Y("measure:N", title=None, sort=list(R2_MEASURES.values()), axis=alt.Axis(labelLimit=300)),
        row=alt.Row("confounder:N", title=None),
        color=alt.Color("measure:N", legend=None), tooltip=["confounder", "measure", alt.Tooltip("R²:Q", format=".3f")])
    return chart.properties(height=110)


def leakage_chart(months: pd.DataFrame):
    """Standardised monthly means of a score and of the outcome as lines (from `standardised_months`)."""
    import altair as alt
    return alt.Chart(months).mark_line(point=True).encode(
        x=alt.X("month:N"), y=alt.Y("value:Q", title="monthly mean (standardised)"), color="series:N"
    ).properties(height=240)


def estimates_chart(compare: pd.DataFrame):
    """Each method's effect per unit with its 95% interval, one row per confounder term (from
    `compare_estimates`)."""
    import altair as alt
    base = alt.Chart(compare).encode(y=alt.Y("method:N", title=None, sort=list(ESTIMATOR_LABELS.values())))
    chart = (base.mark_point(filled=True, size=80).encode(x=alt.X("coefficient:Q", scale=alt.Scale(zero=False),
                                                                 title="effect per unit (95% interval)"),
                                                         color="method:N", tooltip=list(compare.columns))
             + base.mark_errorbar().encode(x=alt.X("CI low:Q", title="effect per unit (95% interval)"), x2="CI high:Q"))
    return chart.properties(height=60 * compare["method"].nunique()).facet(row=alt.Row("term:N", title=None))


def outcome_density_chart(sample: pd.DataFrame):
    """Density of the raw and the corrected outcome (from `corrected_sample`)."""
    import altair as alt
    long = sample[["raw outcome", "corrected"]].melt(var_name="outcome", value_name="value").dropna()
    return (alt.Chart(long).transform_density("value", groupby=["outcome"], as_=["value", "density"])
            .mark_area(opacity=0.45).encode(x="value:Q", y=alt.Y("density:Q", stack=None), color="outcome:N")
            .properties(height=240))


def sensitivity_chart(grid: list[dict], term: str):
    """The IV estimate and its interval as the instrument's direct effect γ grows (Conley et al.), with zero
    marked: where the band crosses the red line the effect is no longer significant."""
    import altair as alt
    frame = pd.DataFrame(grid)
    base = alt.Chart(frame).encode(x=alt.X("gamma:Q", title="direct effect of the instrument γ (outcome units)"))
    band = base.mark_area(opacity=0.25).encode(y=alt.Y("lo:Q", title=f"effect of {term}"), y2="hi:Q")
    line = base.mark_line().encode(y="coef:Q", tooltip=["gamma", "coef", "lo", "hi"])
    zero = alt.Chart(pd.DataFrame({"zero": [0.0]})).mark_rule(color="#c0392b", strokeDash=[4, 4]).encode(y="zero:Q")
    return (band + line + zero).properties(height=220)
