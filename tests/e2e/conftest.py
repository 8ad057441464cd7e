"""Browser tests: the real app (`streamlit run app.py`) driven by Playwright in Debian's Chromium.

Playwright never downloads a browser here: it launches /usr/bin/chromium (`make chromium` installs it).
Without that binary the tests are skipped with the reason shown in the summary (pytest -ra).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
STARTUP_TIMEOUT_S = 90


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def e2e_home(tmp_path_factory) -> Path:
    """OAVIZ_HOME with a tiny synthetic default cohort (12 subjects × 2 visits at 64 px)."""
    from oaviz.data.synthetic import generate_cohort

    home = tmp_path_factory.mktemp("oaviz-e2e-home")
    generate_cohort(home / "cohorts" / "synthetic-knee", joint="knee", subjects=12, visits=(0, 12), size=64, seed=0)
    return home


@contextmanager
def serve_streamlit(script: str | Path, env: dict, log: Path, *, timeout_s: float = STARTUP_TIMEOUT_S):
    """`streamlit run SCRIPT` headless on a free port with ``env``; yields its URL once
    /_stcore/health says ok (output in ``log``), stops the server afterwards."""
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true", "--server.port",
           str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.runOnSave", "false"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer /_stcore/health within {timeout_s} s:\n"
                            f"{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def _serve(home: Path, log_dir: Path, *, demo: bool):
    """The app (`app.py`) with OAVIZ_HOME=home, in the public-demo mode or not."""
    env = {**os.environ, "OAVIZ_HOME": str(home), "STREAMLIT_CLIENT_SHOW_ERROR_DETAILS": "full"}
    env.pop("OAVIZ_DEMO", None)
    if demo:
        env["OAVIZ_DEMO"] = "1"
    with serve_streamlit("app.py", env, log_dir / "server.log") as url:
        yield url


@pytest.fixture(scope="session")
def app_url(e2e_home, tmp_path_factory):
    """The app (not in demo mode) on e2e_home."""
    with _serve(e2e_home, tmp_path_factory.mktemp("streamlit-log"), demo=False) as url:
        yield url


@pytest.fixture(scope="session")
def demo_home(e2e_home, tmp_path_factory) -> Path:
    """A home of its own for the public-demo server (its visitors' spaces and jobs stay out of e2e_home)."""
    home = tmp_path_factory.mktemp("oaviz-e2e-demo-home")
    shutil.copytree(e2e_home / "cohorts", home / "cohorts")
    return home


@pytest.fixture(scope="session")
def demo_url(demo_home, tmp_path_factory):
    """The app as a public demo (OAVIZ_DEMO=1) on demo_home."""
    with _serve(demo_home, tmp_path_factory.mktemp("streamlit-demo-log"), demo=True) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (run `make chromium` as root): browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture()
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    try:
        yield pg
    finally:
        context.close()


def _wait_idle(pg, settle_s: float = 0.3) -> None:
    for _ in range(2):  # twice: a finished run may be followed at once by a rerun it asked for
        time.sleep(settle_s)
        pg.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
        pg.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')")


@pytest.fixture()
def wait_idle():
    """``wait_idle(page)``: wait until the script run has finished and the page has rendered (no skeletons)."""
    return _wait_idle


def trace_lasso(page, plot, corners) -> None:
    """Pick a plotly chart's Lasso tool and trace ``corners`` (fractions of the plot area ``plot``)
    with the mouse held down; the caller releases it (``page.mouse.up()``), e.g. to time the answer."""
    box = plot.bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + w / 2, y0 + h / 2)  # shows the modebar; maps open in the zoom tool (clicks work there)
    page.locator('[data-testid="stPlotlyChart"] .modebar-btn[data-title="Lasso Select"]').first.click()
    page.mouse.move(x0 + corners[0][0] * w, y0 + corners[0][1] * h)
    page.mouse.down()
    for fx, fy in corners[1:]:
        page.mouse.move(x0 + fx * w, y0 + fy * h, steps=8)
