"""Step 1 — Data: upload logs into the local DuckDB database, preview them, drop what you do not need."""

import uuid

import streamlit as st

from deconfound import paths
from deconfound.data import BadLinesError, safe_table_name
from ui.common import choose_table, flash, get_store, page_setup, table_picker, user_errors

page_setup("1 · Data", "📥")
st.markdown("Upload your logs as **CSV** (comma, tab, semicolon or pipe separated; UTF-8 or Latin-1) or "
            "**Parquet**. Each file becomes a table in the studio's DuckDB database; nothing is overwritten "
            "unless you say so.")

store = get_store()


def load_upload(uploaded, name: str, mode: str, skip_bad_rows: bool) -> None:
    """Stage the upload, stream it into DuckDB, report rows loaded and rejected. Lines that do not parse are
    remembered for `bad_lines_offer` (an error with a way on, right under it)."""
    st.session_state.pop("bad_lines", None)
    with user_errors("Loading the file"), st.status(f"Loading {uploaded.name}…", expanded=True) as status:
        # Stage the upload inside the project's uploads folder under a generated name:
        # the user's file name never becomes a path.
        staged = paths.uploads_dir() / f"{uuid.uuid4().hex}.upload"
        status.write("Saving the upload…")
        with open(staged, "wb") as fh:
            fh.write(uploaded.getbuffer())
        try:
            status.write("Streaming it into DuckDB…")
            result = store.ingest(staged, table=name, replace=(mode == "replace"), display_name=uploaded.name,
                                  skip_bad_rows=skip_bad_rows)
        except BadLinesError as exc:
            status.update(label="Some lines could not be read", state="error")
            st.session_state["bad_lines"] = {"file": uploaded.file_id, "message": str(exc), "good": exc.good_rows}
            return
        finally:
            staged.unlink(missing_ok=True)
        status.update(label=result.summary(), state="complete")
        choose_table(result.table)
        st.success(result.summary() + " Next: tag its columns on **Roles**.")


def bad_lines_offer(uploaded, name: str, mode: str) -> None:
    """The error about lines that do not parse, with the way on right under it: load the good rows and keep
    the bad lines aside (nothing is lost silently: they are listed below the table afterwards)."""
    bad = st.session_state.get("bad_lines")
    if not bad or bad["file"] != uploaded.file_id:
        return
    st.error(bad["message"])
    skip = st.checkbox(f"Skip the bad lines: load the {bad['good']:,} good rows and keep the bad lines aside "
                       "(with their line numbers and raw text)", key="skip_bad_rows")
    if st.button("Load the good rows", disabled=not skip, key="ingest_skipping"):
        load_upload(uploaded, name, mode, skip_bad_rows=True)


uploaded = st.file_uploader("Logs file", type=["csv", "tsv", "txt", "parquet", "pq"], key="upload")
if uploaded is not None:
    # The proposed name follows the file being uploaded: a text box keeps what it held, so a new file (a new
    # upload id) resets it; otherwise the second file of a session would be loaded under the first one's name.
    if st.session_state.get("upload_for") != uploaded.file_id:
        st.session_state["upload_for"] = uploaded.file_id
        st.session_state["upload_name"] = safe_table_name(uploaded.name)
        st.session_state.pop("clash_mode", None)
    name = st.text_input("Table name", key="upload_name",
                         help="Letters, digits and underscores. Suggested from the file name.")
    clash = name in store.tables()
    mode = "new"
    if clash:
        st.warning(f"A table named `{name}` already exists.")
        mode = st.radio("What should happen?", ["Keep both (load under a new name)", "Replace the existing table"],
                        key="clash_mode")
        mode = "replace" if mode.startswith("Replace") else "new"
    if st.button("Load into database", type="primary", key="ingest"):
        load_upload(uploaded, name, mode, skip_bad_rows=False)
    bad_lines_offer(uploaded, name, mode)

st.divider()
table = table_picker(store)
if table:
    with user_errors("Reading the table"):
        desc = store.describe(table)
        st.subheader(f"`{table}` — {desc.rows:,} rows × {len(desc.columns)} columns")
        st.dataframe(store.preview(table, 50), width="stretch", hide_index=True)
        st.markdown("**Columns** — type, missing values, distinct values and range")
        st.dataframe(desc.columns, width="stretch", hide_index=True)
        if desc.rows_rejected:
            with st.expander(f"{desc.rows_rejected:,} lines of the file were rejected when it was loaded"):
                st.caption("Each line that could not be parsed, with its line number in the file, what was wrong "
                           "and the line as written. Fix them in the file and load it again to include them.")
                st.dataframe(store.rejects(table, limit=1000), width="stretch", hide_index=True)
    # A confirmation belongs to one table and one click: its box is keyed by the table and cleared after a delete,
    # and the expander stays open while it is ticked.
    confirm_key = f"confirm_drop_{table}"
    with st.expander("Delete this table", expanded=bool(st.session_state.get(confirm_key))):
        st.caption("Removes the table, its roles and derived columns from the database. Runs already "
                   "launched keep their own snapshot.")
        confirm = st.checkbox(f"Yes, delete `{table}`", key=confirm_key)
        if st.button("Delete", disabled=not confirm, key="drop"):
            with user_errors("Deleting the table"):
                store.drop(table)
                st.session_state.pop(confirm_key, None)
                choose_table(None)
                flash(f"Deleted `{table}`.")
                st.rerun()
