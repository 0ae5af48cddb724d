"""The data layer: files in, tables out, all inside one embedded DuckDB file.

Every method opens a short-lived connection, so the dashboard, the CLI and a notebook can take
turns on the same file (DuckDB allows one writing process at a time). Identifiers are validated and
quoted, and values travel as parameters: nothing a user uploads is ever spliced into SQL.
"""

from __future__ import annotations

import csv
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Sequence

import duckdb
import numpy as np
import pandas as pd

from .. import paths
from ..errors import IngestError, NotFoundError, RolesError
from .roles import Roles, validate

META_PREFIX = "_deconfound_"
ROLES_TABLE = META_PREFIX + "roles"
COLUMNS_TABLE = META_PREFIX + "columns"
TABLE_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
CSV_SUFFIXES = {".csv", ".tsv", ".txt", ".tab"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
SNIFF_BYTES = 64 * 1024
MAX_LINE_BYTES = 2_000_000  # DuckDB's own default; a longer field is reported, not truncated


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB (doubling embedded quotes)."""
    return '"' + str(name).replace('"', '""') + '"'


def safe_table_name(raw: str) -> str:
    """Turn a file name (or anything) into a plain SQL identifier: lower-case letters, digits, '_'."""
    stem = Path(str(raw).replace("\\", "/")).name
    for suffix in sorted(CSV_SUFFIXES | PARQUET_SUFFIXES | {".gz"}, key=len, reverse=True):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    name = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_") or "table"
    if name[0].isdigit():
        name = "t_" + name
    if name.startswith(META_PREFIX.strip("_")):
        name = "t_" + name
    return name[:63]


def check_table_name(name: str) -> str:
    """Validate a user-chosen table name; raise a clear error for anything that is not a plain name."""
    if not isinstance(name, str) or not TABLE_NAME_RE.match(name):
        raise IngestError(f"table name {name!r} is not allowed: use letters, digits and '_' "
                          "(start with a letter, at most 63 characters)")
    if name.lower().startswith(META_PREFIX):
        raise IngestError(f"table name {name!r} is reserved for the studio's own metadata")
    return name


@dataclass
class IngestResult:
    """What `Store.ingest` did."""

    table: str
    rows: int
    columns: list[str]
    source: str
    encoding: str
    replaced: bool = False
    renamed_from: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One readable paragraph."""
        text = f"Loaded {self.rows:,} rows × {len(self.columns)} columns from {Path(self.source).name} into '{self.table}'"
        if self.replaced:
            text += " (replaced the previous table)"
        if self.renamed_from:
            text += f" ('{self.renamed_from}' already existed, so a new name was used)"
        return text + "." + "".join(f" {n}" for n in self.notes)


@dataclass
class TableDescription:
    """Row count, column types, null counts and basic statistics of a table."""

    table: str
    rows: int
    columns: pd.DataFrame  # column, type, nulls, null_pct, distinct, min, max, mean

    def summary(self) -> str:
        """The description as text."""
        return f"{self.table}: {self.rows:,} rows\n" + self.columns.to_string(index=False)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        cols = self.columns.astype(object).where(self.columns.notna(), None)
        return {"table": self.table, "rows": self.rows, "columns": cols.to_dict(orient="records")}


class Store:
    """An embedded DuckDB database file holding the user's tables, their roles and derived columns."""

    def __init__(self, db_path: str | Path | None = None):
        self.path = Path(db_path) if db_path else paths.default_db()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as con:
            con.execute(f"CREATE TABLE IF NOT EXISTS {ROLES_TABLE} (table_name VARCHAR PRIMARY KEY, "
                        "roles VARCHAR, updated_at TIMESTAMP)")
            con.execute(f"CREATE TABLE IF NOT EXISTS {COLUMNS_TABLE} (table_name VARCHAR, column_name VARCHAR, "
                        "meta VARCHAR, created_at TIMESTAMP, PRIMARY KEY (table_name, column_name))")

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """A short-lived connection; closed on exit."""
        try:
            con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            raise IngestError(f"cannot open the database {self.path}: {first_line(exc)} "
                              "(is another process writing to it?)") from exc
        try:
            yield con
        finally:
            con.close()

    # ---------------------------------------------------------------- listing
    def tables(self) -> list[str]:
        """User tables, sorted (the studio's metadata tables are hidden)."""
        with self.connect() as con:
            rows = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema='main' "
                               "ORDER BY table_name").fetchall()
        return [r[0] for r in rows if not r[0].startswith(META_PREFIX)]

    def exists(self, table: str) -> bool:
        """Whether a user table of this name exists."""
        return table in self.tables()

    def require(self, table: str) -> str:
        """Return the table name if it exists, else raise a clear error."""
        if not isinstance(table, str) or table not in self.tables():
            known = ", ".join(self.tables()) or "none yet: ingest a file first"
            raise NotFoundError(f"no table named {table!r} (tables: {known})")
        return table

    def schema(self, table: str) -> dict[str, str]:
        """Column name -> DuckDB type, in table order."""
        self.require(table)
        with self.connect() as con:
            rows = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                               "WHERE table_schema='main' AND table_name=? ORDER BY ordinal_position",
                               [table]).fetchall()
        return {name: dtype for name, dtype in rows}

    def row_count(self, table: str) -> int:
        """Number of rows."""
        self.require(table)
        with self.connect() as con:
            return int(con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0])

    def preview(self, table: str, limit: int = 20) -> pd.DataFrame:
        """The first rows of a table."""
        self.require(table)
        with self.connect() as con:
            return con.execute(f"SELECT * FROM {quote_ident(table)} LIMIT ?", [int(limit)]).df()

    def describe(self, table: str) -> TableDescription:
        """Row count, column types, null counts, distinct counts and numeric ranges (DuckDB SUMMARIZE)."""
        self.require(table)
        with self.connect() as con:
            stats = con.execute(f"SUMMARIZE {quote_ident(table)}").df()
        rows = int(stats["count"].iloc[0]) if len(stats) else 0
        null_pct = pd.to_numeric(stats["null_percentage"], errors="coerce").fillna(0.0)
        cols = pd.DataFrame({
            "column": stats["column_name"],
            "type": stats["column_type"],
            "nulls": (null_pct / 100.0 * rows).round().astype(int),
            "null_pct": null_pct.round(2),
            "distinct": stats["approx_unique"],
            "min": stats["min"].astype(str).str.slice(0, 40),
            "max": stats["max"].astype(str).str.slice(0, 40),
            "mean": pd.to_numeric(stats["avg"], errors="coerce"),
        })
        return TableDescription(table=table, rows=rows, columns=cols)

    def read_frame(self, table: str, columns: Sequence[str] | None = None, *, with_rowid: bool = False,
                   limit: int | None = None, sample_rows: int | None = None, seed: int = 0) -> pd.DataFrame:
        """Read columns into pandas (optionally a reproducible sample, optionally DuckDB's rowid)."""
        schema = self.schema(table)
        cols = list(columns) if columns else list(schema)
        missing = [c for c in cols if c not in schema]
        if missing:
            raise NotFoundError(f"table '{table}' has no column(s) {', '.join(map(repr, missing))}")
        select = ", ".join(quote_ident(c) for c in cols)
        if with_rowid:
            select = "rowid AS _rowid, " + select
        sql = f"SELECT {select} FROM {quote_ident(table)}"
        if sample_rows:
            sql += f" USING SAMPLE reservoir({int(sample_rows)} ROWS) REPEATABLE ({int(seed)})"
        if with_rowid:
            sql += " ORDER BY _rowid"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self.connect() as con:
            return con.execute(sql).df()

    # ---------------------------------------------------------------- ingest
    def ingest(self, source: str | Path, table: str | None = None, replace: bool = False,
               display_name: str | None = None) -> IngestResult:
        """Load a CSV/TSV or Parquet file into a new table, streamed by DuckDB (never through pandas).

        The table name comes from `table` (validated) or from the file name (sanitised). If it exists,
        `replace=True` swaps it atomically; otherwise a new name (`name_2`, ...) is used. On any error
        nothing is changed and an `IngestError` says what was wrong.
        """
        src = Path(source)
        if not src.is_file():
            raise IngestError(f"file not found: {src}")
        size = src.stat().st_size
        if size == 0:
            raise IngestError(f"{display_name or src.name} is empty: upload a CSV with a header row and data rows")
        kind = detect_format(src, display_name)
        wanted = check_table_name(table) if table is not None else safe_table_name(display_name or src.name)
        existing = set(self.tables())
        target, renamed_from = wanted, None
        if wanted in existing and not replace:
            target, renamed_from = next_free_name(wanted, existing), wanted

        staging = f"{META_PREFIX}staging_{target}"[:63]
        notes: list[str] = []
        in_transaction = False
        with self.connect() as con:
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(staging)}")
            try:
                if kind == "parquet":
                    encoding = "binary"
                    con.execute(f"CREATE TABLE {quote_ident(staging)} AS SELECT * FROM read_parquet(?)", [str(src)])
                else:
                    encoding = detect_encoding(src)
                    delimiter = detect_delimiter(src, encoding)
                    check_header(read_header(src, encoding, delimiter))
                    try:
                        load_csv(con, staging, src, delimiter, encoding)
                    except duckdb.InvalidInputException as exc:
                        # Only the head was checked for UTF-8 (a full Python pass would cost more than
                        # the load); DuckDB finds bad bytes further down, and Latin-1 decodes any byte.
                        if encoding != "utf-8" or "not utf-8 encoded" not in str(exc).lower():
                            raise
                        encoding = "latin-1"
                        con.execute(f"DROP TABLE IF EXISTS {quote_ident(staging)}")
                        load_csv(con, staging, src, delimiter, encoding)
                    if encoding != "utf-8":
                        notes.append(f"Read as {encoding} (the file is not valid UTF-8).")
                n_rows = con.execute(f"SELECT count(*) FROM {quote_ident(staging)}").fetchone()[0]
                if n_rows == 0:
                    raise IngestError(f"{display_name or src.name} has a header but no data rows")
                columns = [r[0] for r in con.execute(f"DESCRIBE {quote_ident(staging)}").fetchall()]
                # Swap in one transaction so a failure leaves the previous table intact.
                con.execute("BEGIN TRANSACTION")
                in_transaction = True
                if target in existing:
                    con.execute(f"DROP TABLE {quote_ident(target)}")
                    con.execute(f"DELETE FROM {ROLES_TABLE} WHERE table_name=?", [target])
                    con.execute(f"DELETE FROM {COLUMNS_TABLE} WHERE table_name=?", [target])
                con.execute(f"ALTER TABLE {quote_ident(staging)} RENAME TO {quote_ident(target)}")
                con.execute("COMMIT")
            except duckdb.Error as exc:
                if in_transaction:
                    con.execute("ROLLBACK")
                con.execute(f"DROP TABLE IF EXISTS {quote_ident(staging)}")
                raise IngestError(explain_duckdb_error(exc, display_name or src.name)) from exc
            except IngestError:
                con.execute(f"DROP TABLE IF EXISTS {quote_ident(staging)}")
                raise
        return IngestResult(table=target, rows=int(n_rows), columns=columns, source=str(display_name or src),
                            encoding=encoding, replaced=target in existing, renamed_from=renamed_from, notes=notes)

    def ingest_frame(self, frame: pd.DataFrame, table: str, replace: bool = False) -> IngestResult:
        """Load an in-memory DataFrame (used by the simulation and tests) under the same naming rules."""
        wanted = check_table_name(table)
        existing = set(self.tables())
        target, renamed_from = wanted, None
        if wanted in existing and not replace:
            target, renamed_from = next_free_name(wanted, existing), wanted
        with self.connect() as con:
            con.register("_incoming", frame)
            con.execute("BEGIN TRANSACTION")
            if target in existing:
                con.execute(f"DROP TABLE {quote_ident(target)}")
                con.execute(f"DELETE FROM {ROLES_TABLE} WHERE table_name=?", [target])
                con.execute(f"DELETE FROM {COLUMNS_TABLE} WHERE table_name=?", [target])
            con.execute(f"CREATE TABLE {quote_ident(target)} AS SELECT * FROM _incoming")
            con.execute("COMMIT")
            con.unregister("_incoming")
        return IngestResult(table=target, rows=len(frame), columns=list(frame.columns), source="<dataframe>",
                            encoding="-", replaced=target in existing, renamed_from=renamed_from)

    def drop(self, table: str) -> None:
        """Delete a table with its roles and derived-column records."""
        self.require(table)
        with self.connect() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute(f"DROP TABLE {quote_ident(table)}")
            con.execute(f"DELETE FROM {ROLES_TABLE} WHERE table_name=?", [table])
            con.execute(f"DELETE FROM {COLUMNS_TABLE} WHERE table_name=?", [table])
            con.execute("COMMIT")

    # ---------------------------------------------------------------- roles
    def save_roles(self, table: str, roles: Roles) -> list[str]:
        """Validate and store roles for a table; returns warnings, raises `RolesError` on errors."""
        errors, warnings = validate(roles, self.schema(table))
        if errors:
            raise RolesError(errors)
        with self.connect() as con:
            con.execute(f"INSERT OR REPLACE INTO {ROLES_TABLE} VALUES (?, ?, ?)",
                        [table, json.dumps(roles.to_dict()), datetime.now(timezone.utc).replace(tzinfo=None)])
        return warnings

    def load_roles(self, table: str) -> Roles | None:
        """The saved roles of a table, or None if it was never tagged."""
        self.require(table)
        with self.connect() as con:
            row = con.execute(f"SELECT roles FROM {ROLES_TABLE} WHERE table_name=?", [table]).fetchone()
        return Roles.from_dict(json.loads(row[0])) if row else None

    def require_roles(self, table: str) -> Roles:
        """Saved roles, or a clear error telling the user to tag the table first."""
        roles = self.load_roles(table)
        if roles is None:
            raise RolesError([f"table '{table}' has no roles yet: tag its columns first "
                              "(Roles page, or `deconfound tag --table ...`)"])
        return roles

    # ---------------------------------------------------------------- derived columns
    def write_column(self, table: str, name: str, values: np.ndarray, rowids: np.ndarray,
                     meta: dict | None = None, replace: bool = False) -> None:
        """Add a derived column (e.g. the deconfounded outcome), matched to rows by DuckDB rowid.

        The source columns are never altered; `meta` (method, estimate, ...) is recorded beside it.
        """
        schema = self.schema(table)
        check_table_name(name)
        if name in schema and not replace:
            raise IngestError(f"column '{name}' already exists in '{table}': choose another name or replace it")
        if len(values) != len(rowids):
            raise ValueError("values and rowids differ in length")
        frame = pd.DataFrame({"_rowid": np.asarray(rowids, dtype=np.int64),
                              "_value": np.asarray(values, dtype=np.float64)})
        with self.connect() as con:
            con.register("_incoming", frame)
            con.execute("BEGIN TRANSACTION")
            if name in schema:
                con.execute(f"ALTER TABLE {quote_ident(table)} DROP COLUMN {quote_ident(name)}")
            con.execute(f"ALTER TABLE {quote_ident(table)} ADD COLUMN {quote_ident(name)} DOUBLE")
            con.execute(f"UPDATE {quote_ident(table)} AS t SET {quote_ident(name)} = i._value "
                        "FROM _incoming AS i WHERE t.rowid = i._rowid")
            con.execute(f"INSERT OR REPLACE INTO {COLUMNS_TABLE} VALUES (?, ?, ?, ?)",
                        [table, name, json.dumps(meta or {}, default=str),
                         datetime.now(timezone.utc).replace(tzinfo=None)])
            con.execute("COMMIT")
            con.unregister("_incoming")

    def column_meta(self, table: str) -> dict[str, dict]:
        """Derived columns of a table -> what made them."""
        with self.connect() as con:
            rows = con.execute(f"SELECT column_name, meta FROM {COLUMNS_TABLE} WHERE table_name=?",
                               [table]).fetchall()
        return {name: json.loads(meta) for name, meta in rows}

    def snapshot(self, table: str, dest: str | Path, columns: Sequence[str] | None = None) -> Path:
        """Copy a table to a Parquet file (e.g. into a run folder, so a worker never opens this database)."""
        self.require(table)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        select = ", ".join(quote_ident(c) for c in columns) if columns else "*"
        with self.connect() as con:
            con.execute(f"COPY (SELECT {select} FROM {quote_ident(table)}) TO ? (FORMAT parquet)", [str(dest)])
        return dest


# -------------------------------------------------------------------- helpers
def first_line(exc: BaseException) -> str:
    """The first line of an exception's message."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def next_free_name(name: str, existing: set[str]) -> str:
    """name_2, name_3, ... : the first that is not taken."""
    i = 2
    while f"{name}_{i}"[:63] in existing:
        i += 1
    return f"{name}_{i}"[:63]


def detect_format(path: Path, display_name: str | None = None) -> str:
    """'csv' or 'parquet', from magic bytes first and the extension second; binary junk is refused."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head[:4] == b"PAR1":
        return "parquet"
    suffix = Path(display_name or path.name).suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        raise IngestError(f"{display_name or path.name} is named .parquet but is not a Parquet file")
    if b"\x00" in head:
        raise IngestError(f"{display_name or path.name} looks like a binary file, not CSV or Parquet: "
                          "export it as CSV (UTF-8) or Parquet and upload again")
    return "csv"


def detect_encoding(path: Path) -> str:
    """'utf-8' when the file's head decodes as UTF-8, else 'latin-1' (which decodes any byte)."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a multi-byte character cut at the sniff boundary
            return "latin-1"
    return "utf-8"


def load_csv(con: duckdb.DuckDBPyConnection, table: str, path: Path, delimiter: str, encoding: str) -> None:
    """Stream a CSV into `table` with an explicit dialect and strict mode: DuckDB's sniffer otherwise
    "repairs" ragged files by skipping rows or reading one wide column."""
    con.execute(f"CREATE TABLE {quote_ident(table)} AS SELECT * FROM read_csv(?, header=true, skip=0, delim=?, "
                "quote='\"', escape='\"', strict_mode=true, null_padding=false, encoding=?, max_line_size=?, "
                "sample_size=20480)", [str(path), delimiter, encoding, MAX_LINE_BYTES])


def detect_delimiter(path: Path, encoding: str) -> str:
    """The field delimiter among , TAB ; | — by csv.Sniffer on the first 64 KB, else by header counts."""
    with open(path, "r", encoding=encoding, errors="replace", newline="") as fh:
        sample = fh.read(SNIFF_BYTES)
    try:
        return csv.Sniffer().sniff(sample, delimiters=",\t;|").delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        counts = {d: first.count(d) for d in ",\t;|"}
        best = max(counts, key=counts.get)
        return best if counts[best] else ","


def read_header(path: Path, encoding: str, delimiter: str) -> list[str]:
    """The raw header names as written in the file (DuckDB would silently rename duplicates)."""
    with open(path, "r", encoding=encoding, errors="replace", newline="") as fh:
        row = next(csv.reader(fh, delimiter=delimiter), [])
    return [str(v).strip() for v in row]


def check_header(header: list[str]) -> None:
    """Refuse headers with duplicate or empty names: they make roles ambiguous."""
    if not header:
        raise IngestError("the file has no header row")
    lowered = [h.lower() for h in header]
    dupes = sorted({h for h in header if lowered.count(h.lower()) > 1})
    if dupes:
        raise IngestError(f"duplicate column names {', '.join(map(repr, dupes))}: rename them so each column "
                          "has a unique name")


def explain_duckdb_error(exc: duckdb.Error, name: str) -> str:
    """Turn DuckDB's reader errors into a message a user can act on."""
    text = str(exc)
    low = text.lower()
    if "maximum line size of" in low:
        return (f"{name}: a line is longer than {MAX_LINE_BYTES // 1_000_000} MB; shorten very long fields "
                "or upload Parquet")
    if "expected number of columns" in low or "parsing dialect" in low or "too many columns" in low or "column count" in low:
        where = re.search(r"[Ll]ine:?\s*(\d+)", text)
        at = f" (around line {where.group(1)})" if where else ""
        return f"{name}: rows have different numbers of fields{at}; fix the ragged rows or quote fields with delimiters"
    if "unicode" in low or "utf" in low or "encoding" in low:
        return f"{name}: the file's text encoding is not supported; save it as UTF-8 and upload again"
    if "parquet" in low:
        return f"{name}: not a readable Parquet file ({first_line(exc)})"
    return f"{name}: could not be read as CSV ({first_line(exc)})"
