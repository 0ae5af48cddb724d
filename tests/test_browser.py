"""A real browser: headless Debian Chromium driven by Playwright against `streamlit run app.py`."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "build" / "screenshots"

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed (make browser)")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    env = dict(os.environ, DECONFOUND_HOME=str(tmp_path / "home"), DECONFOUND_DB=str(tmp_path / "home" / "s.duckdb"))
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


def test_load_demo_and_tag_roles_in_chromium(server):
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
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
        browser.close()
    assert (SCREENSHOTS / "roles_saved.png").stat().st_size > 10_000
