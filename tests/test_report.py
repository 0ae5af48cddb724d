"""Exports of a run: self-contained HTML report, generations CSV, metrics JSON, HF model folder + card."""

import html
import json
import re

import numpy as np
import pandas as pd
import pytest
from test_evaluation import make_run

from deconfound import evaluate as ev
from deconfound.causal import fit_iv
from deconfound.cli import main
from deconfound.jsonio import append_jsonl
from deconfound.sim import DEMO_ROLES, quality_scores

MALICIOUS = "<script>alert('x')</script> <img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """make_run + a real IV estimate.json, RL curves in metrics.jsonl and one hostile generation."""
    root = make_run(tmp_path_factory.mktemp("report") / "run", n=80, seeds=(0,))
    data = pd.read_parquet(root / "data.parquet")
    (root / "estimate.json").write_text(json.dumps(fit_iv(data, DEMO_ROLES).to_dict()))
    for step in range(5):
        for method in ("naive", "deconfounded"):
            append_jsonl(root / "metrics.jsonl", {"stage": f"rl/{method}", "step": step * 10,
                                                  "reward": step * (0.2 if method == "naive" else 0.3), "kl": 0.01})
    gens = pd.read_csv(root / "generations.csv")
    first = gens.index[(gens["model"] == "rl_naive") & (gens["prompt_id"] == 0)][0]
    gens.loc[first, "text"] = MALICIOUS
    gens.to_csv(root / "generations.csv", index=False)
    return root


@pytest.fixture(scope="module")
def result(run):
    return ev.compare(run, ev.EvalConfig(n_boot=200))


def test_html_report_is_self_contained_and_complete(run, result, tmp_path):
    out = ev.write_report(run, tmp_path / "r.html", result=result)
    text = out.read_text(encoding="utf-8")
    # opens offline: no scripts, no stylesheets or images fetched from anywhere
    assert "<script" not in text.lower() and "<link" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", text, re.I)
    assert "http://" not in text and "https://" not in text
    # the hostile generation is shown as text, not run
    assert html.escape(MALICIOUS) in text and "<img" not in text
    # conclusion, Table 1, Table 2, charts, estimate, training curves, samples
    assert html.escape(result.conclusion()) in text
    for model in result.models.values():
        assert html.escape(model.label) in text
    assert text.count("<table") >= 3 and text.count("<svg") >= 4 and "<polyline" in text
    assert "IV (2SLS)" in text and "popularity" in text  # the estimate summary
    assert "rl/deconfounded" in text
    naive = result.models["rl_naive"]
    assert f"{naive.marker_counts['East']} ({naive.marker_rates['East']:.1%})" in text
    assert "<mark" in text  # markers highlighted in the sample generations


def test_report_includes_reward_scatter_when_points_exist(run, result, tmp_path):
    points = pd.DataFrame({"method": ["naive"] * 20 + ["deconfounded"] * 20,
                           "truth": np.tile(np.linspace(0, 1, 20), 2),
                           "reward": np.r_[np.linspace(1, 0, 20), np.linspace(0, 2, 20)]})
    text = ev.write_report(run, tmp_path / "r.html", result=result, reward_points=points).read_text()
    assert "r = -1.00" in text and "r = 1.00" in text and text.count("<circle") == 40


def test_export_generations_and_metrics(run, result, tmp_path):
    csv_path = ev.export_generations(run, tmp_path / "g.csv", result=result)
    frame = pd.read_csv(csv_path, keep_default_na=False)
    gens = ev.load_generations(run)
    assert len(frame) == len(gens)
    assert {"prompt_id", "context", "model", "seed", "text", "quality", "length", "marker_East"} <= set(frame.columns)
    assert np.allclose(frame["quality"], quality_scores(frame["text"]))
    naive = frame[frame["model"] == "rl_naive"]
    assert naive["marker_East"].mean() == pytest.approx(result.models["rl_naive"].marker_rates["East"])

    payload = json.loads(ev.export_metrics(run, tmp_path / "m.json", result=result).read_text())
    assert payload["models"]["sft"]["n"] == 80
    assert payload["reward_truth_corr"]["deconfounded"] == {"train": 0.93, "valid": 0.9}
    assert payload["estimate"]["method"] == "iv"
    assert payload["rewards"]["naive"]["backbone"] == "tfidf"
    assert payload["training"]["rl/naive"]["step"] == 40


def test_downloads_are_the_exported_files_and_write_nothing(run, result, tmp_path):
    """generations_csv / metrics_json / render_report (the dashboard's deferred downloads) give what the
    export functions write, without writing anything into the run."""
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    csv_text = ev.generations_csv(run, result)
    payload = json.loads(ev.metrics_json(run, result))
    page = ev.render_report(str(run), result)
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before
    assert csv_text == ev.export_generations(run, tmp_path / "g.csv", result=result).read_text()
    written = json.loads(ev.export_metrics(run, tmp_path / "m.json", result=result).read_text())
    assert {k: v for k, v in payload.items() if k != "exported_at"} == \
        {k: v for k, v in written.items() if k != "exported_at"}
    assert page.startswith("<!DOCTYPE html>") and html.escape(result.conclusion()) in page


def _tiny_run_models(run):
    """models/rl_deconfounded: a tiny full model; models/rl_naive: a LoRA adapter on it with non-zero B."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from deconfound import models
    corpus = pd.read_parquet(run / "data.parquet")["text"].tolist()[:200]
    base = models.build_tiny_model(corpus, run / "models" / "rl_deconfounded", layers=1, width=64, vocab_size=300)
    torch.manual_seed(0)
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), models.lora_config(r=4, alpha=8))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    adapter = run / "models" / "rl_naive"
    peft_model.save_pretrained(adapter)
    models.record_adapter_base(adapter, base)
    return base, adapter, peft_model


def test_export_model_merged_and_adapter_with_model_card(run, result, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    base, adapter, peft_model = _tiny_run_models(run)

    merged = ev.export_model(run, "rl_naive", tmp_path / "merged", merge=True, result=result)
    assert not (merged / "adapter_config.json").exists()
    loaded = AutoModelForCausalLM.from_pretrained(merged)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    ids = tokenizer("Great win tonight", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = peft_model.eval()(ids).logits
        plain = AutoModelForCausalLM.from_pretrained(base)(ids).logits
        got = loaded(ids).logits
    assert torch.allclose(got, expected, atol=1e-4)           # the adapter is really merged in
    assert not torch.allclose(got, plain, atol=1e-3)

    card = (merged / "README.md").read_text()
    estimate = json.loads((run / "estimate.json").read_text())
    assert card.startswith("---\nlibrary_name: transformers")
    assert "## Confounders removed" in card and "popularity" in card
    assert f"{estimate['coef']['popularity']:.4f}" in card      # coefficient with its CI
    lo, hi = estimate["conf_int"]["popularity"]
    assert f"{lo:.4f} to {hi:.4f}" in card
    assert "demo_entangled" in card and f"{pd.read_parquet(run / 'data.parquet').shape[0]:,} rows" in card
    assert "| valid | -0.080 |" in card                         # the naive reward's metrics
    naive = result.models["rl_naive"]
    assert f"{naive.quality_mean:.3f}" in card and "East teams" in card

    kept = ev.export_model(run, "rl_naive", tmp_path / "adapter", merge=False, result=result)
    assert (kept / "adapter_config.json").exists() and "library_name: peft" in (kept / "README.md").read_text()
    with pytest.raises(Exception, match="not empty"):
        ev.export_model(run, "rl_naive", tmp_path / "adapter", merge=False, result=result)
    with pytest.raises(Exception, match="no model 'rl_odin'"):
        ev.export_model(run, "rl_odin", tmp_path / "x")


def test_model_downloads_as_a_zip_of_the_hf_folder(run, result, tmp_path):
    """The Compare page's download: the folder `export_model` writes, zipped, and nothing left on the server."""
    import io
    import zipfile

    import torch
    from transformers import AutoModelForCausalLM
    if not (run / "models" / "rl_naive").exists():
        _tiny_run_models(run)
    before = sorted(p.name for p in run.iterdir())
    data = ev.export_model_zip(run, "rl_naive", merge=True, result=result)
    assert sorted(p.name for p in run.iterdir()) == before                   # the temporary folder is gone
    archive = zipfile.ZipFile(io.BytesIO(data))
    root = f"{run.name}-rl_naive-merged"
    assert {f"{root}/README.md", f"{root}/config.json"} <= set(archive.namelist())
    assert all(name.startswith(root + "/") for name in archive.namelist())
    archive.extractall(tmp_path / "unzipped")
    folder = ev.export_model(run, "rl_naive", tmp_path / "folder", merge=True, result=result)
    assert {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} == \
        {n.removeprefix(root + "/") for n in archive.namelist()}            # the same files as the CLI's folder
    unzipped = AutoModelForCausalLM.from_pretrained(tmp_path / "unzipped" / root)
    written = AutoModelForCausalLM.from_pretrained(folder)
    ids = torch.tensor([[1, 5, 9, 2]])
    with torch.no_grad():
        assert torch.equal(unzipped(ids).logits, written(ids).logits)
    card = archive.read(f"{root}/README.md").decode()
    assert card.startswith("---\nlibrary_name: transformers") and "## Confounders removed" in card
    adapter = zipfile.ZipFile(io.BytesIO(ev.export_model_zip(run, "rl_naive", merge=False, result=result)))
    assert f"{run.name}-rl_naive/adapter_config.json" in adapter.namelist()


def test_one_colour_per_model_and_marker_group_everywhere(run, result):
    """Charts, highlights and the report read their colours from one palette (evaluate.palette)."""
    from deconfound.rewards import METHODS
    colors = ev.model_colors(result.models)
    assert len(set(ev.model_colors(["base", "sft"] + [f"rl_{m}" for m in METHODS]).values())) == len(METHODS) + 2
    assert ev.model_color("rl/naive") == ev.model_color("rl_naive") == ev.model_color("naive")
    assert ev.model_color("dpo_naive") != ev.model_color("rl_naive")
    quality = ev.quality_chart(result).to_dict()
    scale = quality["layer"][0]["encoding"]["color"]["scale"]
    assert scale == {"domain": [m.label for m in result.models.values()], "range": list(colors.values())}
    groups = ev.group_colors(result.marker_groups)
    markers = ev.marker_chart(result).to_dict()
    assert markers["spec"]["layer"][0]["encoding"]["color"]["scale"] == {"domain": list(groups),
                                                                        "range": list(groups.values())}
    assert not set(groups.values()) & set(ev.METHOD_COLORS.values())      # a group never looks like a model
    curves = ev.reward_curves_chart(ev.training_curves(run)).to_dict()["encoding"]["color"]["scale"]
    assert curves["range"] == [ev.model_color(stage) for stage in curves["domain"]]
    overlay = ev.run_curves_chart({"run a": ev.training_curves(run), "run b": ev.training_curves(run)}).to_dict()
    assert overlay["spec"]["encoding"]["strokeDash"]["scale"]["domain"] == ["run a", "run b"]
    table = ev.generations_table_html(ev.load_generations(run), list(result.models), result.marker_groups)
    east = ev.highlight_color(groups["East"])
    assert east.startswith(groups["East"]) and f"background:{east}" in table
    page = ev.render_report(run, result)
    for name in ("rl_naive", "rl_deconfounded"):
        assert f'fill="{colors[name]}"' in page                           # the report's bars, same colours
    assert f"background:{east}" in page


def test_cli_report_and_export(run, tmp_path, capsys):
    out = tmp_path / "cli.html"
    assert main(["report", str(run), "--out", str(out), "--n-boot", "100"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    capsys.readouterr()
    assert main(["export", str(run), "--out", str(tmp_path / "exp"), "--n-boot", "100", "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert set(written) == {"generations", "metrics", "report"}
    assert {p.name for p in (tmp_path / "exp").iterdir()} == {"generations.csv", "metrics.json", "report.html"}


@pytest.mark.slow
def test_real_tiny_run_compares_reports_and_exports(store, tmp_path):
    """End to end on a real (tiny) pipeline run: evaluation, report with scatter, merged model export."""
    from transformers import AutoModelForCausalLM

    from deconfound import runs
    from deconfound.sim import simulate
    store.ingest_frame(simulate(scenario="entangled", n=400, seed=1), "sim")
    store.save_roles("sim", DEMO_ROLES)
    overrides = {"methods": "naive,deconfounded", "model.tiny_layers": 2, "model.tiny_width": 64,
                 "model.tiny_vocab": 1000, "sft.max_steps": 6, "sft.batch_size": 8, "rl.max_steps": 4,
                 "rl.prompts_per_step": 2, "rl.num_generations": 4, "rl.max_completion_length": 8,
                 "n_eval_prompts": 30, "gen_max_new_tokens": 8, "threads": 1}
    job = runs.create_job(runs.preset_config("smoke", "sim", store=store, overrides=overrides), store)
    runs.run_pipeline(job.run_dir)
    result = ev.compare(job.run_dir, ev.EvalConfig(n_boot=200))
    assert list(result.models) == ["base", "sft", "rl_naive", "rl_deconfounded"]
    assert all(m.n == 30 for m in result.models.values())
    assert set(result.reward_truth_corr) == {"naive", "deconfounded"}
    points = ev.reward_truth_points(job.run_dir)
    assert set(points["method"]) == {"naive", "deconfounded"}
    for method, frame in points.groupby("method"):  # the rows the run validated its rewards on
        r = np.corrcoef(frame["reward"], frame["truth"])[0, 1]
        assert r == pytest.approx(result.reward_truth_corr[method]["valid"], abs=1e-6)
    html_text = ev.write_report(job.run_dir, result=result).read_text()
    assert "<circle" in html_text and "<polyline" in html_text
    out = ev.export_model(job.run_dir, "rl_deconfounded", tmp_path / "export", result=result)
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2
    assert "## Confounders removed" in (out / "README.md").read_text()
