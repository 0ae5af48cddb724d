"""Step 2 — Roles: tell the studio what each column means."""

import streamlit as st

from deconfound.data import (CALENDAR_PARTS, DEFAULT_CALENDAR, OUTCOME_SCALES, Roles, guess_roles, is_temporal,
                             prompt_description, training_blockers)
from deconfound.errors import RolesError
from ui.common import get_store, page_setup, table_picker, training_blocked, user_errors

page_setup("2 · Roles", "🏷️")
st.markdown(
    "The method models the outcome as **y = g(text) + h(confounders) + noise** and removes h. "
    "Tag which column is the generated **text**, the **context** it was written for, the **outcome**, "
    "and the **confounders** — things that move the outcome but are not the text's quality (weekday, "
    "season, popularity, price). An **instrument** moves a confounder but affects the outcome only "
    "through it (e.g. which team a headline mentions moves its popularity)."
)

store = get_store()
table = table_picker(store)
if not table:
    st.stop()

with user_errors("Reading the table"):
    schema = store.schema(table)
    saved = store.load_roles(table)
columns = list(schema)
start = saved or guess_roles(schema)
NONE = "— none —"


def pick(label: str, value: str | None, key: str, help: str) -> str | None:
    options = [NONE] + columns
    index = options.index(value) if value in options else 0
    choice = st.selectbox(label, options, index=index, key=f"{key}_{table}", help=help)
    return None if choice == NONE else choice


def pick_many(label: str, values: list[str], key: str, help: str) -> list[str]:
    return st.multiselect(label, columns, default=[v for v in values if v in columns], key=f"{key}_{table}", help=help)


if saved:
    st.success("Saved roles for this table are loaded below.")
else:
    st.info("Suggested from the column names — check them, then **Save roles**.")

left, right = st.columns(2)
with left:
    st.markdown("**What was written and what it earned**")
    text = pick("Text (the generated artifact)", start.text, "role_text", "Headline, subject line, listing title…")
    context = pick("Context (the prompt, optional)", start.context, "role_context",
                   "Article abstract, product, audience… A log without one trains with the instruction alone, or "
                   "with a prompt template below.")
    outcome = pick("Outcome (numeric)", start.outcome, "role_outcome", "CTR, bookings, adherence…")
    timestamp = pick("Timestamp (optional)", start.timestamp, "role_timestamp", "Enables weekday and month diagnostics.")
    truth = pick("Ground-truth quality (simulations only)", start.truth, "role_truth",
                 "Only simulated data has it; used to check the method.")
with right:
    st.markdown("**What else moves the outcome**")
    confounders = pick_many("Confounders", start.confounders, "role_confounders",
                            "Moves the outcome but is not the text's quality.")
    instruments = pick_many("Instruments", start.instruments, "role_instruments",
                            "Moves a confounder, affects the outcome only through it. Enables IV.")
    controls = pick_many("Controls", start.controls, "role_controls", "Other covariates kept in every model.")
    with st.expander("A/B test columns (optional)"):
        experiment = pick("Experiment id", start.experiment, "role_experiment", "Which A/B test a row belongs to.")
        arm = pick("Arm", start.arm, "role_arm", "Which variant of the test.")


def prompt_and_time_options(start: Roles, timestamp: str | None, confounders: list[str]) -> dict:
    """What the training prompt shows, and how a time confounder, a heavy-tailed outcome and impressions are
    modelled (saved with the roles)."""
    st.markdown("**What the training prompt shows**")
    template = st.text_input(
        "Prompt template (optional)", value=start.prompt_template or "", key=f"role_prompt_template_{table}",
        placeholder="e.g. News posted at {created_at}",
        help="{column} is replaced by the row's value. Empty: the context column, or, without one, the editor "
             "instruction alone (generation then samples varied texts from the same prompt).")
    times = [c for c in confounders if is_temporal(schema.get(c, ""))]
    with st.expander("Time as the confounder, log scale, impressions", expanded=bool(times)):
        if times:
            st.caption(f"'{', '.join(times)}' is a time: its calendar effect on the outcome is what gets removed "
                       "(estimated with the text partialled out, so months with better texts are not charged to "
                       "the calendar).")
        elif timestamp:
            st.caption(f"To remove the calendar effect of '{timestamp}', add it to the **Confounders** too.")
        parts = st.multiselect("Calendar of a time's effect", list(CALENDAR_PARTS), key=f"role_calendar_{table}",
                               default=[p for p in start.calendar.split("+") if p in CALENDAR_PARTS],
                               help="Weekday + month by default; year for yearly data, hour for times of day.")
        scale = st.radio("Outcome scale", list(OUTCOME_SCALES), key=f"role_scale_{table}", horizontal=True,
                         index=list(OUTCOME_SCALES).index(start.outcome_scale),
                         help="log1p for heavy-tailed counts (retweets, views): effects are estimated on log(1 + y); "
                              "the corrected outcome comes back on the outcome's own scale.")
        weight = pick("Impressions (weights a rate outcome)", start.weight, "role_weight",
                      "Each row of a rate (clicks / impressions) counts by its impressions; zeros are refused.")
    return {"prompt_template": template.strip() or None, "outcome_scale": scale, "weight": weight,
            "calendar": "+".join(parts) or DEFAULT_CALENDAR}


options = prompt_and_time_options(start, timestamp, confounders)
roles = Roles(text=text, context=context, outcome=outcome, timestamp=timestamp, confounders=confounders,
              instruments=instruments, controls=controls, truth=truth, experiment=experiment, arm=arm, **options)
st.caption(f"The training prompt will show {prompt_description(roles)}.")
errors, warnings = ["the roles could not be checked against the data"], []
with user_errors("Checking the roles"):
    errors, warnings = store.check_roles(table, roles)
for message in errors:
    st.error(message)
# Whether the table can be trained on is said once, in the sentence the Train page shows too (one rule:
# data.training_blockers); validation's own words for the same blockers are not repeated.
blocked = training_blocked(table, roles)
for message in warnings:
    if not any(blocker in message for blocker in training_blockers(roles)):
        st.warning(message)
if blocked:
    st.warning(blocked + " You can save these roles for the other steps; **Train** will ask for the same.")

if st.button("Save roles", type="primary", disabled=bool(errors), key="save_roles"):
    with user_errors("Saving roles"):
        try:
            store.save_roles(table, roles)
            st.success("Roles saved. Next: **Diagnostics**.")
        except RolesError as exc:
            for problem in exc.problems:
                st.error(problem)

current = store.load_roles(table)
with st.expander("Saved roles", expanded=current is not None):
    st.code(current.summary() if current else "(none saved yet)")
