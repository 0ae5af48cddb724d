"""Step 2 — Roles: tell the studio what each column means."""

import streamlit as st

from deconfound.data import Roles, guess_roles, training_blockers, validate
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
    context = pick("Context (the prompt)", start.context, "role_context", "Article abstract, product, audience…")
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

roles = Roles(text=text, context=context, outcome=outcome, timestamp=timestamp, confounders=confounders,
              instruments=instruments, controls=controls, truth=truth, experiment=experiment, arm=arm)
errors, warnings = validate(roles, schema)
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
