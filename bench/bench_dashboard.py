"""What an open dashboard costs: (a) a smoke run's time with the dashboard open against the CLI alone, and (b) the
server's CPU while a tab sits idle (issue 15: a file watcher walking the checkout once burned a core, and a
two-method smoke run took ~20 minutes beside it instead of 3–4).

(a) Rounds alternate (CLI alone, then with the dashboard; the next round the other way round), so load drifts hit
    both alike. Each run is `deconfound train --table demo_entangled --preset smoke --methods naive,deconfounded
    --detach` in its own fresh home, waited for with `runs.wait_job`; "with the dashboard" means `streamlit run
    app.py` (the shipped .streamlit/config.toml) serving that home and one headless Chromium tab on the Train page
    of the table, opened once the run is listed (so the page polls the live run every 2 s, as a user watching it
    would). The time is the worker's own start-to-end (status.json). Goal: median ratio ≤ 1.1.
(b) The server with one tab open on a page, left alone: CPU seconds (user + system) of the server process over
    `--idle-seconds`, after the page has settled; the tab's Chromium processes are reported beside it.

    python bench/bench_dashboard.py --only idle            # (b): about 1.5 minutes
    python bench/bench_dashboard.py --only idle --also-watcher   # (b) again with Streamlit's file watcher on
    python bench/bench_dashboard.py --only smoke           # (a): 3 rounds × 2 smoke runs (~25 min on 2 cores)
    python bench/bench_dashboard.py                        # both; results in bench/results/dashboard.{json,md}
    python bench/bench_dashboard.py --dry-run              # seconds-long check that it starts and stops cleanly

Needs Debian's Chromium (/usr/bin/chromium, `make browser`) and Playwright (the test extras).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RESULTS = ROOT / "bench" / "results"
CHROMIUM = "/usr/bin/chromium"
TABLE = "demo_entangled"
# --dry-run: a run of seconds (a 2-layer model, a few steps), as the page tests shrink it.
TINY = ["model.tiny_layers=2", "model.tiny_width=64", "model.tiny_vocab=1000", "sft.max_steps=6", "rl.max_steps=2",
        "n_eval_prompts=6", "max_reward_rows=2000", "threads=1"]


# ------------------------------------------------------------------ processes
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def home_env(home: Path) -> dict:
    """The environment of one isolated studio home (database, runs)."""
    return dict(os.environ, DECONFOUND_HOME=str(home), DECONFOUND_DB=str(home / "studio.duckdb"),
                PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
                TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")


def cli(home: Path, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "deconfound.cli", *args], cwd=ROOT, env=home_env(home),
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"deconfound {' '.join(args)} failed: {out.stderr.strip()[-500:]}")
    return out.stdout


def fresh_home(parent: Path, name: str) -> Path:
    """A home holding the demo tables, tagged (what a user has after `make demo`)."""
    home = parent / name
    home.mkdir(parents=True)
    cli(home, "demo")
    return home


@contextmanager
def dashboard(home: Path, watcher: str | None = None):
    """`streamlit run app.py` on a free port serving `home` (with `watcher`, Streamlit's file watcher set so
    instead of the shipped config's), stopped (its whole process group) on exit."""
    port = free_port()
    flags = ["--server.fileWatcherType", watcher] if watcher else []
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                             str(port), "--server.address", "127.0.0.1", "--server.headless", "true", *flags],
                            cwd=ROOT, env=home_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("streamlit did not start")
                time.sleep(0.3)
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


@contextmanager
def browser_tab(url: str):
    """One headless Chromium tab on `url`, waited until the page has run; yields (page, Chromium's pids)."""
    import psutil
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="networkidle")
        page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=120_000)
        # Chromium runs under Playwright's driver, a child of this process: its processes are our descendants.
        pids = [p.pid for p in psutil.Process().children(recursive=True) if "chrom" in p.name().lower()]
        try:
            yield page, pids
        finally:
            browser.close()


def cpu_seconds(pids) -> float:
    """User + system CPU seconds of these processes (those still alive)."""
    import psutil
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


# ------------------------------------------------------------------ (b) idle CPU
def bench_idle(work: Path, seconds: float, path: str, settle: float, watcher: str | None = None) -> dict:
    """CPU seconds of the server (and of the tab's Chromium) over `seconds` with one tab open and left alone."""
    home = fresh_home(work, f"idle-{watcher or 'shipped'}")
    with dashboard(home, watcher) as (server, url), browser_tab(url + path) as (_, chrome):
        time.sleep(settle)
        server_before, chrome_before, start = cpu_seconds([server.pid]), cpu_seconds(chrome), time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        server_cpu = cpu_seconds([server.pid]) - server_before
        chrome_cpu = cpu_seconds(chrome) - chrome_before
    return {"page": path or "/", "file_watcher": watcher or "shipped config (none)", "seconds": round(elapsed, 1),
            "settle_s": settle, "venv_in_checkout": (ROOT / ".venv").is_dir(),
            "server_cpu_s": round(server_cpu, 3), "server_cpu_share": round(server_cpu / elapsed, 4),
            "chromium_cpu_s": round(chrome_cpu, 3)}


# ------------------------------------------------------------------ (a) smoke run beside the dashboard
def smoke_run(home: Path, methods: str, extra: list[str], with_dashboard: bool) -> dict:
    """One smoke run in `home`, alone or with the dashboard (server + one tab on the Train page) open."""
    from deconfound import runs
    sets = [arg for item in extra for arg in ("--set", item)]
    args = ["train", "--table", TABLE, "--preset", "smoke", "--methods", methods, "--detach", "--json", *sets]
    if not with_dashboard:
        job_id = json.loads(cli(home, *args))["job_id"]
        status = runs.wait_job(job_id, poll_s=1.0, runs_root=home / "runs")
        return timing(status, with_dashboard)
    with dashboard(home) as (server, url):
        job_id = json.loads(cli(home, *args))["job_id"]
        with browser_tab(f"{url}/Train?table={TABLE}"):
            status = runs.wait_job(job_id, poll_s=1.0, runs_root=home / "runs")
        server_cpu = cpu_seconds([server.pid])
    return timing(status, with_dashboard) | {"server_cpu_s": round(server_cpu, 1)}


def timing(status: dict, with_dashboard: bool) -> dict:
    if status.get("state") != "completed":
        raise RuntimeError(f"the smoke run ended {status.get('state')}: {status.get('message')}")
    start = datetime.fromisoformat(status["started_at"])
    end = datetime.fromisoformat(status["ended_at"])
    return {"with_dashboard": with_dashboard, "seconds": (end - start).total_seconds(), "job": status["id"]}


def bench_smoke(work: Path, rounds: int, methods: str, extra: list[str]) -> dict:
    runs_done = []
    for i in range(rounds):
        order = (False, True) if i % 2 == 0 else (True, False)  # alternate which goes first
        for with_dashboard in order:
            home = fresh_home(work, f"smoke-{i}-{'dash' if with_dashboard else 'cli'}")
            result = smoke_run(home, methods, extra, with_dashboard)
            print(f"round {i + 1}: {'dashboard' if with_dashboard else 'CLI alone'} {result['seconds']:.1f} s",
                  flush=True)
            runs_done.append(result | {"round": i + 1})
            shutil.rmtree(home, ignore_errors=True)
    alone = [r["seconds"] for r in runs_done if not r["with_dashboard"]]
    dash = [r["seconds"] for r in runs_done if r["with_dashboard"]]
    ratio = statistics.median(dash) / statistics.median(alone)
    return {"methods": methods, "rounds": rounds, "runs": runs_done, "cli_median_s": statistics.median(alone),
            "dashboard_median_s": statistics.median(dash), "ratio": round(ratio, 3), "goal": 1.1,
            "met": ratio <= 1.1}


# ------------------------------------------------------------------ report
def machine_info() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        if subprocess.run(["git", "status", "--porcelain", "--", "src", "pages", "ui", "app.py", ".streamlit"],
                          cwd=ROOT, capture_output=True, text=True).stdout.strip():
            commit += " + uncommitted changes"
    except (subprocess.CalledProcessError, FileNotFoundError):
        commit = "unknown"
    import streamlit
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "streamlit": streamlit.__version__, "commit": commit,
            "load_average_at_start": round(os.getloadavg()[0], 2), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def write_markdown(report: dict, path: Path) -> None:
    m = report["machine"]
    lines = ["# The dashboard's cost beside training (bench/bench_dashboard.py)", "",
             f"Machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, Streamlit {m['streamlit']}; commit "
             f"`{m['commit']}`; load average at start {m['load_average_at_start']}; {m['date']}.", ""]
    for key in ("idle", "idle_watcher_auto"):
        if key not in report:
            continue
        idle = report[key]
        venv = "with" if idle["venv_in_checkout"] else "without"
        lines += [f"## Idle server with one tab open — file watcher: {idle['file_watcher']}", "",
                  f"The checkout {venv} a `.venv` inside (a fresh clone after `make demo` has one). One headless "
                  f"Chromium tab on `{idle['page']}`, left alone {idle['settle_s']:.0f} s, then measured for "
                  f"{idle['seconds']:.0f} s: the server process used **{idle['server_cpu_s']:.2f} CPU seconds** "
                  f"({idle['server_cpu_share']:.2%} of one core); the tab's Chromium processes "
                  f"{idle['chromium_cpu_s']:.2f} s.", ""]
    if "smoke" in report:
        smoke = report["smoke"]
        lines += ["## A smoke run with the dashboard open vs the CLI alone", "",
                  f"Methods {smoke['methods']}, {smoke['rounds']} alternating rounds; the worker's start-to-end time.",
                  "", "| round | CLI alone (s) | dashboard open (s) |", "|---|---|---|"]
        for i in range(1, smoke["rounds"] + 1):
            cells = {r["with_dashboard"]: f"{r['seconds']:.1f}" for r in smoke["runs"] if r["round"] == i}
            lines.append(f"| {i} | {cells.get(False, '–')} | {cells.get(True, '–')} |")
        lines += ["", f"Median {smoke['cli_median_s']:.1f} s alone, {smoke['dashboard_median_s']:.1f} s with the "
                  f"dashboard open: ratio **{smoke['ratio']:.3f}** (goal ≤ {smoke['goal']}: "
                  f"{'met' if smoke['met'] else 'not met'}).", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["idle", "smoke"], help="run one of the two measurements")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of (a) (default 3)")
    parser.add_argument("--methods", default="naive,deconfounded", help="reward methods of the smoke run")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="how long (b) measures")
    parser.add_argument("--page", default="/Train", help="the page the idle tab shows (default the Train page)")
    parser.add_argument("--also-watcher", action="store_true",
                        help="(b) a second time with Streamlit's file watcher on (the old default), for comparison")
    parser.add_argument("--dry-run", action="store_true",
                        help="seconds-long: 3 idle seconds and one tiny run each way; writes nothing to bench/results")
    parser.add_argument("--out", type=Path, default=RESULTS / "dashboard", help="results path without suffix")
    args = parser.parse_args()
    if not os.path.exists(CHROMIUM):
        sys.exit(f"{CHROMIUM} not found: install Debian's Chromium (make browser)")
    rounds, idle_s, settle, extra = args.rounds, args.idle_seconds, 10.0, []
    if args.dry_run:
        rounds, idle_s, settle, extra = 1, 3.0, 1.0, TINY
    report = {"machine": machine_info(), "dry_run": args.dry_run}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        work = Path(tmp)
        if args.only in (None, "idle"):
            report["idle"] = bench_idle(work, idle_s, "" if args.page == "/" else f"{args.page}?table={TABLE}",
                                        settle)
            print(f"idle: server {report['idle']['server_cpu_s']:.2f} CPU s over {report['idle']['seconds']:.0f} s")
            if args.also_watcher:
                report["idle_watcher_auto"] = bench_idle(work, idle_s, "" if args.page == "/" else
                                                         f"{args.page}?table={TABLE}", settle, watcher="auto")
                print(f"idle, watcher on: server {report['idle_watcher_auto']['server_cpu_s']:.2f} CPU s")
        if args.only in (None, "smoke"):
            report["smoke"] = bench_smoke(work, rounds, args.methods, extra)
            print(f"smoke: ratio {report['smoke']['ratio']:.3f}")
    out = args.out if not args.dry_run else Path(tempfile.gettempdir()) / "bench-dashboard-dry-run"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    write_markdown(report, out.with_suffix(".md"))
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
