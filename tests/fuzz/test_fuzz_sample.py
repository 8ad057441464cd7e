"""A fast seeded sample of the fuzz suite (``bench/fuzz_importers.py`` runs the full one): for every importer,
generated bad inputs end in success or a DataError — no other exception, no hang, nothing over +2 GiB."""

from __future__ import annotations

import pytest

from tests.fuzz.cases import IMPORTERS
from tests.fuzz.harness import run_many

CASES_PER_IMPORTER = 30


@pytest.mark.parametrize("importer", IMPORTERS)
def test_generated_bad_inputs_end_in_success_or_a_data_error(importer):
    table = run_many([importer], range(CASES_PER_IMPORTER))
    broken = [f"seed {r.seed}: {r.outcome} {r.detail} {r.where}" for r in table.failures()]
    assert not broken, (f"{len(broken)} of {CASES_PER_IMPORTER} cases broke the contract (replay one with "
                        f"`python bench/fuzz_importers.py --importers {importer} --first SEED --cases 1`):\n"
                        + "\n".join(broken))
    counts = table.rows()[importer]
    assert counts["ok"] + counts["DataError"] == CASES_PER_IMPORTER
    assert counts["ok"] and counts["DataError"], "the sample should hold both valid and refused inputs"


def test_the_harness_tells_apart_every_outcome(tmp_path, monkeypatch):
    """The harness itself: an unhandled exception, a hang, a memory bomb and a DataError are each seen as such."""
    import time

    from oaviz.errors import DataError
    from tests.fuzz import cases
    from tests.fuzz.harness import run_case

    def refuse():
        raise DataError("bad", "x.png")

    monkeypatch.setitem(cases.BUILDERS, "images", lambda rng, d: lambda: 1 / 0)
    r = run_case("images", 0, tmp_path)
    assert (r.outcome, r.detail) == ("unhandled", "ZeroDivisionError: division by zero")
    for thunk, outcome, seconds in [(lambda: 1 / 0, "unhandled", 30), (lambda: time.sleep(60), "hang", 1),
                                    (lambda: bytearray(3 << 30), "over-memory", 30), (refuse, "DataError", 30),
                                    (lambda: None, "ok", 30)]:
        monkeypatch.setitem(cases.BUILDERS, "images", lambda rng, d, thunk=thunk: thunk)
        r = run_case("images", 0, tmp_path, time_limit_s=seconds)
        assert r.outcome == outcome, (outcome, r)
