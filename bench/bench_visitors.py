"""Many visitors of the public demo: interaction latency and server memory with 1, then N concurrent sessions.

Starts `streamlit run app.py` with OAVIZ_DEMO=1 on a private OAVIZ_HOME whose default cohort is the
repository's (data/cohorts/synthetic-knee, linked, never written), warms every page once (not
measured: the pages are then served from the caches), then
  1. one headless Chromium session clicks through every page ``--rounds`` times;
  2. ``--sessions`` sessions (one browser context each) do the same at the same time;
  3. all close, and the server's RSS is read again ``--settle`` seconds later.
An interaction is a click on a page's navigation link until the page has run and rendered (script
idle, no skeleton, its title shown). Beside it, the server's answers: from the click to the first and to
the last ``script_finished`` message the page's websocket received before it was idle (the first is the
page's own run; later ones are reruns the browser asked for while drawing it, e.g. a chart reporting
its size, so they wait on the browser), and the server's own script runs (``OAVIZ_RUN_TIMES``: each run's
wall and CPU time on the server, from its start to its end). Prints p50/p95 latency per phase and the server's RSS with no
session, one session, per extra session, and after they closed (issue 17's targets: p95 < 1 s,
< 100 MB per extra session, back within 20 % of the one-session figure).

    .venv/bin/python bench/bench_visitors.py [--sessions 8] [--rounds 2] [--settle 60] [--json out.json]

Needs /usr/bin/chromium (`make chromium`); without it the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from oaviz.ui.frame import RUN_TIMES_ENV  # noqa: E402
from oaviz.ui.navigation import PAGES  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
IDLE_JS = """(title) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;
  const h1 = document.querySelector('h1');
  return !!h1 && h1.innerText.trim().endsWith(title);
}"""


# ----------------------------------------------------------------- the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_home(reuse: Path | None = None) -> Path:
    """A fresh OAVIZ_HOME whose default cohort links to the repository's (read-only use); ``reuse``: an
    earlier run's home, whose disk caches make the warm-up shorter."""
    if reuse is not None:
        return reuse
    src = (REPO / "data" / "cohorts" / "synthetic-knee").resolve()
    if not (src / "cohort.json").is_file():
        sys.exit(f"no default cohort at {src} (make synth)")
    home = Path(tempfile.mkdtemp(prefix="oaviz-bench-visitors-"))
    (home / "cohorts").mkdir()
    (home / "cohorts" / "synthetic-knee").symlink_to(src)
    return home


def start_server(home: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "OAVIZ_HOME": str(home), "OAVIZ_DEMO": "1", "PYTHONPATH": str(REPO),
           RUN_TIMES_ENV: str(run_times_file(home))}
    cmd = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
           str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"streamlit exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return proc, url
        except OSError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    sys.exit("streamlit did not start within 120 s")


def run_times_file(home: Path) -> Path:
    return home / "run_times.jsonl"


def run_times_since(home: Path, offset: int) -> tuple[list[dict], int]:
    """The server's script-run records appended after byte ``offset`` of its log, and the new offset."""
    path = run_times_file(home)
    if not path.is_file():
        return [], offset
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read()
    lines = data.decode().splitlines()
    return [json.loads(x) for x in lines if x.strip()], offset + len(data)


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the server process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of the server process (MB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class PeakRSS:
    """The highest RSS of ``pid`` seen while the ``with`` block runs (sampled every 0.2 s)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()

    def _run(self):
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self):
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


# ----------------------------------------------------------------- the visitors
def watch_script_runs(page) -> list[float]:
    """perf_counter() times at which the page's websocket received a ``script_finished`` ForwardMsg (the
    server done with a run), appended as they arrive."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    seen: list[float] = []

    def frame(payload) -> None:
        t = time.perf_counter()
        if isinstance(payload, bytes):
            try:
                if ForwardMsg.FromString(payload).WhichOneof("type") == "script_finished":
                    seen.append(t)
            except Exception:   # noqa: BLE001 — another kind of frame: not ours to judge
                pass

    page.on("websocket", lambda ws: ws.on("framereceived", frame))
    return seen


async def visit(browser, url: str, rounds: int, latencies: list[tuple[str, float, float, float]] | None,
                timeout_s: float = 300.0, keep_open: asyncio.Event | None = None) -> None:
    """One visitor (a browser context of its own): open the app, click every page ``rounds`` times; the
    (page title, latency, first answer, last answer) of each click is appended to ``latencies`` (answers
    NaN when no run finished after the click). With ``keep_open``, stay until it is set."""
    ctx = await browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = await ctx.new_page()
        page.set_default_timeout(timeout_s * 1000)
        finished = watch_script_runs(page)
        await page.goto(url)
        await page.wait_for_function(IDLE_JS, arg="Data", timeout=timeout_s * 1000)
        for _ in range(rounds):
            for p in PAGES:
                link = page.locator('[data-testid="stSidebarNav"] a').filter(
                    has_text=re.compile(rf"{re.escape(p.title)}$"))
                t0 = time.perf_counter()
                await link.click()
                await asyncio.sleep(0.05)   # let the click reach the server before asking whether it is idle
                await page.wait_for_function(IDLE_JS, arg=p.title, timeout=timeout_s * 1000, polling=25)
                t1 = time.perf_counter()
                if latencies is not None:
                    runs = [t for t in finished if t0 < t <= t1]
                    first, last = (runs[0] - t0, runs[-1] - t0) if runs else (float("nan"), float("nan"))
                    latencies.append((p.title, t1 - t0, first, last))
        if keep_open is not None:
            await keep_open.wait()
    finally:
        await ctx.close()


async def wait_idle_server(pid: int, limit_s: float = 300.0) -> float:
    """Wait until the server uses under 5 % of a core over 3 s (background work done); returns the wait."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        c = cpu_s(pid)
        await asyncio.sleep(3.0)
        if cpu_s(pid) - c < 0.15:
            break
    return time.perf_counter() - t0


async def phase(browser, url: str, pid: int, n: int, rounds: int, home: Path) -> dict:
    """``n`` concurrent visitors; RSS read while all are still open (after their clicks) and its peak."""
    lat: list[tuple[str, float, float, float]] = []
    _, offset = run_times_since(home, 0)
    done = asyncio.Event()
    cpu0, load0 = cpu_s(pid), os.getloadavg()[0]
    with PeakRSS(pid) as peak:
        tasks = [asyncio.create_task(visit(browser, url, rounds, lat, keep_open=done)) for _ in range(n)]
        while len(lat) < n * rounds * len(PAGES):
            if any(t.done() and t.exception() for t in tasks):
                raise next(t.exception() for t in tasks if t.done() and t.exception())
            await asyncio.sleep(0.2)
        server_cpu = cpu_s(pid) - cpu0
        runs, _ = run_times_since(home, offset)
        await asyncio.sleep(2.0)
        open_rss = rss_mb(pid)
        done.set()
        await asyncio.gather(*tasks)
    a = np.asarray([t for _, t, _, _ in lat])
    first, answer = np.asarray([f for _, _, f, _ in lat]), np.asarray([s for _, _, _, s in lat])
    by_page = {p.title: float(np.median([t for q, t, _, _ in lat if q == p.title])) for p in PAGES}
    return {"sessions": n, "interactions": len(a), "p50_s": float(np.percentile(a, 50)),
            "p95_s": float(np.percentile(a, 95)), "max_s": float(a.max()),
            "first_answer_p50_s": float(np.nanpercentile(first, 50)),
            "first_answer_p95_s": float(np.nanpercentile(first, 95)),
            "server_answer_p50_s": float(np.nanpercentile(answer, 50)),
            "server_answer_p95_s": float(np.nanpercentile(answer, 95)),
            "clicks_without_a_run": int(np.isnan(answer).sum()), "rss_open_mb": open_rss,
            "script_runs": len(runs),
            "script_wall_p50_s": float(np.percentile([r["wall_s"] for r in runs], 50)) if runs else float("nan"),
            "script_wall_p95_s": float(np.percentile([r["wall_s"] for r in runs], 95)) if runs else float("nan"),
            "script_cpu_p50_s": float(np.percentile([r["cpu_s"] for r in runs], 50)) if runs else float("nan"),
            "rss_peak_mb": peak.peak, "server_cpu_per_click_s": server_cpu / len(a),
            "load_avg_1min": [load0, os.getloadavg()[0]], "p50_by_page_s": by_page}


async def bench(args) -> dict:
    from playwright.async_api import async_playwright

    home = make_home(args.home)
    log = home / "server.log"
    proc, url = start_server(home, log)
    out: dict = {"pages": [p.title for p in PAGES], "rounds": args.rounds, "nice_browsers": args.nice_browsers}
    if args.nice_browsers:   # this process and the browsers it starts yield the cores to the server (started above)
        os.nice(args.nice_browsers)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            out["rss_started_mb"] = rss_mb(proc.pid)
            t = time.perf_counter()
            await visit(browser, url, 1, None, timeout_s=900)   # fills the caches (first embeddings, maps…)
            out["warm_up_s"] = time.perf_counter() - t
            out["idle_wait_s"] = await wait_idle_server(proc.pid)   # e.g. the start-up JIT warm-up thread
            out["rss_warm_no_session_mb"] = rss_mb(proc.pid)
            out["one"] = await phase(browser, url, proc.pid, 1, args.rounds, home)
            out["many"] = await phase(browser, url, proc.pid, args.sessions, args.rounds, home)
            t_closed = time.perf_counter()
            out["rss_after_close_mb"] = {}
            for wait in sorted({0, args.settle // 2, args.settle}):
                await asyncio.sleep(max(0.0, t_closed + wait - time.perf_counter()))
                out["rss_after_close_mb"][str(wait)] = rss_mb(proc.pid)
            await browser.close()
    finally:
        stop_server(proc)
    one, many = out["one"], out["many"]
    out["rss_per_extra_session_mb"] = (many["rss_open_mb"] - one["rss_open_mb"]) / max(1, args.sessions - 1)
    out["rss_settled_vs_one"] = out["rss_after_close_mb"][str(args.settle)] / one["rss_open_mb"]
    return out


def report(r: dict, sessions: int, settle: int) -> str:
    one, many = r["one"], r["many"]
    rows = [
        f"warm-up (every page once, fills the caches): {r['warm_up_s']:.1f} s, then {r['idle_wait_s']:.0f} s until "
        "the server was idle",
        f"server RSS: started {r['rss_started_mb']:.0f} MB, warm, no session open {r['rss_warm_no_session_mb']:.0f} MB",
        f"1 session : p50 {one['p50_s']:.2f} s  p95 {one['p95_s']:.2f} s  max {one['max_s']:.2f} s  "
        f"({one['interactions']} clicks)  RSS {one['rss_open_mb']:.0f} MB (peak {one['rss_peak_mb']:.0f})",
        f"{sessions} sessions: p50 {many['p50_s']:.2f} s  p95 {many['p95_s']:.2f} s  max {many['max_s']:.2f} s  "
        f"({many['interactions']} clicks)  RSS {many['rss_open_mb']:.0f} MB (peak {many['rss_peak_mb']:.0f})",
        f"server's first answer (click -> first script_finished): 1 session p50 {one['first_answer_p50_s']:.2f} s "
        f"p95 {one['first_answer_p95_s']:.2f} s; {sessions} sessions p50 {many['first_answer_p50_s']:.2f} s "
        f"p95 {many['first_answer_p95_s']:.2f} s",
        f"server's last answer (click -> last script_finished): 1 session p50 {one['server_answer_p50_s']:.2f} s "
        f"p95 {one['server_answer_p95_s']:.2f} s; {sessions} sessions p50 {many['server_answer_p50_s']:.2f} s "
        f"p95 {many['server_answer_p95_s']:.2f} s (clicks with no run seen: {one['clicks_without_a_run']}, "
        f"{many['clicks_without_a_run']})",
        f"server script runs (start -> end on the server): 1 session {one['script_runs']} runs, wall p50 "
        f"{one['script_wall_p50_s']:.2f} s p95 {one['script_wall_p95_s']:.2f} s (CPU p50 {one['script_cpu_p50_s']:.2f} s); "
        f"{sessions} sessions {many['script_runs']} runs, wall p50 {many['script_wall_p50_s']:.2f} s p95 "
        f"{many['script_wall_p95_s']:.2f} s (CPU p50 {many['script_cpu_p50_s']:.2f} s)",
        f"server CPU per click: 1 session {one['server_cpu_per_click_s']:.2f} s, {sessions} sessions "
        f"{many['server_cpu_per_click_s']:.2f} s; machine load average (1 min) {one['load_avg_1min'][0]:.1f} → "
        f"{many['load_avg_1min'][1]:.1f}",
        "p50 by page (1 / %d sessions): " % sessions + ", ".join(
            f"{k} {one['p50_by_page_s'][k]:.1f}/{many['p50_by_page_s'][k]:.1f}" for k in one["p50_by_page_s"]),
        f"RSS per extra session: {r['rss_per_extra_session_mb']:.1f} MB   (target < 100 MB)",
        "RSS after all closed: " + ", ".join(f"{k} s: {v:.0f} MB" for k, v in r["rss_after_close_mb"].items())
        + f"   ({settle} s: {r['rss_settled_vs_one']:.0%} of the one-session figure; target ≤ 120 %)",
        f"p95 with {sessions} sessions {'<' if many['p95_s'] < 1 else '≥'} 1 s (target < 1 s)",
    ]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2, help="passes over every page per session")
    ap.add_argument("--settle", type=int, default=60, help="seconds after the sessions close to read RSS again")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--home", type=Path, help="reuse the OAVIZ_HOME of an earlier run (its disk caches)")
    ap.add_argument("--nice-browsers", type=int, default=0, metavar="N",
                    help="run the browsers at niceness +N, so the server is served first on the shared cores "
                         "(closer to visitors whose browsers run on their own machines); default 0")
    args = ap.parse_args()
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is not installed (make chromium): bench_visitors skipped")
        return
    r = asyncio.run(bench(args))
    print(report(r, args.sessions, args.settle))
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
