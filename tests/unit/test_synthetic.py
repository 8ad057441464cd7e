"""The synthetic cohort's ground truth, not just its shapes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from oaviz.cli import main as cli_main
from oaviz.data.cohort import decode_landmarks, load_cohort
from oaviz.data.errors import DataError
from oaviz.data.synthetic import (
    REFERENCE_PREVALENCE, SynthConfig, generate_arrays, generate_cohort, kl_from_severity, sample_design,
)


@pytest.fixture(scope="module")
def big_design():
    """Design (no pixels) of a large cohort: enough subjects for tight rates."""
    return sample_design(SynthConfig(subjects=6000, visits=(0, 12, 24), seed=3))


def test_grade_prevalence_close_to_knee_cohorts(big_design):
    prev = np.bincount(big_design["kl_true"], minlength=5) / len(big_design["kl_true"])
    np.testing.assert_allclose(prev, REFERENCE_PREVALENCE, atol=0.02)


def test_rater_disagreement_rate_adjacent_and_worst_at_kl1(big_design):
    kl, kt = big_design["kl"], big_design["kl_true"]
    assert abs((kl != kt).mean() - 0.25) < 0.03
    assert np.abs(kl - kt).max() == 1  # adjacent grades only
    per_grade = [(kl[kt == g] != g).mean() for g in range(5)]
    assert int(np.argmax(per_grade)) == 1


@pytest.mark.parametrize("target", [0.1, 0.4])
def test_rater_disagreement_is_configurable(target):
    d = sample_design(SynthConfig(subjects=5000, visits=(0,), seed=1, rater_disagreement=target))
    assert abs((d["kl"] != d["kl_true"]).mean() - target) < 0.035


def test_progression_only_upward_and_minority_progress(big_design):
    df = pd.DataFrame({"s": big_design["sub_idx"], "m": big_design["months"],
                       "sev": big_design["severity"], "kl": big_design["kl_true"]})
    df = df.sort_values(["s", "m"])
    assert (df.groupby("s")["sev"].diff().dropna() >= 0).all()
    assert (df.groupby("s")["kl"].diff().dropna() >= 0).all()
    frac = big_design["progressor"].mean()
    assert 0.1 < frac < 0.3
    # progressors really change grade more than the rest over 24 months
    gain = df.groupby("s")["kl"].agg(lambda k: k.iloc[-1] - k.iloc[0]).to_numpy()
    prog = big_design["progressor"]
    assert gain[prog].mean() > 0.7 and gain[~prog].mean() < 0.15


def test_kl_from_severity_boundaries():
    np.testing.assert_array_equal(kl_from_severity(np.array([0, 0.49, 0.5, 1.5, 3.49, 3.5, 4.0])),
                                  [0, 0, 1, 2, 3, 4, 4])


def test_cohort_files_splits_and_truth(tiny_cohort):
    c = load_cohort(tiny_cohort)
    m = c.metadata
    assert c.images.dtype == np.uint8 and c.images.shape == (72, 64, 64)
    assert isinstance(c.images, np.memmap)
    assert c.masks is not None and c.masks.shape == c.images.shape
    # subject-level split: a subject never appears in two splits
    assert (m.groupby("subject_id")["split"].nunique() == 1).all()
    assert set(m.split) <= {"train", "val", "test"}
    assert (m.oa == (m.kl >= 2).astype(int)).all()
    # anatomy fixed across visits: the same subject's images differ less than different subjects'
    assert c.info["source"] == "synthetic" and len(c.info["landmark_names"]) == 16
    lm = c.landmarks()
    assert lm.shape == (72, 16, 2) and np.isfinite(lm).all()
    assert ((lm > -2) & (lm < 66)).mean() > 0.95


def test_image_joint_space_narrows_with_grade():
    """Measured on the pixels: joint-space mask height falls monotonically over KL_true."""
    images, masks, meta, info = generate_arrays(SynthConfig(subjects=160, visits=(0,), size=96, seed=5))
    height_px = masks.reshape(len(masks), -1).sum(1) / np.maximum((masks.max(axis=1) > 0).sum(1), 1)
    by_grade = pd.Series(height_px).groupby(meta.kl_true.to_numpy()).mean()
    assert by_grade.is_monotonic_decreasing, by_grade
    assert meta.groupby("kl_true")["jsw_mm"].mean().is_monotonic_decreasing
    # the joint space is darker than the bone just above and below it, in every image, by a clear margin
    # (measured: 34-66 grey levels on this cohort)
    pairs = np.array([joint_and_bone_means(img, m) for img, m in zip(images, masks) if m.any()])
    assert len(pairs) == len(images)
    darker = pairs[:, 1] - pairs[:, 0]
    assert darker.min() > 20 and darker.mean() > 30, darker.min()


def joint_and_bone_means(img: np.ndarray, mask: np.ndarray, band: int = 3) -> tuple[float, float]:
    """Mean grey level inside the joint-space mask, and in the ``band`` pixels just above and just below
    it in each of its columns (condyle and plateau)."""
    img, m = img.astype(float), mask > 0
    inside, bone = [], []
    for c in np.flatnonzero(m.any(0)):
        rows = np.flatnonzero(m[:, c])
        inside.append(img[rows, c])
        bone += [img[max(rows[0] - band, 0):rows[0], c], img[rows[-1] + 1:rows[-1] + 1 + band, c]]
    return float(np.concatenate(inside).mean()), float(np.concatenate(bone).mean())


def test_landmarks_follow_anatomy():
    images, masks, meta, info = generate_arrays(SynthConfig(subjects=40, visits=(0,), size=128, seed=2))
    lm = np.stack([decode_landmarks(s) for s in meta.landmarks])
    names = info["landmark_names"]
    i = {n: k for k, n in enumerate(names)}
    # medial condyle lowest point sits above the medial plateau mid point by the JSW
    gap = lm[:, i["med_plateau_mid"], 1] - lm[:, i["med_condyle_lowest"], 1]
    assert (gap > 0).all()
    px_per_mm = 128 / 100.0
    np.testing.assert_allclose(np.median(gap / px_per_mm / meta.jsw_mm), 1.0, atol=0.1)
    # the fibula is lateral: left of the tibial shaft in right orientation
    assert (lm[:, i["fibular_head_apex"], 0] < lm[:, i["lat_tibial_shaft"], 0] + 5).all()


def test_same_seed_same_bytes_different_seed_differs():
    a = generate_arrays(SynthConfig(subjects=6, visits=(0, 12), size=64, seed=11))
    b = generate_arrays(SynthConfig(subjects=6, visits=(0, 12), size=64, seed=11))
    c = generate_arrays(SynthConfig(subjects=6, visits=(0, 12), size=64, seed=12))
    assert a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    pd.testing.assert_frame_equal(a[2], b[2])
    assert a[0].tobytes() != c[0].tobytes()


def test_subject_anatomy_fixed_across_visits():
    images, masks, meta, _ = generate_arrays(SynthConfig(subjects=20, visits=(0, 12), size=64, seed=4,
                                                         progressor_fraction=0.0))
    x = images.reshape(len(images), -1).astype(float)
    same = np.mean([np.abs(x[2 * k] - x[2 * k + 1]).mean() for k in range(20)])
    diff = np.mean([np.abs(x[2 * k] - x[2 * k + 3]).mean() for k in range(19)])
    assert same < diff


def test_hip_cohort(tmp_path):
    out = generate_cohort(tmp_path / "hip", joint="hip", subjects=10, visits=(0, 24), size=64, seed=0)
    c = load_cohort(out)
    assert c.info["joint"] == "hip" and len(c) == 20
    assert c.masks.any(axis=(1, 2)).all()  # every hip has a joint-space mask
    d = sample_design(SynthConfig(joint="hip", subjects=3000, visits=(0,), seed=1))
    jsw = pd.Series(d["P"]["jsw_m"]).groupby(d["kl_true"]).mean()
    assert jsw.is_monotonic_decreasing, jsw


def test_bad_config_and_existing_destination(tmp_path):
    with pytest.raises(DataError, match="joint"):
        SynthConfig(joint="elbow").validate()
    with pytest.raises(DataError, match="visits"):
        SynthConfig(visits=(12, 0)).validate()
    out = generate_cohort(tmp_path / "c", subjects=2, visits=(0,), size=32)
    with pytest.raises(DataError, match="already exists"):
        generate_cohort(out, subjects=2, visits=(0,), size=32)


def test_failed_generation_leaves_no_folder(tmp_path, monkeypatch):
    import oaviz.data.synthetic as syn

    def boom(*a, **k):
        raise RuntimeError("render failed")

    monkeypatch.setattr(syn, "_render_chunk", boom)
    with pytest.raises(RuntimeError, match="render failed"):
        syn.generate_cohort(tmp_path / "broken", subjects=3, visits=(0,), size=32)
    assert list(tmp_path.iterdir()) == []


def test_cli_synth(tmp_path, capsys):
    rc = cli_main(["synth", "--out", str(tmp_path / "k"), "--subjects", "4", "--visits", "0,12",
                   "--size", "48", "--seed", "3"])
    assert rc == 0
    assert "8 images" in capsys.readouterr().out
    assert len(load_cohort(tmp_path / "k")) == 8
    assert cli_main(["synth", "--out", str(tmp_path / "k"), "--subjects", "4"]) == 2  # exists
    assert cli_main(["synth", "--out", str(tmp_path / "x"), "--visits", "a,b"]) == 2


def test_bayes_ceiling_matches_the_generator_and_beats_grade_only_risk():
    """The ceiling is the AUC of P(rise | severity) over the generator's own draws; it must equal the AUC that
    risk reaches on a cohort the generator draws (up to sampling error), and exceed the grade-only odds."""
    from oaviz.analysis.paired_tests import fast_auc
    from oaviz.data.synth_progression import (PROGRESSION_RELATIVE_RISK, kl_from_severity, sample_severity,
                                              severity_at)
    from oaviz.data.synthetic import BASELINE_PREVALENCE, progression_bayes_ceiling

    b = progression_bayes_ceiling(0.18, BASELINE_PREVALENCE, (0, 12, 24), 12, n_subjects=200_000, seed=0)
    rng = np.random.default_rng(123)                # an independent draw of the same model
    s0, rate, _ = sample_severity(rng, 100_000, 0.18, BASELINE_PREVALENCE)
    # the visits with a 12-month follow-up: months 0 and 12
    s_now = np.concatenate([severity_at(s0, rate, 0), severity_at(s0, rate, 12)])
    s_next = np.concatenate([severity_at(s0, rate, 12), severity_at(s0, rate, 24)])
    k_now, k_next = kl_from_severity(s_now), kl_from_severity(s_next)
    ok = k_now < 4
    rise = (k_next > k_now)[ok]
    best = fast_auc(rise, b.risk_at(s_now[ok]))
    assert best == pytest.approx(b.auc, abs=0.01)
    assert fast_auc(rise, s_now[ok]) < best + 0.005            # no other score of severity does better
    grade_only = fast_auc(rise, PROGRESSION_RELATIVE_RISK[k_now[ok]])
    assert best > grade_only + 0.05
    assert 0.5 < b.auc < 1 and 0 < b.prevalence < 0.5
    assert b.to_dict()["horizon_months"] == 12
    with pytest.raises(ValueError, match="no visit has a follow-up"):
        progression_bayes_ceiling(0.18, BASELINE_PREVALENCE, (0,), 12)


def test_cohort_card_records_the_bayes_ceiling(tiny_cohort):
    info = load_cohort(tiny_cohort).info
    assert 0.5 < info["progression_bayes_ceiling"]["auc"] < 1


def test_healthy_signs_give_the_same_knees_without_that_sign():
    """SynthConfig.healthy draws a sign at the subject's s = 0 value and changes nothing else: knees that
    have no osteophytes keep their bytes, severe ones lose them, and every label stays."""
    from oaviz.data.synthetic import SynthConfig, generate_arrays

    cfg = SynthConfig(subjects=30, visits=(0, 24), size=96, seed=5, style="film")
    full, _, meta, info = generate_arrays(cfg)
    held, _, meta_h, info_h = generate_arrays(dataclasses.replace(cfg, healthy=("osteophytes",)))
    pd.testing.assert_frame_equal(meta.drop(columns="landmarks"), meta_h.drop(columns="landmarks"))
    sev = meta.severity.to_numpy()
    changed = (np.abs(full.astype(int) - held.astype(int)) > 4).sum(axis=(1, 2))
    assert (changed[sev < 0.5] == 0).all()                  # no osteophyte below s = 0.55: the same film
    assert (sev > 2.5).sum() >= 3 and (changed[sev > 2.5] > 0).all()
    assert "healthy" not in info["generator"] and info_h["generator"]["healthy"] == ("osteophytes",)
    with pytest.raises(DataError, match="unknown pathology sign"):
        SynthConfig(healthy=("osteophyte",)).validate()


def test_cli_healthy_writes_the_counterfactual_cohort_and_refuses_unknown_signs(tmp_path, capsys):
    out = tmp_path / "no-ost"
    assert cli_main(["synth", "--out", str(out), "--subjects", "3", "--visits", "0", "--size", "64",
                     "--healthy", "osteophytes, sclerosis"]) == 0
    assert load_cohort(out).info["generator"]["healthy"] == ["osteophytes", "sclerosis"]
    capsys.readouterr()
    assert cli_main(["synth", "--out", str(tmp_path / "bad"), "--subjects", "3", "--visits", "0", "--size", "64",
                     "--healthy", "osteofytes"]) == 2
    assert "unknown pathology sign" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()                 # nothing half-written


def test_visible_risk_puts_part_of_the_progression_odds_in_the_baseline_image():
    """Progressors lean to the cues the image renders (varus alignment, a narrow healthy medial joint space
    for the knee's size); the same knees and severities otherwise, the same progressor share, and an unseen
    per-subject part left (the cues do not decide who progresses)."""
    from oaviz.analysis.paired_tests import fast_auc
    from oaviz.data import synth_knee

    plain = sample_design(SynthConfig(subjects=6000, seed=3))
    cued = sample_design(SynthConfig(subjects=6000, seed=3, visible_risk=True))
    A, first = cued["A"], cued["months"] == 0
    prog = cued["progressor"]
    cue = synth_knee.progression_cues({k: v[first] for k, v in A.items()})
    np.testing.assert_array_equal(cued["kl"][first], plain["kl"][first])          # the same baseline knees
    np.testing.assert_array_equal(A["varus0"], plain["A"]["varus0"])
    assert abs(prog.mean() - plain["progressor"].mean()) < 0.015                   # the same share progresses
    can = cued["kl_true"][first] < 4
    gap = cue[can][prog[can]].mean() - cue[can][~prog[can]].mean()
    plain_gap = cue[can][plain["progressor"][can]].mean() - cue[can][~plain["progressor"][can]].mean()
    assert gap > 0.4 and abs(plain_gap) < 0.1                                     # cued vs grade-only odds
    assert 0.6 < fast_auc(prog[can], cue[can]) < 0.85                                                        # informative, not decisive
    np.testing.assert_allclose(cued["cue"][first], cue)                            # what the card stores


def test_visible_risk_raises_the_bayes_ceiling_and_its_risk_needs_the_cues():
    from oaviz.analysis.paired_tests import fast_auc
    from oaviz.data import synth_knee
    from oaviz.data.synth_progression import kl_from_severity, sample_severity, severity_at
    from oaviz.data.synthetic import BASELINE_PREVALENCE, progression_bayes_ceiling

    draw = lambda r, n: synth_knee.progression_cues(synth_knee.sample_anatomy(r, n))   # noqa: E731
    b = progression_bayes_ceiling(0.18, BASELINE_PREVALENCE, (0, 12, 24), 12, n_subjects=200_000, cues=draw)
    assert b.auc > b.grade_only_auc + 0.015 and b.to_dict()["grade_only_auc"] == round(b.grade_only_auc, 4)
    rng = np.random.default_rng(123)                       # an independent draw of the same model
    cue, hidden = draw(rng, 100_000), rng.standard_normal(100_000)
    s0, rate, _ = sample_severity(rng, 100_000, 0.18, BASELINE_PREVALENCE, cue, hidden)
    # the visits with a 12-month follow-up: months 0 and 12, each knee with its subject's cues
    s_now = np.concatenate([severity_at(s0, rate, 0), severity_at(s0, rate, 12)])
    s_next = np.concatenate([severity_at(s0, rate, 12), severity_at(s0, rate, 24)])
    c_now = np.tile(cue, 2)
    ok = kl_from_severity(s_now) < 4
    rise = (kl_from_severity(s_next) > kl_from_severity(s_now))[ok]
    assert fast_auc(rise, b.risk_at(s_now[ok], c_now[ok])) == pytest.approx(b.auc, abs=0.01)
    with pytest.raises(ValueError, match="cue logits"):
        b.risk_at(s_now)


def test_visible_risk_cohort_card_and_cli(tmp_path, capsys):
    out = tmp_path / "cued"
    assert cli_main(["synth", "--out", str(out), "--subjects", "4", "--visits", "0,12", "--size", "64",
                     "--visible-risk"]) == 0
    c = load_cohort(out)
    assert c.info["generator"]["visible_risk"] is True and "grade_only_auc" in c.info["progression_bayes_ceiling"]
    cue = c.metadata["progression_cue"].to_numpy()
    assert np.isfinite(cue).all() and (cue.reshape(4, 2)[:, 0] == cue.reshape(4, 2)[:, 1]).all()  # per subject
    assert "visible_risk" not in load_cohort(_plain_cohort(tmp_path)).info["generator"]          # off: not written
    with pytest.raises(DataError, match="knees only"):
        SynthConfig(joint="hip", visible_risk=True).validate()


def _plain_cohort(tmp_path):
    out = tmp_path / "plain"
    assert cli_main(["synth", "--out", str(out), "--subjects", "2", "--visits", "0", "--size", "64"]) == 0
    return out


def test_synth_default_replaces_a_default_cohort_made_with_earlier_defaults(tmp_path, monkeypatch, capsys):
    import json

    import oaviz.data.synthetic as synthetic
    from oaviz.data.synthetic import is_current_default

    monkeypatch.setenv("OAVIZ_HOME", str(tmp_path))
    today = {"joint": "knee", "subjects": 3, "visits": (0,), "size": 32, "seed": 0, "style": "film",
             "visible_risk": True}
    monkeypatch.setattr(synthetic, "default_cohort_config", lambda: dict(today))
    old = tmp_path / "cohorts" / "synthetic-knee"
    synthetic.generate_cohort(old, **{**today, "style": "schematic", "visible_risk": False})   # an earlier default
    assert not is_current_default(json.loads((old / "cohort.json").read_text()))
    assert cli_main(["synth", "--default"]) == 0
    assert "earlier version" in capsys.readouterr().out
    card = json.loads((old / "cohort.json").read_text())
    assert card["generator"]["style"] == "film" and is_current_default(card)
    # today's default is kept as it is
    fingerprint = card["fingerprint"]
    assert cli_main(["synth", "--default"]) == 0
    assert "ready" in capsys.readouterr().out and json.loads((old / "cohort.json").read_text())["fingerprint"] == fingerprint


def test_a_subjects_visits_share_their_acquisition_except_positioning(tmp_path):
    """visit_acquisition="subject": every film of a knee keeps its first film's exposure, processing and
    texture place (so a registered follow-up differs from its baseline by disease, pose and noise); baselines,
    labels and landmarks are those of the independent cohort, and the card says which it is."""
    from oaviz.data.synthetic import POSITIONING, is_current_default

    base = dict(subjects=5, visits=(0, 12, 24), size=64, seed=2, style="film", visible_risk=True)
    shared, free = (sample_design(SynthConfig(**base, visit_acquisition=v)) for v in ("subject", "independent"))
    per_subject = lambda a: a.reshape(5, 3, *a.shape[1:])  # noqa: E731  (rows: subject then visit)
    for k, v in shared["acq"].items():
        visits = per_subject(np.asarray(v))
        same = all(np.array_equal(visits[:, 0], visits[:, j]) for j in (1, 2))
        assert same != (k in POSITIONING), k                     # pose moves per visit, nothing else does
        assert np.array_equal(visits[:, 0], per_subject(np.asarray(free["acq"][k]))[:, 0]), k   # visit 0 as before
    a_img, _, a_meta, _ = generate_arrays(SynthConfig(**base, visit_acquisition="subject"))
    b_img, _, b_meta, _ = generate_arrays(SynthConfig(**base))
    pd.testing.assert_frame_equal(a_meta, b_meta)                 # same knees, grades and landmarks
    v0 = (b_meta["visit_month"] == 0).to_numpy()
    assert np.array_equal(a_img[v0], b_img[v0]) and not np.array_equal(a_img[~v0], b_img[~v0])
    assert cli_main(["synth", "--out", str(tmp_path / "shared"), "--subjects", "5", "--size", "64", "--seed", "2",
                     "--style", "film", "--visible-risk", "--visit-acquisition", "subject"]) == 0
    shared_cohort = load_cohort(tmp_path / "shared")
    card = shared_cohort.info
    assert card["generator"]["visit_acquisition"] == "subject"
    assert np.array_equal(shared_cohort.images[:], a_img)                 # the CLI makes the same cohort
    assert "visit_acquisition" not in load_cohort(_plain_cohort(tmp_path)).info["generator"]   # legacy: not written
    old_default = {**card["generator"]}
    old_default.pop("visit_acquisition")
    assert not is_current_default({"generator": {**old_default, "subjects": 600, "size": 224, "seed": 0}})
    with pytest.raises(DataError, match="visit_acquisition"):
        SynthConfig(visit_acquisition="per-site").validate()
