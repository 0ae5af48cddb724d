"""DeconfoundLM Studio — home page: what the tool does and where you are in the flow."""

import os

import streamlit as st

from ui.common import choose_table, get_store, page_setup, step_status, table_picker, user_errors

page_setup("DeconfoundLM Studio", "🧪")

st.markdown(
    "Fine-tune a language model on your **historical logs** (text + context + outcome) without it "
    "learning **spurious confounders** — weekday traffic, season, a popular team, a price tier. "
    "The studio estimates how much of the outcome the confounders explain (instrumental variables "
    "or double machine learning), removes it, and trains the model on what the *text* itself earned."
)

store = get_store()

with st.container(border=True):
    st.subheader("Try it on the demo data")
    st.caption("Simulated sports headlines with a known truth: team popularity inflates the outcome, and "
               "in the *entangled* scenario it also moves with the story's sentiment. Both tables arrive "
               "with their columns already tagged.")
    if st.button("Load demo data", type="primary", key="load_demo"):
        with user_errors("Loading the demo"), st.spinner("Loading 2 × 20,000 rows into DuckDB…"):
            from deconfound.sim import load_demo
            tables = load_demo(store)
            choose_table(tables[0])
            st.success(f"Loaded and tagged: {', '.join(tables)}. Continue with **Diagnostics**.")

table = table_picker(store)

STEPS = [
    ("Data", "pages/1_Data.py", "Upload CSV or Parquet logs into the local DuckDB database."),
    ("Roles", "pages/2_Roles.py", "Tag the text, context, outcome, confounders and instruments."),
    ("Diagnostics", "pages/3_Diagnostics.py", "See what moves the outcome besides the text: time, markers, entanglement."),
    ("Deconfound", "pages/4_Deconfound.py", "Estimate the confounders' effect (OLS vs IV vs DML) and save the corrected outcome."),
    ("Train", "pages/5_Train.py", "Launch a background fine-tune whose reward uses the corrected outcome."),
    ("Compare", "pages/6_Compare.py", "Base vs naive vs deconfounded generations, side by side."),
]

st.subheader("The six steps" + (f" for `{table}`" if table else ""))
with user_errors("Reading the project state"):
    done = step_status(store, table)
    for number, (name, page, what) in enumerate(STEPS, start=1):
        cols = st.columns([0.06, 0.24, 0.7])
        cols[0].markdown("✅" if done.get(name) else "⬜")
        if os.path.exists(page):
            cols[1].page_link(page, label=f"{number}. {name}")
        else:
            cols[1].markdown(f"{number}. {name} *(coming soon)*")
        cols[2].caption(what)

st.caption("Everything stays on this machine: data in a DuckDB file, runs in a folder per job "
           "(set `DECONFOUND_HOME` to move them). The same steps run headless with the `deconfound` CLI.")
