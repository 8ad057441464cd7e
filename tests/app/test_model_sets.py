"""Model sets in the sidebar ("trained on <cohort>"), on a small cohort imported from dataset-style PNGs
(``train/2/9000017L.png``) with a tiny zoo trained on it: every page uses the set's checkpoint of the kind it
needs and names it in the sidebar; a model the zoo left out falls back to the bundled one and says why."""

from __future__ import annotations

import pytest

from tests.app.helpers import assert_no_exception, needs_bundled
from tests.zoo_home import ZOO_LABEL, build_zoo_home

pytestmark = needs_bundled


@pytest.fixture(scope="module")
def zoo_home(app_home, tmp_path_factory):
    """app_home's cohorts plus realknee-mini, and a tiny real-preset zoo trained on it under runs/."""
    return build_zoo_home(tmp_path_factory.mktemp("zoo-home"), app_home / "cohorts")


@pytest.fixture()
def zapp(app, zoo_home, monkeypatch):
    monkeypatch.setenv("OAVIZ_HOME", str(zoo_home))
    app.run()
    assert_no_exception(app)
    return app


def _sidebar_texts(at) -> list[str]:
    return [str(c.value) for c in at.sidebar.caption]


def _use(at, cohort: str | None = None, zoo: bool = True):
    if cohort:
        at.selectbox(key="oaviz.cohort").set_value(next(o for o in at.selectbox(key="oaviz.cohort").options
                                                        if o.endswith(cohort))).run()
    box = at.selectbox(key="oaviz.model_set")
    box.select_index(1 if zoo else 0).run()
    return at


def test_the_sidebar_offers_the_bundled_set_and_the_zoo(zapp):
    box = zapp.selectbox(key="oaviz.model_set")
    assert box.options == ["Bundled demo set (synthetic knees)", ZOO_LABEL]
    _use(zapp)
    assert any(t.startswith("Not in this set: vqvae (only the latent diffusion uses it") and
               "latent_diffusion (no follow-up visits" in t for t in _sidebar_texts(zapp)), _sidebar_texts(zapp)
    assert zapp.selectbox(key="oaviz.checkpoint").options[0] == "Each page's model from the set"


@pytest.mark.parametrize("page, in_use", [
    ("pages/latent_map.py", "beta_vae · real · trained on realknee-mini"),
    ("pages/prototypes.py", "vaesim · real · trained on realknee-mini"),
    ("pages/key_exchange.py", "kecae · real · trained on realknee-mini"),
])
def test_switching_sets_switches_every_page_and_the_sidebar_names_it(zapp, page, in_use):
    _use(zapp, "realknee-mini")
    zapp.switch_page(page).run()
    assert_no_exception(zapp)
    assert f"This page uses **{in_use}**." in _sidebar_texts(zapp)
    _use(zapp, zoo=False)
    assert_no_exception(zapp)
    assert not any("trained on realknee-mini" in t for t in _sidebar_texts(zapp) if t.startswith("This page uses")), _sidebar_texts(zapp)
    assert any(t.startswith("This page uses **") and "bundled" in t for t in _sidebar_texts(zapp))


def test_a_model_the_zoo_left_out_falls_back_to_the_bundled_one_and_says_why(zapp):
    _use(zapp, "realknee-mini")
    zapp.switch_page("pages/future_knee.py").run()
    assert_no_exception(zapp)
    notes = [str(c.value) for c in zapp.caption]
    assert any(n.startswith("The set trained on realknee-mini has no checkpoint for this page (latent_diffusion: "
                            "no follow-up visits") and "latent_diffusion-demo" in n for n in notes), notes
    assert any("latent_diffusion-demo" in t for t in _sidebar_texts(zapp))


def test_the_models_page_shows_the_zoo_job_per_model_and_switches_to_its_set(zapp):
    zapp.switch_page("pages/models_training.py").run()
    assert_no_exception(zapp)
    assert any(s.value == "Train the model zoo" for s in zapp.subheader)
    tables = [df.value for df in zapp.dataframe]
    plan = next(t for t in tables if list(t.columns) == ["model", "plan", "why / what changes"])
    assert set(plan["model"]) >= {"beta_vae", "latent_diffusion"}
    rows = next(t for t in tables if "progress" in t.columns)
    assert list(rows["model"])[:3] == ["beta_vae", "beta_vae-matched", "vaesim"]
    assert set(rows["status"]) == {"trained", "skipped"}
    assert "no follow-up visits" in rows.set_index("model").loc["latent_diffusion", "note"]
    use = next(b for b in zapp.button if b.label == "Use this model set")
    use.click().run()
    assert_no_exception(zapp)
    assert zapp.selectbox(key="oaviz.model_set").value.endswith("zoo-realknee-mini")


# What each page says it cannot show on the real-style cohort (no true KL, no follow-ups, no landmarks).
CANNOT = {
    "Latent map": "no true KL grade, no progression truth (no follow-up visits)",
    "Interpolation": "no true KL grade",
    "Reconstructions": "no landmarks",
    "Future knee": "no progression truth (no follow-up visits)",
    "Label audit": "no true KL grade",
}


@pytest.mark.parametrize("page", __import__("oaviz.ui.navigation", fromlist=["PAGES"]).PAGES, ids=lambda p: p.title)
def test_every_page_on_the_real_style_cohort_says_what_it_cannot_show_and_shows_the_rest(zapp, page):
    _use(zapp, "realknee-mini")
    zapp.switch_page(page.file).run()
    assert_no_exception(zapp)
    assert [e.value for e in zapp.error] == []
    infos = [str(e.value) for e in zapp.info]
    said = [t for t in infos if t.startswith("This cohort has no ")]
    if page.title in CANNOT:
        assert said == [f"This cohort has {CANNOT[page.title]}, as real radiographs do: "
                        + said[0].split("as real radiographs do: ", 1)[1]], infos
        assert said[0].endswith("cannot be shown here. Everything else is.")
    else:
        assert said == [], infos
    shown = len(zapp.dataframe) + len(zapp.metric) + len(zapp.get("plotly_chart")) + len(zapp.get("imgs"))
    assert shown > 0                                                     # the page went on to show the rest


def test_the_notice_is_not_shown_on_the_synthetic_cohort(zapp):
    zapp.switch_page("pages/latent_map.py").run()
    assert not [e for e in zapp.info if str(e.value).startswith("This cohort has no ")]


def test_the_probe_lab_compares_the_zoos_own_dual_head_variants(zapp, zoo_home):
    from oaviz.services.hierarchy import dual_head_checkpoints

    zoo = zoo_home / "runs" / "zoo-realknee-mini"
    found = dual_head_checkpoints([zoo])
    assert {v: p.parent.name for v, p in found.items()} == {
        "dual": "dual_head", "single_oa": "dual_head-single_oa", "single_kl": "dual_head-single_kl"}
    _use(zapp, "realknee-mini")
    zapp.switch_page("pages/probe_lab.py").run()
    assert_no_exception(zapp)
    assert any(t.label == "Compare dual, single_kl, single_oa on the test split" for t in zapp.toggle)


def test_the_probe_lab_probes_the_sets_checkpoint_by_default_and_names_it(zapp):
    _use(zapp, "realknee-mini")
    zapp.switch_page("pages/probe_lab.py").run()
    assert_no_exception(zapp)
    assert "This page uses **beta_vae · real · trained on realknee-mini**." in _sidebar_texts(zapp)
