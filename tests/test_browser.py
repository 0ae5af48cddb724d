"""A real browser: headless Debian Chromium driven by Playwright against `streamlit run app.py`.

The long test walks the analyst's whole flow (issue 15): upload two files one after another, delete one, tag,
diagnose, deconfound, launch and cancel a smoke run (then resume it to the end), compare, download the model
as a zip — and checks at each step what used to go wrong: the proposed table name following the file, a delete
confirmation that does not stay armed, statuses that agree with what they describe, the same training rule on
Roles and Train, the sidebar's "Home".
"""

import io
import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from deconfound.data import Store
from deconfound.sim import simulate

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "build" / "screenshots"
# A smoke run small enough for a test (a 2-layer model, a few steps), as tests/test_page_train.py shrinks it.
TINY = {"model.tiny_layers": 2, "model.tiny_width": 64, "model.tiny_vocab": 1000, "sft.max_steps": 30,
        "rl.max_steps": 4, "n_eval_prompts": 10, "threads": 1}

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (make browser)")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = dict(os.environ, DECONFOUND_HOME=str(tmp_path / "home"), DECONFOUND_DB=str(tmp_path / "home" / "s.duckdb"),
               DECONFOUND_TRAIN_OVERRIDES=json.dumps(TINY), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.headless", "true"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("streamlit did not start: " + proc.stdout.read().decode()[-2000:])
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture
def browser_page():
    from playwright.sync_api import expect, sync_playwright
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=60_000)  # a page on a busy 2-core machine can take that long
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def test_load_demo_and_tag_roles_in_chromium(server, browser_page):
    from playwright.sync_api import expect
    page = browser_page
    page.goto(server, wait_until="networkidle")
    expect(page.get_by_text("DeconfoundLM Studio").first).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Load demo data").click()
    expect(page.get_by_text("Loaded and tagged").first).to_be_visible(timeout=60_000)
    page.screenshot(path=str(SCREENSHOTS / "home_demo_loaded.png"), full_page=True)

    page.goto(server + "/Roles", wait_until="networkidle")
    expect(page.get_by_text("Saved roles for this table").first).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Save roles").click()
    expect(page.get_by_text("Roles saved").first).to_be_visible(timeout=30_000)
    page.screenshot(path=str(SCREENSHOTS / "roles_saved.png"), full_page=True)
    assert (SCREENSHOTS / "roles_saved.png").stat().st_size > 10_000


# ------------------------------------------------------------------ the whole flow
def go(page, label: str):
    """Follow a link of the sidebar's navigation (same browser session, so the working table stays)."""
    page.get_by_test_id("stSidebar").get_by_role("link", name=re.compile(re.escape(label))).click()
    page.wait_for_url(re.compile(r"/" + (label.split("· ")[-1] if "·" in label else "") + r"(\?|$)"))


def idle(page, timeout: float = 120):
    """Wait until the script run a click started has finished (the app root's script state)."""
    page.wait_for_timeout(400)
    page.locator("[data-testid=stApp][data-test-script-state=notRunning]").wait_for(timeout=timeout * 1000)


def pick(page, label: str, option: str):
    """Choose `option` in the selectbox labelled `label` (typed first: long option lists are virtualised)."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    box.press_sequentially(option[:12])
    page.get_by_role("option", name=option, exact=True).click()
    idle(page)


def add(page, label: str, option: str):
    """Add `option` to the multiselect labelled `label`."""
    box = page.get_by_role("combobox", name=label, exact=True)
    box.click()
    box.press_sequentially(option)
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    idle(page)


def checklist(page) -> dict[str, bool]:
    """The home page's six steps: name -> ticked."""
    rows = {}
    for name in ("Data", "Roles", "Diagnostics", "Deconfound", "Train", "Compare"):
        row = page.get_by_test_id("stHorizontalBlock").filter(
            has=page.get_by_role("link", name=re.compile(rf"\d\. {name}$")))
        rows[name] = "✅" in row.first.inner_text()
    return rows


def upload(page, path: Path, expected_name: str):
    from playwright.sync_api import expect
    page.locator("input[type=file]").set_input_files(str(path))
    name_box = page.get_by_role("textbox", name="Table name")
    expect(name_box).to_have_value(expected_name)          # fix 1: the name follows the file being uploaded
    page.get_by_role("button", name="Load into database").click()
    expect(page.get_by_text(f"into '{expected_name}'").first).to_be_visible()
    idle(page)


@pytest.mark.slow
def test_the_analysts_flow_in_chromium(server, browser_page, tmp_path):
    from playwright.sync_api import expect
    page = browser_page
    started = time.monotonic()
    home = tmp_path / "home"
    store = Store(home / "s.duckdb")
    logs = simulate(scenario="entangled", n=300, seed=2)
    tweets, airbnb = tmp_path / "tweets_clean.csv", tmp_path / "airbnb.csv"
    logs.to_csv(tweets, index=False)
    logs.drop(columns=["context", "abstract_quality"]).to_csv(airbnb, index=False)  # no context column

    # The sidebar's first entry is the home page, called Home.
    page.goto(server, wait_until="networkidle")
    nav = page.get_by_test_id("stSidebar").get_by_role("link")
    expect(nav.first).to_have_text(re.compile("Home"))
    assert "app" not in [t.strip() for t in nav.all_inner_texts()]

    # ---- Data: two files one after another; the second is proposed and loaded under its own name.
    go(page, "1 · Data")
    upload(page, tweets, "tweets_clean")
    upload(page, airbnb, "airbnb")
    assert sorted(store.tables()) == ["airbnb", "tweets_clean"]
    expect(page.get_by_role("combobox", name="Table", exact=True)).to_have_value("airbnb")

    # ---- Roles and Train say the same thing about a table without a context column.
    go(page, "2 · Roles")
    expect(page.get_by_role("combobox", name="Table", exact=True)).to_have_value("airbnb")
    sentence = ("'airbnb' cannot be trained on yet: no context column is tagged")
    expect(page.get_by_text(sentence).first).to_be_visible()
    page.get_by_role("button", name="Save roles").click()
    expect(page.get_by_text("Roles saved").first).to_be_visible()
    go(page, "5 · Train")
    expect(page.get_by_text(sentence).first).to_be_visible()
    expect(page.get_by_role("button", name="Launch")).to_be_disabled()

    # ---- Data: delete airbnb; the confirmation does not carry over to the next table.
    go(page, "1 · Data")
    danger = page.get_by_test_id("stExpander").filter(has_text="Delete this table")
    danger.locator("summary").click()
    danger.get_by_text("Yes, delete").click()
    idle(page)
    danger.get_by_role("button", name="Delete").click()
    expect(page.get_by_text(re.compile(r"^Deleted airbnb\.$")).first).to_be_visible()   # fix 2: it says so…
    idle(page)
    assert store.tables() == ["tweets_clean"]
    expect(page.get_by_role("combobox", name="Table", exact=True)).to_have_value("tweets_clean")
    assert "airbnb" not in page.url                                      # …the URL forgets the table…
    danger = page.get_by_test_id("stExpander").filter(has_text="Delete this table")
    danger.locator("summary").click()
    expect(danger.get_by_text("Yes, delete")).to_be_visible()
    expect(danger.locator("input[type=checkbox]")).not_to_be_checked()   # …and nothing stays armed
    expect(danger.get_by_role("button", name="Delete")).to_be_disabled()
    page.screenshot(path=str(SCREENSHOTS / "flow_1_data.png"))

    # ---- Roles: tag the confounder and its instrument.
    go(page, "2 · Roles")
    add(page, "Confounders", "popularity")
    add(page, "Instruments", "team_region")
    expect(page.get_by_text("cannot be trained on yet")).to_have_count(0)
    page.get_by_role("button", name="Save roles").click()
    expect(page.get_by_text("Roles saved").first).to_be_visible()
    go(page, "Home")
    idle(page)
    assert checklist(page) == {"Data": True, "Roles": True, "Diagnostics": False, "Deconfound": False,
                               "Train": False, "Compare": False}     # fix 4: not ticked before it ran

    # ---- Diagnostics: the verdicts agree with the leakage section (no score column yet: neither audits one).
    go(page, "3 · Diagnostics")
    expect(page.get_by_text("Temporal leakage of a score").first).to_be_visible(timeout=180_000)
    idle(page, 180)
    expect(page.get_by_text("No score column was audited for temporal leakage yet").first).to_be_visible()
    expect(page.get_by_text("No score column is chosen yet").first).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "flow_3_diagnostics.png"))
    go(page, "Home")
    idle(page)
    assert checklist(page)["Diagnostics"] and not checklist(page)["Deconfound"]

    # ---- Deconfound: save the IV-corrected outcome.
    go(page, "4 · Deconfound")
    page.get_by_role("button", name="Save corrected column").click()
    expect(page.get_by_text("outcome_deconf_iv").first).to_be_visible()
    idle(page)
    assert "outcome_deconf_iv" in store.schema("tweets_clean")
    go(page, "Home")
    idle(page)
    assert checklist(page)["Deconfound"]

    # Diagnostics again: the corrected outcome is audited by default, and the verdict is that audit's.
    go(page, "3 · Diagnostics")
    expect(page.get_by_role("combobox", name="Score column")).to_have_value("outcome_deconf_iv", timeout=180_000)
    idle(page, 180)
    expect(page.get_by_text("No score column was audited")).to_have_count(0)
    verdicts = page.get_by_test_id("stAlert").filter(has_text="outcome_deconf_iv")
    expect(verdicts).to_have_count(2)                                   # in the verdicts and in the section

    # ---- Train: launch a two-method smoke run with a note, cancel it, resume it to the end.
    go(page, "5 · Train")
    methods = page.get_by_role("combobox", name="Reward methods to compare")
    page.get_by_test_id("stMultiSelect").get_by_role("button", name=re.compile("Clear all")).first.click()
    idle(page)
    add(page, "Reward methods to compare", "naive")
    add(page, "Reward methods to compare", "deconfounded")
    page.get_by_role("textbox", name="Run name (optional)").fill("iv vs naive")
    page.get_by_role("textbox", name="Note (optional)").fill("first try on the tweets")
    page.get_by_role("textbox", name="Note (optional)").press("Enter")
    idle(page)
    page.get_by_role("button", name="Launch").click()
    expect(page.get_by_text("Started run").first).to_be_visible()
    expect(page.get_by_text("Status: running").first).to_be_visible(timeout=90_000)
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_text("Status: cancelled").first).to_be_visible(timeout=60_000)
    idle(page)
    page.wait_for_timeout(2500)                                          # a refresh of the run list
    # fix 4: nothing on the page still calls the run queued or running
    main = page.get_by_test_id("stMain")
    assert not re.search(r"\b(queued|running)\b", main.inner_text()), main.inner_text()[:2000]
    expect(page.get_by_role("combobox", name="Run", exact=True)).to_have_value(re.compile("iv vs naive"))
    grid = page.get_by_test_id("stDataFrame").first
    expect(grid).to_contain_text("cancelled")
    expect(grid).to_contain_text("first try on the tweets")
    page.screenshot(path=str(SCREENSHOTS / "flow_5_cancelled.png"))

    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_text("Status: completed").first).to_be_visible(timeout=600_000)
    idle(page)
    expect(page.get_by_test_id("stDataFrame").first).to_contain_text("completed")
    overlay = page.get_by_test_id("stExpander").filter(has_text="Compare the reward curves of runs")
    overlay.locator("summary").click()
    expect(overlay.get_by_test_id("stVegaLiteChart")).to_be_visible()   # the run's RL curves, one panel a method
    # The methods picked stay picked after a reload (the URL keeps them).
    page.reload(wait_until="networkidle")
    expect(methods).to_be_visible()
    chosen = page.get_by_test_id("stMultiSelect").first.inner_text()
    assert "naive" in chosen and "deconfounded" in chosen and "oracle" not in chosen
    page.screenshot(path=str(SCREENSHOTS / "flow_5_completed.png"))
    go(page, "Home")
    idle(page)
    assert checklist(page) == dict.fromkeys(["Data", "Roles", "Diagnostics", "Deconfound", "Train", "Compare"], True)

    # ---- Compare: the run's models; the trained model downloads as a zip of a Hugging Face folder.
    go(page, "6 · Compare")
    expect(page.get_by_text("What this run shows").first).to_be_visible(timeout=180_000)
    idle(page, 180)
    pick(page, "Model to export", "RL: deconfounded (DeconfoundLM)")
    with page.expect_download(timeout=180_000) as download:
        page.get_by_role("button", name="Download as a Hugging Face folder (zip)").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes()))
    names = archive.namelist()
    root = names[0].split("/")[0]
    assert root.endswith("rl_deconfounded-merged")
    assert {f"{root}/README.md", f"{root}/config.json"} <= set(names)
    assert any(n.endswith(".safetensors") for n in names)
    assert "library_name: transformers" in archive.read(f"{root}/README.md").decode()
    page.screenshot(path=str(SCREENSHOTS / "flow_6_compare.png"))
    print(f"browser flow took {time.monotonic() - started:.0f} s")
