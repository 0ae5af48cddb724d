"""Shared page furniture: the navigation, the store, the table picker, user-error display, messages that survive a
rerun, the step checklist and the one sentence that says why a table cannot be trained on."""

from __future__ import annotations

import logging
import os
import traceback
from contextlib import contextmanager

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from deconfound import paths
from deconfound.data import Roles, Store, step_record, training_blockers
from deconfound.errors import DeconfoundError

log = logging.getLogger("deconfound.ui")
TABLE_KEY = "table"            # the working table, shared by every page (session state and the URL's ?table=)
PICKER_KEY = "table_picker"    # the sidebar selectbox that shows it
FLASH_KEY = "_flash"           # messages to show after a st.rerun()

# The sidebar's navigation (Streamlit's own is off in .streamlit/config.toml: it would name the home page "app").
# Material icons ship with Streamlit's frontend (no emoji font needed, nothing fetched).
NAVIGATION = [("app.py", "Home", ":material/home:"), ("pages/1_Data.py", "1 · Data", ":material/upload_file:"),
              ("pages/2_Roles.py", "2 · Roles", ":material/label:"),
              ("pages/3_Diagnostics.py", "3 · Diagnostics", ":material/troubleshoot:"),
              ("pages/4_Deconfound.py", "4 · Deconfound", ":material/balance:"),
              ("pages/5_Train.py", "5 · Train", ":material/model_training:"),
              ("pages/6_Compare.py", "6 · Compare", ":material/compare:")]


def page_setup(title: str, icon: str = "🧪") -> None:
    """Page config, the sidebar's navigation, messages left by the previous run, the title; call first on every
    page."""
    st.set_page_config(page_title=f"{title} · DeconfoundLM Studio", page_icon=icon, layout="wide")
    navigation()
    for kind, message in st.session_state.pop(FLASH_KEY, []):
        getattr(st, kind)(message)
    st.title(title)


def navigation() -> None:
    """Links to the home page and the six steps, at the top of the sidebar."""
    with st.sidebar:
        for page, label, icon in NAVIGATION:
            try:
                st.page_link(page, label=label, icon=icon)
            except StreamlitPageNotFoundError:  # a page run on its own (AppTest) knows no other page
                return
        st.divider()


def flash(message: str, kind: str = "success") -> None:
    """Show `message` (st.success, st.info, ...) at the top of the page after the next rerun."""
    st.session_state.setdefault(FLASH_KEY, []).append((kind, message))


def get_store() -> Store:
    """The app's DuckDB store ($DECONFOUND_DB or the default file under $DECONFOUND_HOME)."""
    return Store(os.environ.get("DECONFOUND_DB") or paths.default_db())


def choose_table(table: str | None) -> None:
    """Make `table` the working table of every page (after loading or deleting one)."""
    if table:
        st.session_state[TABLE_KEY] = table
    else:
        st.session_state.pop(TABLE_KEY, None)
        st.query_params.pop(TABLE_KEY, None)
    st.session_state.pop(PICKER_KEY, None)


def _picked() -> None:
    st.session_state[TABLE_KEY] = st.session_state[PICKER_KEY]


def table_picker(store: Store, label: str = "Table", sidebar: bool = True) -> str | None:
    """Choose the working table; the choice is shared by all pages (session state + URL).

    The working table is the one source: the selectbox is set from it on every run (a widget keeps its own
    value otherwise, and would show the previous table after a page loaded or deleted one), and the user's
    pick updates it (`_picked`, before the page runs)."""
    tables = store.tables()
    where = st.sidebar if sidebar else st
    if not tables:
        where.info("No tables yet. Load the demo on the home page or upload a file on **Data**.")
        st.query_params.pop(TABLE_KEY, None)
        return None
    current = st.session_state.get(TABLE_KEY) or st.query_params.get(TABLE_KEY)
    if current not in tables:
        current = tables[0]
    st.session_state[TABLE_KEY] = current
    if st.session_state.get(PICKER_KEY) != current:
        st.session_state[PICKER_KEY] = current
    choice = where.selectbox(label, tables, key=PICKER_KEY, on_change=_picked,
                             help="The table every step works on. Change it here on any page.")
    st.query_params[TABLE_KEY] = choice
    return choice


@contextmanager
def user_errors(action: str = "That step"):
    """Show a `DeconfoundError` as a clear message and anything else as a short error (traceback to the log)."""
    try:
        yield
    except DeconfoundError as exc:
        st.error(str(exc))
    except Exception as exc:  # never a traceback on screen
        log.error("unexpected error in UI\n%s", traceback.format_exc())
        st.error(f"{action} failed unexpectedly ({type(exc).__name__}: {str(exc)[:200]}). "
                 "Details are in the log; please report it.")


def training_blocked(table: str, roles: Roles) -> str | None:
    """The one sentence the Roles and Train pages show when a table cannot be trained on, from the package's
    rule (`data.training_blockers`, which `runs.preset_config` applies too); None when it can be."""
    blockers = training_blockers(roles)
    if not blockers:
        return None
    return f"'{table}' cannot be trained on yet: {'; '.join(blockers)}."


def step_status(store: Store, table: str | None) -> dict[str, bool]:
    """Which of the six steps are done for a table, each from what is stored about that step: Roles once roles
    are saved, Diagnostics once diagnostics ran on the table with its current roles (recorded in the store),
    Deconfound once a corrected outcome column exists or a finished run trained a reward on the corrected
    outcome, Train once a run of the table finished, Compare once a finished run wrote its generations."""
    done = {"Data": bool(table), "Roles": False, "Diagnostics": False, "Deconfound": False,
            "Train": False, "Compare": False}
    if not table:
        return done
    roles = store.load_roles(table)
    done["Roles"] = roles is not None
    done["Diagnostics"] = roles is not None and step_record(store, table, "diagnostics") is not None
    if roles is not None:
        from deconfound.causal import latest_corrected_column
        done["Deconfound"] = latest_corrected_column(store, table, roles.outcome)[0] is not None
    try:
        from deconfound import runs
        from deconfound.rewards import REWARD_METHODS
        finished = [j for j in runs.list_jobs() if j.get("table") == table and j.get("state") == "completed"]
        done["Train"] = bool(finished)
        done["Compare"] = any(os.path.isfile(os.path.join(j["run_dir"], "generations.csv")) for j in finished)
        done["Deconfound"] = done["Deconfound"] or any(
            REWARD_METHODS[m].needs_corrected for j in finished for m in (j.get("methods") or [])
            if m in REWARD_METHODS)
    except Exception:  # a run folder unreadable: show those steps as not done (logged)
        log.warning("could not read the runs for the checklist\n%s", traceback.format_exc())
    return done


def tagged_table_or_stop(store: Store, what: str = "its text, outcome and confounders",
                         need: tuple[str, ...] = (), purpose: str = "this step can run"):
    """The chosen table and its saved roles; otherwise explain what to do and stop the page.

    `need` names multi-column roles that must be tagged too (e.g. ("confounders",)); a table without one stops
    the page with "needs at least one **confounder** tagged on **Roles** before `purpose`".
    """
    table = table_picker(store)
    if not table:
        st.stop()
    roles = store.load_roles(table)
    if roles is None:
        st.warning(f"'{table}' has no column roles yet: tag {what} on **Roles** first.")
        st.stop()
    for role in need:
        if not getattr(roles, role):
            st.warning(f"'{table}' needs at least one **{role.removesuffix('s')}** tagged on **Roles** "
                       f"before {purpose}.")
            st.stop()
    return table, roles
