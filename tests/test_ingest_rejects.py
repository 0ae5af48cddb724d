"""Messy CSVs: bare newlines inside unquoted text (as in a real export from R), the error that says how many lines
and which, --skip-bad-rows keeping every bad line with its number and raw text, and the bad inputs around it."""

import json

import pytest

from deconfound.cli import main
from deconfound.data import BadLinesError, Store, rejects_table_name
from deconfound.errors import IngestError

HEADER = "id,text,retweets,created_at\n"
# Lines 4-5 and 8-9 are records broken by a bare newline inside unquoted text; line 6-7 is a quoted multi-line
# field, which is valid CSV and must load as one row.
MESSY = (HEADER
         + "1,good morning,5,2024-01-01 10:00:00\n"
         + "2,plain text,7,2024-01-02 10:00:00\n"
         + "3,broken\n"
         + "text here,9,2024-01-03 11:00:00\n"
         + '4,"quoted\nmulti-line",2,2024-01-04 11:00:00\n'
         + "5,another\n"
         + "break,1,2024-01-05 12:00:00\n"
         + "6,last one,3,2024-01-06 12:00:00\n")


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_bad_lines_are_counted_and_named_and_nothing_is_kept(tmp_path, store):
    store.ingest(write(tmp_path, "keep.csv", "a,b\n1,2\n"), table="tweets")
    with pytest.raises(BadLinesError) as info:
        store.ingest(write(tmp_path, "tweets.csv", MESSY), table="tweets", replace=True)
    error = info.value
    # Lines 4, 5, 8 and 9 of the file are the broken halves; the quoted multi-line record (6-7) is fine.
    assert error.bad_lines == 4 and error.lines == [4, 5, 8, 9] and error.good_rows == 4
    message = str(error)
    assert len(message.splitlines()) == 1 and "4 lines" in message and "lines 4, 5, 8, 9" in message
    assert "--skip-bad-rows" in message and "different numbers of fields" in message
    # Existing table untouched, no rejects table left behind.
    assert store.tables() == ["tweets"] and store.preview("tweets").to_dict("list") == {"a": [1], "b": [2]}
    assert store.rejected_count("tweets") == 0


def test_skip_bad_rows_loads_good_rows_and_keeps_every_bad_line(tmp_path, store):
    result = store.ingest(write(tmp_path, "tweets.csv", MESSY), skip_bad_rows=True)
    assert (result.rows, result.rows_rejected, result.rejected_lines) == (4, 4, [4, 5, 8, 9])
    assert result.to_dict()["rows_loaded"] == 4 and result.rejects_table == rejects_table_name("tweets")
    assert "4 lines rejected" in result.summary()
    frame = store.read_frame("tweets")
    assert frame["id"].tolist() == [1, 2, 4, 6]
    assert frame.loc[frame["id"] == 4, "text"].item() == "quoted\nmulti-line"  # quoted newlines keep loading
    assert str(store.schema("tweets")["created_at"]).startswith("TIMESTAMP")
    rejects = store.rejects("tweets")
    assert rejects["line"].tolist() == [4, 5, 8, 9]
    assert rejects["raw_line"].tolist() == ["3,broken", "text here,9,2024-01-03 11:00:00", "5,another",
                                            "break,1,2024-01-05 12:00:00"]
    assert store.describe("tweets").rows_rejected == 4 and store.describe("tweets").to_dict()["rows_rejected"] == 4
    assert store.tables() == ["tweets"]  # the rejects table is hidden from the list
    # Replacing the table replaces its rejects; dropping it drops them.
    again = store.ingest(write(tmp_path, "clean.csv", HEADER + "9,fine,1,2024-02-01 00:00:00\n"), table="tweets",
                         replace=True, skip_bad_rows=True)
    assert again.rows_rejected == 0 and store.rejected_count("tweets") == 0 and store.rejects("tweets").empty
    store.ingest(write(tmp_path, "tweets.csv", MESSY), table="tweets", replace=True, skip_bad_rows=True)
    store.drop("tweets")
    with store.connect() as con:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
    assert rejects_table_name("tweets") not in names


def test_skip_bad_rows_on_a_clean_file_rejects_nothing(tmp_path, store):
    result = store.ingest(write(tmp_path, "clean.csv", 'a,b\n1,"x, y"\n2,"multi\nline"\n'), skip_bad_rows=True)
    assert result.rows == 2 and result.rows_rejected == 0 and result.rejects_table is None
    assert "0 rows rejected" in result.summary()


@pytest.mark.parametrize("skip", [False, True])
def test_a_file_where_every_line_is_bad(tmp_path, store, skip):
    store.ingest(write(tmp_path, "keep.csv", "a,b\n1,2\n"), table="keep")
    with pytest.raises(IngestError, match="none of its lines could be read") as info:
        store.ingest(write(tmp_path, "bad.csv", "a,b,c\n1\n2\n3\n"), table="keep", replace=True, skip_bad_rows=skip)
    assert not isinstance(info.value, BadLinesError) and len(str(info.value).splitlines()) == 1
    assert store.tables() == ["keep"] and store.row_count("keep") == 1


def test_a_bad_line_after_the_type_sample_is_rejected_not_mistyped(tmp_path, store):
    rows = "".join(f"{i},text {i},{i % 7}\n" for i in range(30_000))
    path = write(tmp_path, "late.csv", "id,text,y\n" + rows + "30000,late\nbreak,4\n")
    result = store.ingest(path, skip_bad_rows=True)
    assert result.rows == 30_000 and result.rows_rejected == 2 and result.rejected_lines == [30_002, 30_003]
    assert store.schema("late")["y"] == "BIGINT"


def test_cli_ingest_says_rows_loaded_and_rejected(tmp_path, home, capsys):
    path = write(tmp_path, "tweets.csv", MESSY)
    assert main(["ingest", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: tweets.csv: 4 lines could not be parsed") and len(err.splitlines()) == 1
    assert main(["ingest", str(path), "--skip-bad-rows", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["rows_loaded"] == 4 and payload["rows_rejected"] == 4 and payload["rejected_lines"] == [4, 5, 8, 9]
    assert main(["describe", "tweets", "--rejects", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["rows_rejected"] == 4 and [r["line"] for r in described["rejects"]] == [4, 5, 8, 9]
    clean = write(tmp_path, "clean.csv", "a\n1\n")
    assert main(["ingest", str(clean), "--skip-bad-rows"]) == 0
    assert "0 rows rejected" in capsys.readouterr().out
    assert Store().rejected_count("clean") == 0
