"""Every page on cohorts unlike the default: a hip cohort with one visit, and scikit-learn's digits
(ten classes, no KL grades). Pages must render or say plainly what they need, never raise."""

from __future__ import annotations

import re
import shutil

import pytest

from oaviz.ui.navigation import PAGES


@pytest.fixture(scope="module")
def other_home(app_home, tmp_path_factory):
    from oaviz.analysis.clustering import digits_cohort
    from oaviz.data.synthetic import generate_cohort

    home = tmp_path_factory.mktemp("other-home")
    shutil.copytree(app_home / "cohorts", home / "cohorts")
    generate_cohort(home / "cohorts" / "hip", joint="hip", subjects=10, visits=(0,), size=64, seed=3)
    digits_cohort(home / "cohorts" / "digits", size=32)
    return home


# The sidebar's line for the cohort the page runs on (10 hips, one visit each; the 1,797 8x8 digits at 32 px).
SUMMARY = {"hip": "hip · 10 images · 10 subjects · 64×64 px",
           "digits": "sklearn-digits · 1,797 images · 1,797 subjects · 32×32 px"}
# What a page promises to say on a cohort (regex on its info, warning, error, caption, markdown and subheader
# texts): why it cannot run, or what it computed from this cohort. Pages absent here must at least say nothing
# went wrong (no error element).
SAYS = {
    ("hip", "Latent map"): r"PCA of 10 beta_vae latents",
    ("digits", "Latent map"): r"PCA of 1,797 beta_vae latents",
    ("digits", "Reconstructions"): r"`D\d{4}` · KL —",                 # digits have no KL grade to show
    ("hip", "Reconstructions"): r"`S\d{5}_[LR]_V000` · KL \d",
    ("digits", "Interpolation"): r"The severity axis needs KL grades in the cohort\.",
    ("digits", "Key exchange"): r"Key exchange needs KL grades to find KL 0 and KL 2 knees\.",
    ("hip", "Future knee"): r"No real follow-up in the cohort at this horizon\.",          # one visit only
    ("digits", "Future knee"): r"No real follow-up in the cohort at this horizon\.",
    ("digits", "Probe lab"): r"cannot run on this cohort: .*target 'oa' needs KL grades or binary labels; "
                             r"this cohort has 10 label values",
    ("hip", "Label audit"): r"cannot run with these settings: .*every label needs at least two images for "
                            r"out-of-fold probabilities\. Try the k-NN vote\.",
    ("digits", "Label audit"): r"rater says \d, its neighbourhood says \d",
    ("hip", "Data"): r"\*\*10\*\* of 10 images match\.",
    ("digits", "Data"): r"\*\*1,797\*\* of 1,797 images match\.",
}
# The pages whose message above is an error box (they stop there).
ERRORS = {("digits", "Probe lab"), ("hip", "Label audit")}


def test_the_expectations_name_real_pages():
    assert {title for _, title in SAYS} <= {p.title for p in PAGES} and ERRORS <= set(SAYS)


@pytest.mark.parametrize("cohort", ["hip", "digits"])
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.title)
def test_page_runs_on_another_cohort(app, other_home, monkeypatch, cohort, page):
    monkeypatch.setenv("OAVIZ_HOME", str(other_home))
    app.run()
    app.selectbox(key="oaviz.cohort").set_value(str(other_home / "cohorts" / cohort)).run()
    app.switch_page(page.file).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.title[0].value.endswith(page.title)
    assert app.selectbox(key="oaviz.cohort").value.endswith(cohort)
    texts = [str(e.value) for kind in ("info", "warning", "error", "caption", "markdown", "subheader")
             for e in getattr(app, kind)]
    assert SUMMARY[cohort] in texts
    errors = [e.value for e in app.error]
    if (cohort, page.title) in ERRORS:
        assert len(errors) == 1 and re.search(SAYS[cohort, page.title], errors[0]), errors
    else:
        assert errors == []
    if (cohort, page.title) in SAYS:
        assert any(re.search(SAYS[cohort, page.title], t) for t in texts), texts
