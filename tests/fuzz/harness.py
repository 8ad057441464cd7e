"""Run generated cases, each in a forked child capped in memory (RLIMIT_AS) and time, and classify them.

Outcomes: ``ok`` (the importer returned), ``DataError`` (the contract's refusal), ``unhandled`` (any other
exception: a bug, recorded with its type and where it was raised), ``hang`` (killed after the time limit),
``over-memory`` (a MemoryError under the cap, or killed by the kernel), ``crash`` (the child died otherwise).
The parent has imported everything first, so a fork costs milliseconds and the child measures only the case.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import signal
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz.cases import IMPORTERS, build

MEMORY_CAP = 2 << 30      # on top of what the child has when it starts
TIME_LIMIT_S = 30.0
OUTCOMES = ("ok", "DataError", "unhandled", "hang", "over-memory", "crash")


@dataclass
class Result:
    importer: str
    seed: int
    outcome: str
    detail: str = ""        # exception type and message, or why the child died
    where: str = ""         # file:line that raised an unhandled exception
    seconds: float = 0.0


def warm_imports() -> None:
    """Import what the cases use before forking (each child then starts warm)."""
    import pandas  # noqa: F401
    import pydicom  # noqa: F401
    import pydicom.pixels  # noqa: F401

    import oaviz.data.importers  # noqa: F401
    import oaviz.data.kl_folders  # noqa: F401
    import oaviz.data.readers  # noqa: F401
    import oaviz.services.imports  # noqa: F401
    from tests.fuzz import seeds

    import numpy as np
    seeds.dicom(np.random.default_rng(0))   # pydicom's lazy imports (encoders, handlers) happen here, once


def _vm_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _classify(err: BaseException | None) -> tuple[str, str, str]:
    from oaviz.errors import DataError

    if err is None:
        return "ok", "", ""
    text = f"{type(err).__name__}: {str(err)[:300]}"
    if isinstance(err, MemoryError) or "MemoryError" in str(err):
        return "over-memory", text, ""
    if isinstance(err, DataError):
        return "DataError", text, ""
    tb = traceback.extract_tb(err.__traceback__)
    frame = next((f for f in reversed(tb) if "/oaviz/" in f.filename), tb[-1] if tb else None)
    where = f"{Path(frame.filename).name}:{frame.lineno}" if frame else ""
    return "unhandled", text, where


def _child(importer: str, seed: int, folder: Path, wfd: int) -> None:
    """In the forked child: cap memory, build and run the case, write one JSON line, exit."""
    out = {}
    try:
        os.setpgid(0, 0)                       # the parent kills the whole group (decoder children too)
        cap = _vm_bytes() + MEMORY_CAP
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        tempfile.tempdir = str(folder)         # the uploads' staging folders land in the case folder
        warnings.simplefilter("ignore")        # pydicom warns on every odd value: the outcome is what counts
        err = None
        try:
            run = build(importer, seed, folder)
        except Exception as e:  # noqa: BLE001
            out = {"outcome": "crash", "detail": f"generator failed: {type(e).__name__}: {e}"}
        else:
            try:
                run()
            except BaseException as e:  # noqa: BLE001 - classified, never re-raised
                err = e
            outcome, detail, where = _classify(err)
            out = {"outcome": outcome, "detail": detail, "where": where}
    except BaseException as e:  # noqa: BLE001
        out = {"outcome": "crash", "detail": f"harness: {type(e).__name__}: {e}"}
    finally:
        try:
            os.write(wfd, (json.dumps(out) + "\n").encode())
        finally:
            os._exit(0)


def run_case(importer: str, seed: int, work: Path, time_limit_s: float = TIME_LIMIT_S) -> Result:
    """Run case ``seed`` of ``importer`` in a forked child; its folder under ``work`` is removed after."""
    folder = Path(tempfile.mkdtemp(prefix=f"{importer}-{seed}-", dir=work))
    rfd, wfd = os.pipe()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        _child(importer, seed, folder, wfd)
    os.close(wfd)
    data, outcome = b"", None
    deadline = t0 + time_limit_s
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            outcome = "hang"
            break
        ready, _, _ = select.select([rfd], [], [], left)
        if ready:
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                break
            data += chunk
    if outcome == "hang":
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except (ProcessLookupError, PermissionError):
                pass
    _, status = os.waitpid(pid, 0)
    os.close(rfd)
    seconds = time.monotonic() - t0
    shutil.rmtree(folder, ignore_errors=True)
    if outcome == "hang":
        return Result(importer, seed, "hang", f"killed after {time_limit_s:g} s", seconds=seconds)
    try:
        out = json.loads(data.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        kind = "over-memory" if sig == signal.SIGKILL else "crash"   # the kernel's OOM killer sends SIGKILL
        return Result(importer, seed, kind, f"child died (signal {sig}, status {status})", seconds=seconds)
    return Result(importer, seed, out["outcome"], out.get("detail", ""), out.get("where", ""), seconds)


@dataclass
class Table:
    results: list[Result] = field(default_factory=list)

    def rows(self) -> dict[str, Counter]:
        by: dict[str, Counter] = {imp: Counter() for imp in IMPORTERS}
        for r in self.results:
            by.setdefault(r.importer, Counter())[r.outcome] += 1
        return by

    def unhandled_types(self, importer: str) -> Counter:
        return Counter(r.detail.split(":")[0] for r in self.results if r.importer == importer and r.outcome == "unhandled")

    def render(self) -> str:
        """A markdown table: one row per importer, unhandled broken down by exception type."""
        lines = ["| importer | cases | ok | DataError | unhandled (by type) | hangs | over-memory | crash | s/case |",
                 "|---|---:|---:|---:|---|---:|---:|---:|---:|"]
        for imp, c in self.rows().items():
            times = [r.seconds for r in self.results if r.importer == imp]
            if not times:
                continue
            types = ", ".join(f"{t} {n}" for t, n in self.unhandled_types(imp).most_common()) or "0"
            un = f"{c['unhandled']} ({types})" if c["unhandled"] else "0"
            lines.append(f"| {imp} | {len(times)} | {c['ok']} | {c['DataError']} | {un} | {c['hang']} | "
                         f"{c['over-memory']} | {c['crash']} | {sum(times) / len(times):.2f} |")
        return "\n".join(lines)

    def failures(self) -> list[Result]:
        return [r for r in self.results if r.outcome not in ("ok", "DataError")]


def run_many(importers, seeds, work: Path | None = None, progress=None) -> Table:
    """Every (importer, seed) case, one forked child each; ``progress(result)`` after each."""
    warm_imports()
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="oaviz-fuzz-")) if own else Path(work)
    table = Table()
    try:
        for imp in importers:
            for s in seeds:
                r = run_case(imp, s, work)
                table.results.append(r)
                if progress:
                    progress(r)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return table
