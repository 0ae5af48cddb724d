"""Shared page furniture: the store, the table picker, user-error display, the step checklist."""

from __future__ import annotations

import logging
import os
import traceback
from contextlib import contextmanager

import streamlit as st

from deconfound import paths
from deconfound.data import Store
from deconfound.errors import DeconfoundError

log = logging.getLogger("deconfound.ui")
TABLE_KEY = "table"


def page_setup(title: str, icon: str = "🧪") -> None:
    """Page config + title; call first on every page."""
    st.set_page_config(page_title=f"{title} · DeconfoundLM Studio", page_icon=icon, layout="wide")
    st.title(title)


def get_store() -> Store:
    """The app's DuckDB store ($DECONFOUND_DB or the default file under $DECONFOUND_HOME)."""
    return Store(os.environ.get("DECONFOUND_DB") or paths.default_db())


def table_picker(store: Store, label: str = "Table", sidebar: bool = True) -> str | None:
    """Choose the working table; the choice is shared by all pages (session state + URL)."""
    tables = store.tables()
    where = st.sidebar if sidebar else st
    if not tables:
        where.info("No tables yet. Load the demo on the home page or upload a file on **Data**.")
        return None
    current = st.session_state.get(TABLE_KEY) or st.query_params.get(TABLE_KEY)
    index = tables.index(current) if current in tables else 0
    choice = where.selectbox(label, tables, index=index, key="table_picker",
                             help="The table every step works on. Change it here on any page.")
    st.session_state[TABLE_KEY] = choice
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


def step_status(store: Store, table: str | None) -> dict[str, bool]:
    """Which of the six steps are done for a table (from what is stored on disk)."""
    done = {"Data": bool(table), "Roles": False, "Diagnostics": False, "Deconfound": False,
            "Train": False, "Compare": False}
    if not table:
        return done
    roles = store.load_roles(table)
    done["Roles"] = roles is not None
    done["Diagnostics"] = done["Roles"]  # diagnostics are computed on demand once roles exist
    done["Deconfound"] = bool(store.column_meta(table))
    try:
        from deconfound import runs
        runs = [j for j in runs.list_jobs() if j.get("table") == table]
        done["Train"] = any(j.get("state") == "completed" for j in runs)
        done["Compare"] = done["Train"]
    except Exception:  # jobs module absent or run folder unreadable: show the step as not done
        pass
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
