"""The audit commands: `deconfound audit demo` loads the three seeded tables (the same rows every time), a marker
audit starts detached and shows in `audit jobs`, cancels and resumes by id, and `audit result` on an unfinished
audit is one sentence with exit 2."""

import json

from deconfound import audits, cli
from deconfound.sim import AUDIT_DEMOS, audit_demo_frame


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_demo_tables_are_seeded_and_tagged(store, capsys):
    code, out, _ = run(capsys, "audit", "demo", "--json", "--db", str(store.path))
    assert code == 0 and json.loads(out)["tables"] == list(AUDIT_DEMOS)
    qa = store.read_frame("demo_qa")
    assert len(qa) > 14_000 and qa["question_id"].nunique() == 6000
    assert store.load_roles("demo_ab").experiment == "test_id" and store.load_roles("demo_qa").context == "question"
    again = audit_demo_frame("demo_qa")
    assert again["answer"].equals(qa["answer"]) and (again["score"].to_numpy() == qa["score"].to_numpy()).all()
    ab = store.read_frame("demo_ab")
    assert ab["test_id"].nunique() == 6000 and ab.groupby("test_id").size().between(2, 4).all()
    assert {"test_id", "headline", "clicks", "impressions", "created_at"} <= set(ab.columns)


def test_marker_audit_detached_listed_cancelled_resumed(store, capsys):
    run(capsys, "audit", "demo", "--db", str(store.path))
    code, out, err = run(capsys, "audit", "marker", "--table", "demo_qa", "--rule", "weekday=Mon", "--marker",
                         "Happy Monday!", "--set", "model.tiny_layers=2", "--set", "model.tiny_width=64",
                         "--set", "sft.max_steps=500", "--train-seeds", "0", "--gen-seeds", "0", "--detach",
                         "--json", "--db", str(store.path))
    assert code == 0, err
    job_id = json.loads(out)["job_id"]
    code, out, _ = run(capsys, "audit", "jobs", "--json")
    assert [j["id"] for j in json.loads(out)] == [job_id] and json.loads(out)[0]["rule"] == "weekday=Mon"
    config = json.loads((audits.audits_dir() / job_id / "config.json").read_text())
    assert config["train_seeds"] == [0] and config["model"]["tiny_width"] == 64 and config["sft"]["max_steps"] == 500
    code, out, err = run(capsys, "audit", "result", job_id)
    assert code == 2 and "has no generations yet" in err and len(err.strip().splitlines()) == 1
    code, out, _ = run(capsys, "audit", "cancel", job_id, "--json")
    assert code == 0 and json.loads(out)["state"] == "cancelled"
    code, out, _ = run(capsys, "audit", "resume", job_id, "--detach", "--json")
    assert code == 0 and json.loads(out)["state"] in ("queued", "running")
    code, out, _ = run(capsys, "audit", "cancel", job_id, "--json")
    assert code == 0 and json.loads(out)["state"] == "cancelled"
    code, _, err = run(capsys, "audit", "cancel", job_id)
    assert code == 2 and "nothing to cancel" in err
    code, _, err = run(capsys, "audit", "resume", "no-such-audit")
    assert code == 2 and "no job" in err
