"""Real round trips through a DuckDB file, and a battery of malformed inputs."""

import numpy as np
import pandas as pd
import pytest

from deconfound.data import Store, safe_table_name
from deconfound.errors import IngestError, NotFoundError


def write(tmp_path, name, content, mode="w", encoding="utf-8"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding=encoding)
    return path


def test_csv_round_trip_survives_reopen(tmp_path, store):
    path = write(tmp_path, "Logs 2024.csv",
                 'headline,abstract,clicks,posted\n"Big win, again",Team wins,0.12,2024-01-01 10:00:00\n'
                 '"Multi\nline",Other,0.3,2024-01-02 11:00:00\n')
    result = store.ingest(path)
    assert result.table == "logs_2024" and result.rows == 2
    reopened = Store(store.path)  # a new process would see the same
    frame = reopened.preview("logs_2024")
    assert frame["headline"].tolist() == ["Big win, again", "Multi\nline"]
    schema = reopened.schema("logs_2024")
    assert schema["clicks"] == "DOUBLE" and schema["posted"].startswith("TIMESTAMP")
    desc = reopened.describe("logs_2024")
    assert desc.rows == 2 and set(desc.columns["column"]) == {"headline", "abstract", "clicks", "posted"}


def test_parquet_tsv_semicolon_and_latin1(tmp_path, store):
    pq = tmp_path / "data.parquet"
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}).to_parquet(pq)
    assert store.ingest(pq).rows == 3
    assert store.schema("data") == {"a": "BIGINT", "b": "VARCHAR"}
    store.ingest(write(tmp_path, "tabs.tsv", "a\tb\n1\tx\n2\ty\n"))
    assert store.schema("tabs") == {"a": "BIGINT", "b": "VARCHAR"}
    store.ingest(write(tmp_path, "semi.csv", "a;b\n1;x\n"))
    assert list(store.schema("semi")) == ["a", "b"]
    result = store.ingest(write(tmp_path, "latin.csv", "name,y\ncafé crème,1\n", encoding="latin-1"))
    assert result.encoding == "latin-1"
    assert store.preview("latin")["name"][0] == "café crème"


def test_clash_never_overwrites_silently(tmp_path, store):
    first = write(tmp_path, "t.csv", "a\n1\n")
    second = write(tmp_path, "t2.csv", "a\n2\n3\n")
    store.ingest(first, table="logs")
    result = store.ingest(second, table="logs")
    assert result.table == "logs_2" and result.renamed_from == "logs"
    assert store.row_count("logs") == 1
    result = store.ingest(second, table="logs", replace=True)
    assert result.table == "logs" and result.replaced and store.row_count("logs") == 2


BAD_INPUTS = {
    "empty.csv": b"",
    "header_only.csv": b"a,b,c\n",
    "binary.csv": bytes(range(256)) * 40,
    "ragged.csv": b"a,b\n1,2\n3,4,5\n6,7\n",
    "dupes.csv": b"a,b,a\n1,2,3\n",
    "fake.parquet": b"a,b\n1,2\n",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_malformed_inputs_give_clear_errors_and_leave_tables_untouched(tmp_path, store, name):
    store.ingest(write(tmp_path, "keep.csv", "a,b\n1,2\n"), table="keep")
    with pytest.raises(IngestError) as info:
        store.ingest(write(tmp_path, name, BAD_INPUTS[name]), table="keep", replace=True)
    message = str(info.value)
    assert len(message.splitlines()) == 1 and len(message) < 300
    assert "Traceback" not in message
    assert store.tables() == ["keep"] and store.preview("keep").to_dict("list") == {"a": [1], "b": [2]}


def test_specific_messages(tmp_path, store):
    cases = {"empty.csv": "empty", "header_only.csv": "no data rows", "binary.csv": "binary",
             "ragged.csv": "different numbers of fields", "dupes.csv": "duplicate column names"}
    for name, phrase in cases.items():
        with pytest.raises(IngestError, match=phrase):
            store.ingest(write(tmp_path, name, BAD_INPUTS[name]))


def test_ten_megabyte_field_is_a_clear_error(tmp_path, store):
    path = write(tmp_path, "huge.csv", "a,b\n1," + "x" * 10_000_000 + "\n")
    with pytest.raises(IngestError, match="longer than"):
        store.ingest(path)
    assert store.tables() == []


def test_hostile_names(tmp_path, store):
    path = write(tmp_path, "x.csv", "a\n1\n")
    for bad in ["x; DROP TABLE keep; --", 'quo"te', "../escape", "", "1abc", "_deconfound_roles"]:
        with pytest.raises(IngestError, match="not allowed|reserved"):
            store.ingest(path, table=bad)
    assert safe_table_name("../../etc/pa'ss\"wd.csv") == "pa_ss_wd"
    assert safe_table_name("2024 report.CSV") == "t_2024_report"
    weird = tmp_path / "it's \"quoted\" ; drop.csv"
    weird.write_text("a\n1\n")
    assert store.ingest(weird).table == "it_s_quoted_drop"
    with pytest.raises(NotFoundError):
        store.preview("nope; DROP TABLE x")


def test_write_column_keeps_source_and_records_meta(tmp_path, store):
    store.ingest(write(tmp_path, "t.csv", "y,p\n1.0,1\n2.0,2\n3.0,3\n"), table="t")
    frame = store.read_frame("t", ["y", "p"], with_rowid=True)
    store.write_column("t", "y_corrected", frame["y"] - 0.5 * frame["p"], frame["_rowid"],
                       meta={"method": "iv", "coef": {"p": 0.5}})
    again = Store(store.path)
    out = again.read_frame("t")
    assert out["y"].tolist() == [1.0, 2.0, 3.0]
    assert np.allclose(out["y_corrected"], [0.5, 1.0, 1.5])
    assert again.column_meta("t")["y_corrected"]["method"] == "iv"
    with pytest.raises(IngestError, match="already exists"):
        again.write_column("t", "y_corrected", out["y"], frame["_rowid"])


def test_drop_and_snapshot(tmp_path, store):
    store.ingest(write(tmp_path, "t.csv", "a,b\n1,x\n2,y\n"), table="t")
    snap = store.snapshot("t", tmp_path / "run" / "data.parquet")
    assert pd.read_parquet(snap)["a"].tolist() == [1, 2]
    store.drop("t")
    assert store.tables() == []
    with pytest.raises(NotFoundError):
        store.drop("t")


def test_large_csv_streams_without_pandas(tmp_path, store, monkeypatch):
    path = tmp_path / "big.csv"
    with open(path, "w") as fh:
        fh.write("id,text,y\n")
        for i in range(200_000):
            fh.write(f'{i},"headline {i % 977}",{(i % 13) / 13:.4f}\n')
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: (_ for _ in ()).throw(AssertionError("pandas used")))
    result = store.ingest(path)
    assert result.rows == 200_000
    assert store.describe("big").rows == 200_000


def test_latin1_byte_far_into_the_file(tmp_path, store):
    path = tmp_path / "late.csv"
    path.write_bytes(b"name,y\n" + b"".join(b"plain%d,1\n" % i for i in range(20_000)) + "café,2\n".encode("latin-1"))
    result = store.ingest(path)
    assert result.encoding == "latin-1" and result.rows == 20_001
    assert store.read_frame("late")["name"].iloc[-1] == "café"
