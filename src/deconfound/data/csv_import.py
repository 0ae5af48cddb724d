"""Reading a CSV into DuckDB: the dialect (encoding, delimiter, header), the strict load, and the lines that do
not parse.

A clean file is read once, strictly (DuckDB's sniffer otherwise "repairs" ragged files by skipping rows or reading
one wide column). When some lines cannot be parsed — real exports hold bare newlines inside unquoted text — a
second pass with `ignore_errors` + `store_rejects` loads the good rows and records every bad line with its line
number and raw text (DuckDB's reject tables, several errors per line). Without `skip_bad_rows` that pass only
counts them for the error message (`BadLinesError`: how many, which lines, how to go on); with it the good rows
are kept and the bad lines go to a rejects table beside the table (`rejects_table_name`).
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ..errors import IngestError

META_PREFIX = "_deconfound_"
SNIFF_BYTES = 64 * 1024
MAX_LINE_BYTES = 2_000_000  # DuckDB's own default; a longer field is reported, not truncated
SHOWN_LINES = 5  # line numbers an error message names
# DuckDB's reject error types, in words (the message names what went wrong with the bad lines).
REJECT_KINDS = {
    "MISSING COLUMNS": "rows have different numbers of fields",
    "TOO MANY COLUMNS": "rows have different numbers of fields",
    "CAST": "values that do not fit their column's type",
    "UNQUOTED VALUE": "stray quote characters",
    "INVALID ENCODING": "bytes that are not valid text",
    "LINE SIZE OVER MAXIMUM": f"lines longer than {MAX_LINE_BYTES // 1_000_000} MB",
}
_TMP_ERRORS, _TMP_SCANS = "deconfound_reject_errors", "deconfound_reject_scans"


def rejects_table_name(table: str) -> str:
    """Where the rejected lines of `table` live: a metadata table named after it (hidden from the table list,
    dropped and replaced with it)."""
    return f"{META_PREFIX}rejects_{table}"


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB (doubling embedded quotes)."""
    return '"' + str(name).replace('"', '""') + '"'


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class BadLinesError(IngestError):
    """Some lines of a CSV could not be parsed: how many, the first line numbers, and how many rows are good
    (the Data page offers to skip them right under this error)."""

    def __init__(self, message: str, bad_lines: int = 0, lines: list[int] | None = None, good_rows: int = 0):
        super().__init__(message)
        self.bad_lines, self.lines, self.good_rows = bad_lines, list(lines or []), good_rows


@dataclass
class CsvLoad:
    """What one CSV load did: the encoding used and the rejected lines (count, first line numbers)."""

    encoding: str
    rejected: int = 0
    lines: list[int] = field(default_factory=list)


def detect_format(path: Path, display_name: str | None = None) -> str:
    """'csv' or 'parquet', from magic bytes first and the extension second; binary junk is refused."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head[:4] == b"PAR1":
        return "parquet"
    suffix = Path(display_name or path.name).suffix.lower()
    if suffix in (".parquet", ".pq"):
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


def _read_csv_sql(rejects: bool) -> str:
    """The read_csv call: an explicit dialect and strict mode. With `rejects` the column types are given
    (a sniffer that meets a broken line gives up, or "repairs" the file by taking a later line as its header)
    and bad lines are skipped and recorded."""
    extra = (f", auto_detect=false, columns=?, ignore_errors=true, store_rejects=true, "
             f"rejects_table='{_TMP_ERRORS}', rejects_scan='{_TMP_SCANS}'") if rejects else ""
    return ("read_csv(?, header=true, skip=0, delim=?, quote='\"', escape='\"', strict_mode=true, "
            f"null_padding=false, encoding=?, max_line_size=?, sample_size=20480{extra})")


def load_csv(con: duckdb.DuckDBPyConnection, table: str, path: Path, delimiter: str, encoding: str) -> None:
    """Stream a CSV into `table` strictly: any line that does not parse raises."""
    con.execute(f"CREATE TABLE {quote_ident(table)} AS SELECT * FROM {_read_csv_sql(False)}",
                [str(path), delimiter, encoding, MAX_LINE_BYTES])


def load_csv_file(con: duckdb.DuckDBPyConnection, table: str, path: Path, name: str, skip_bad_rows: bool,
                  rejects_table: str) -> CsvLoad:
    """Load a CSV into `table`: one strict pass for a clean file; otherwise the good rows, with the bad lines
    kept in `rejects_table` when `skip_bad_rows`, else a `BadLinesError` (nothing is kept). Raises
    `IngestError` with a sentence a user can act on for anything else."""
    encoding = detect_encoding(path)
    delimiter = detect_delimiter(path, encoding)
    header = read_header(path, encoding, delimiter)
    check_header(header)
    try:
        load_csv(con, table, path, delimiter, encoding)
        names = [r[0] for r in con.execute(f"DESCRIBE {quote_ident(table)}").fetchall()]
        if names == header:
            return CsvLoad(encoding=encoding)
    except duckdb.Error as exc:
        low = str(exc).lower()
        if "maximum line size of" in low:
            raise IngestError(explain_duckdb_error(exc, name)) from exc
        if encoding == "utf-8" and "not utf-8 encoded" in low:
            # Only the head was checked for UTF-8 (a full Python pass would cost more than the load); DuckDB
            # finds bad bytes further down, and Latin-1 decodes any byte.
            con.execute(f"DROP TABLE IF EXISTS {quote_ident(table)}")
            return load_csv_file_as(con, table, path, name, skip_bad_rows, rejects_table, "latin-1", delimiter,
                                    header)
    # Some line does not parse, or the sniffer "repaired" the file (its column names are not the header's).
    con.execute(f"DROP TABLE IF EXISTS {quote_ident(table)}")
    return load_csv_file_as(con, table, path, name, skip_bad_rows, rejects_table, encoding, delimiter, header)


def load_csv_file_as(con, table: str, path: Path, name: str, skip_bad_rows: bool, rejects_table: str,
                     encoding: str, delimiter: str, header: list[str]) -> CsvLoad:
    """The careful load of `load_csv_file`: types from a clean sample, every bad line recorded (a file whose
    bad bytes show it is not UTF-8 after all is read again as Latin-1)."""
    columns = sniff_types(con, path, encoding, delimiter, header)
    load = load_csv_skipping(con, table, path, delimiter, encoding, columns, rejects_table if skip_bad_rows else None)
    if encoding == "utf-8" and con.execute(f"SELECT count(*) FROM temp.{_TMP_ERRORS} "
                                           "WHERE error_type = 'INVALID ENCODING'").fetchone()[0]:
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(table)}")
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(rejects_table)}")
        return load_csv_file_as(con, table, path, name, skip_bad_rows, rejects_table, "latin-1", delimiter, header)
    good = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0]
    if load.rejected and (good == 0 or not skip_bad_rows):
        message = bad_lines_message(name, load, int(good), reject_kinds(con))
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(table)}")
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(rejects_table)}")
        if good == 0:
            raise IngestError(message)
        raise BadLinesError(message, bad_lines=load.rejected, lines=load.lines, good_rows=int(good))
    return load


def sniff_types(con, path: Path, encoding: str, delimiter: str, header: list[str],
                max_bytes: int = 2_000_000) -> dict[str, str]:
    """Column name -> DuckDB type, sniffed by DuckDB from a clean sample: the records of the file's first
    `max_bytes` that have as many fields as the header (Python's csv reader drops the broken ones). Date and
    time types are kept only where every sampled value parses without a custom format (the full load reads
    ISO dates); anything undecidable is VARCHAR."""
    with open(path, "r", encoding=encoding, errors="replace", newline="") as fh:
        sample = fh.read(max_bytes)
    records = list(csv.reader(io.StringIO(sample), delimiter=delimiter))[1:]
    if len(sample) == max_bytes and records:
        records = records[:-1]  # the last record may be cut at the sample's end
    good = [r for r in records if len(r) == len(header)]
    types = {h: "VARCHAR" for h in header}
    if not good:
        return types
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(good)
    try:
        rel = con.read_csv(io.BytesIO(buffer.getvalue().encode("utf-8")), header=True, sep=",", quotechar='"')
        sniffed = [str(t) for t in rel.types]
    except duckdb.Error:
        return types
    if len(sniffed) != len(header):
        return types
    for i, (name, kind) in enumerate(zip(header, sniffed)):
        if kind.upper().startswith(("DATE", "TIMESTAMP", "TIME")):
            values = [r[i] for r in good if r[i].strip()]
            bad = con.execute(f"SELECT count(*) FROM (SELECT unnest(?::VARCHAR[]) AS v) WHERE TRY_CAST(v AS {kind}) "
                              "IS NULL", [values]).fetchone()[0]
            kind = kind if bad == 0 else "VARCHAR"
        types[name] = kind
    return types


def load_csv_skipping(con: duckdb.DuckDBPyConnection, table: str, path: Path, delimiter: str, encoding: str,
                      columns: dict[str, str], rejects_table: str | None) -> CsvLoad:
    """Load the lines that parse (with the given column types) into `table`; count the others and (with
    `rejects_table`) keep them there as (line, error, message, raw_line), one row per bad line."""
    for tmp in (_TMP_ERRORS, _TMP_SCANS):
        con.execute(f"DROP TABLE IF EXISTS temp.{tmp}")
    con.execute(f"CREATE TABLE {quote_ident(table)} AS SELECT * FROM {_read_csv_sql(True)}",
                [str(path), delimiter, encoding, MAX_LINE_BYTES, columns])
    # DuckDB numbers records, which drifts from the file's lines after a quoted multi-line field: the line a
    # user finds in an editor comes from the byte position where the bad line starts.
    starts = [int(r[0]) for r in con.execute(f"SELECT DISTINCT line_byte_position FROM temp.{_TMP_ERRORS} "
                                             "ORDER BY 1").fetchall()]
    rejected = len(starts)
    numbers = physical_lines(path, starts if rejects_table else starts[:SHOWN_LINES])
    lines = [numbers[p] for p in starts[:SHOWN_LINES]]
    if rejects_table and rejected:
        import pandas as pd
        con.register("_deconfound_line_numbers", pd.DataFrame({"pos": list(numbers), "line": list(numbers.values())}))
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(rejects_table)}")
        con.execute(f"CREATE TABLE {quote_ident(rejects_table)} AS SELECT n.line AS line, string_agg(DISTINCT "
                    f"e.error_type, '; ' ORDER BY e.error_type) AS error, min(e.error_message) AS message, "
                    f"min(e.csv_line) AS raw_line FROM temp.{_TMP_ERRORS} e JOIN _deconfound_line_numbers n "
                    "ON e.line_byte_position = n.pos GROUP BY n.line ORDER BY n.line")
        con.unregister("_deconfound_line_numbers")
    return CsvLoad(encoding=encoding, rejected=int(rejected), lines=lines)


def physical_lines(path: Path, positions: list[int], chunk: int = 8 << 20) -> dict[int, int]:
    """The 1-based line number of the file at each byte position (newlines counted in one streamed pass)."""
    out: dict[int, int] = {}
    wanted = sorted(set(positions))
    if not wanted:
        return out
    newlines, offset, i = 0, 0, 0
    with open(path, "rb") as fh:
        while i < len(wanted):
            block = fh.read(chunk)
            if not block:
                break
            while i < len(wanted) and wanted[i] <= offset + len(block):
                out[wanted[i]] = newlines + block.count(b"\n", 0, wanted[i] - offset) + 1
                i += 1
            newlines += block.count(b"\n")
            offset += len(block)
    for pos in wanted[i:]:
        out[pos] = newlines + 1
    return out


def reject_kinds(con: duckdb.DuckDBPyConnection) -> str:
    """What went wrong with most of the lines the last skipping load set aside, in words."""
    row = con.execute(f"SELECT error_type, count(*) AS n FROM temp.{_TMP_ERRORS} GROUP BY error_type "
                      "ORDER BY n DESC LIMIT 1").fetchone()
    return REJECT_KINDS.get(row[0], str(row[0]).lower()) if row else "unreadable lines"


def bad_lines_message(name: str, load: CsvLoad, good_rows: int, kinds: str) -> str:
    """One sentence: how many lines are bad and why, the first line numbers, and how to go on."""
    shown = ", ".join(str(n) for n in load.lines) + (", …" if load.rejected > len(load.lines) else "")
    what = "line" if load.rejected == 1 else "lines"
    if good_rows == 0:
        return (f"{name}: none of its lines could be read ({load.rejected:,} bad {what}: {kinds}; e.g. {what} "
                f"{shown}); check that it is a CSV with a header row and one record per line")
    return (f"{name}: {load.rejected:,} {what} could not be parsed ({kinds}; {what} {shown}): fix them, or load "
            f"the {good_rows:,} good rows and set the bad lines aside with --skip-bad-rows")


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
