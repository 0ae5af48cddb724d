"""The foundation CLI: the commands as written in the issue, --json, exit 2 on bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deconfound.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_tables_describe_tag(tmp_path, home, capsys):
    db = str(tmp_path / "cli.duckdb")
    csv = tmp_path / "logs.csv"
    csv.write_text("title,abstract,ctr,day,pop,region\nA,x,0.1,2024-01-01,1.0,W\nB,y,0.2,2024-01-02,2.0,E\n")
    code, out, _ = run(capsys, "ingest", str(csv), "--db", db, "--json")
    assert code == 0 and json.loads(out)["table"] == "logs"
    code, out, _ = run(capsys, "ingest", str(csv), "--db", db)
    assert code == 0 and "logs_2" in out
    code, out, _ = run(capsys, "ingest", str(csv), "--db", db, "--table", "logs", "--replace", "--json")
    assert json.loads(out)["replaced"] is True
    code, out, _ = run(capsys, "tables", "--db", db, "--json")
    assert {r["table"] for r in json.loads(out)} == {"logs", "logs_2"}
    code, out, _ = run(capsys, "tag", "--table", "logs", "--text", "title", "--context", "abstract",
                       "--outcome", "ctr", "--timestamp", "day", "--confounder", "pop",
                       "--instrument", "region", "--db", db, "--json")
    assert code == 0 and json.loads(out)["roles"]["instruments"] == ["region"]
    code, out, _ = run(capsys, "describe", "logs", "--db", db, "--json")
    payload = json.loads(out)
    assert payload["rows"] == 2 and payload["roles"]["confounders"] == ["pop"]


@pytest.mark.parametrize("argv, phrase", [
    (["ingest", "/no/such/file.csv"], "file not found"),
    (["describe", "missing"], "no table named"),
    (["tag", "--table", "missing", "--text", "a", "--context", "b", "--outcome", "c"], "no table named"),
    (["simulate", "--scenario", "weird", "--out", "x.csv"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_input_exit_2_one_line(tmp_path, home, capsys, argv, phrase):
    code, _, err = run(capsys, *argv, *([] if argv == ["frobnicate"] else ["--db", str(tmp_path / "x.duckdb")]))
    assert code == 2
    assert phrase in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_tag_non_numeric_outcome(tmp_path, home, capsys):
    db = str(tmp_path / "cli.duckdb")
    csv = tmp_path / "t.csv"
    csv.write_text("t,c,o\nA,x,high\n")
    run(capsys, "ingest", str(csv), "--db", db)
    code, _, err = run(capsys, "tag", "--table", "t", "--text", "t", "--context", "c", "--outcome", "o", "--db", db)
    assert code == 2 and "not numeric" in err


def test_console_script_subprocess_no_traceback(tmp_path):
    env = dict(os.environ, DECONFOUND_HOME=str(tmp_path / "h"))
    exe = Path(sys.executable).with_name("deconfound")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02" * 100)
    proc = subprocess.run([str(exe), "ingest", str(bad), "--db", str(tmp_path / "d.duckdb")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "binary" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([str(exe), "tables", "--db", str(tmp_path / "d.duckdb"), "--json"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and json.loads(proc.stdout) == []


def test_simulate_command_writes_csv(tmp_path, home, capsys):
    out = tmp_path / "sim.csv"
    code, text, _ = run(capsys, "simulate", "--scenario", "orthogonal", "--n", "300", "--seed", "3",
                        "--out", str(out), "--json")
    assert code == 0 and json.loads(text)["rows"] == 300
    import pandas as pd
    frame = pd.read_csv(out)
    assert len(frame) == 300 and {"context", "text", "outcome", "popularity", "team_region"} <= set(frame)


def test_demo_command_tags_tables(tmp_path, home, capsys):
    db = str(tmp_path / "demo.duckdb")
    code, out, _ = run(capsys, "demo", "--db", db, "--json")
    assert code == 0 and json.loads(out)["tables"] == ["demo_entangled", "demo_orthogonal"]
    code, out, _ = run(capsys, "describe", "demo_entangled", "--db", db, "--json")
    payload = json.loads(out)
    assert payload["rows"] >= 20000 and payload["roles"]["instruments"] == ["team_region"]
