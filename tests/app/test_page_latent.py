"""AppTests of the latent exploration pages on the bundled demo checkpoints and the tiny test cohort."""

from __future__ import annotations

import re

from tests.app.helpers import assert_no_exception, needs_bundled

import pytest
import torch

from oaviz.data.cohort import load_cohort
from oaviz.paths import checkpoints_dir
from oaviz.services.model_io import model_inputs
from oaviz.training.checkpoint import load_checkpoint



_ok = assert_no_exception


@needs_bundled
def test_reconstructions_page_shows_metrics_and_reacts_to_the_grade_filter(open_page):
    at = open_page("pages/reconstructions.py")
    _ok(at)
    labels = [m.label for m in at.metric]
    assert {"Mean MSE", "Mean PSNR", "Mean SSIM"} <= set(labels)
    # by hand: the page's model (the bundled β-VAE) reconstructs every knee of the cohort at its input size
    assert any("Showing **beta_vae-demo" in c.value for c in at.caption)
    cohort = load_cohort(at.selectbox(key="oaviz.cohort").value)
    model = load_checkpoint(checkpoints_dir() / "beta_vae-demo").model
    x = model_inputs(model, cohort, range(len(cohort))).double()
    with torch.no_grad():
        per_image = ((model.reconstruct(x.float()).double() - x) ** 2).flatten(1).mean(1)
    assert at.metric[labels.index("Mean MSE")].value == f"{float(per_image.mean()):.4f}"
    assert at.metric[labels.index("Mean PSNR")].value == f"{float((10 * torch.log10(1 / per_image)).mean()):.1f} dB"
    assert len(at.image) >= 3 * 6  # original, reconstruction and error map per knee, six knees a page

    def n_listed():
        label = at.number_input(key="recon.page").label  # "Page (of P, N images)"
        return int(label.split(",")[1].split()[0].replace(",", ""))

    meta = load_cohort(at.selectbox(key="oaviz.cohort").value).metadata
    assert n_listed() == len(meta)
    grades = at.multiselect(key="recon.grades")
    keep = grades.value[:1]
    grades.set_value(keep).run()
    _ok(at)
    assert n_listed() == int((meta["kl"] == keep[0]).sum())


@needs_bundled
def test_interpolation_page_decodes_the_path_and_the_steps_slider_changes_it(open_page):
    at = open_page("pages/interpolation.py")
    _ok(at)
    n0 = len(at.image)
    assert n0 >= 8  # the default 8 steps
    captions = [i.proto.imgs[0].caption for i in at.image]
    measured = [c for c in captions if re.search(r"JSW med [\d.—]+ / lat [\d.—]+ mm · reads KL [0-4] \(\d+%\)$", c)]
    assert len(measured) >= 8          # every decoded step: the JSW measured on it, the independent reader's KL
    assert any("dual_head-dual-demo" in c.value for c in at.caption)   # and the page names the reader
    assert any(m.label == "Worst on-manifold ratio" for m in at.metric)
    assert at.get("plotly_chart")
    at.slider(key="interp.steps").set_value(4).run()
    _ok(at)
    assert len(at.image) == n0 - 4
    at.radio(key="interp.path").set_value("slerp").run()
    _ok(at)
    labels = [m.label for m in at.metric]
    assert "Spearman ρ with rater KL" in labels  # the severity tab renders too
    rho = float(at.metric[labels.index("Spearman ρ with rater KL")].value)
    assert -1 <= rho <= 1


@needs_bundled
def test_prior_sampling_page_shows_the_grid_and_the_seed_changes_it(open_page):
    at = open_page("pages/prior_sampling.py")
    _ok(at)
    assert len(at.image) == 16
    captions = [i.proto.imgs[0].caption for i in at.image]
    assert all("KL" in c for c in captions)  # each sample carries its predicted grade
    at.select_slider(key="sample.n").set_value(8).run()
    _ok(at)
    assert len(at.image) == 8
    before = [i.proto.imgs[0].url for i in at.image]
    at.number_input(key="sample.seed").set_value(7).run()
    _ok(at)
    assert [i.proto.imgs[0].url for i in at.image] != before


@pytest.mark.skipif(not (checkpoints_dir() / "vaesim-demo" / "config.json").is_file(),
                    reason="bundled VAESim checkpoint missing (make checkpoints)")
def test_prototypes_page_shows_every_prototype_and_the_comparison(open_page):
    at = open_page("pages/prototypes.py")
    _ok(at)
    from oaviz.training.checkpoint import read_checkpoint_info
    K = read_checkpoint_info(checkpoints_dir() / "vaesim-demo")["config"]["n_prototypes"]
    captions = [i.proto.imgs[0].caption for i in at.image]
    assert sum(c.startswith("#") for c in captions) == K
    table = at.dataframe[0].value
    assert len(table) == K and {"size", "purity"} <= set(table.columns)
    assert len(at.get("plotly_chart")) == 3
    assert any("This page uses **vaesim-demo" in c.value for c in at.sidebar.caption)   # not "None"
    at.toggle(key="proto.compare").set_value(True).run()
    _ok(at)
    cmp = at.dataframe[1].value
    assert list(cmp["method"]) == ["VAESim", "VAE + KMeans", "VAE + KMeans"]
    assert cmp.loc[1, "K"] == K and cmp.loc[2, "K_rule"].startswith("elbow")
    assert cmp["knn_accuracy"].between(0, 1).all()
    text = " ".join(c.value for c in at.caption)
    assert "beta_vae-matched-demo" in " ".join(m.value for m in at.markdown) + text   # the matched baseline
    assert f"K = {K} (VAESim's K)" in text


@needs_bundled
def test_latent_map_page_plots_colours_and_shows_detail_and_decoded_spot(open_page):
    at = open_page("pages/latent_map.py")
    _ok(at)
    chart = at.get("plotly_chart")
    assert chart
    structure = at.dataframe[-1].value
    assert list(structure["metric"]) == [
        "intra-OA distance", "intra-no-OA distance", "inter-group distance", "silhouette (OA)", "silhouette (KL)",
        "kNN accuracy (OA)", "kNN accuracy (KL)", "trustworthiness"]
    trust = structure.set_index("metric")["value"]["trustworthiness"]
    assert 0.5 < trust <= 1.0
    assert "Severity-aligned view" in [h.value for h in at.subheader]
    assert any("held-out Spearman ρ with KL on the test split" in c.value for c in at.caption)
    # the colour control re-colours the figure
    before = chart[0].proto.spec
    at.selectbox(key="map.color").set_value("split").run()
    _ok(at)
    assert at.get("plotly_chart")[0].proto.spec != before
    # a clicked knee (its id is what the chart's selection writes) opens the detail panel with neighbours
    at.session_state["map.detail"] = 5
    at.session_state["map.decode_at"] = (0.0, 0.0)
    at.run()
    _ok(at)
    captions = [i.proto.imgs[0].caption for i in at.image]
    assert "reconstruction" in captions
    decoded = [c for c in captions if c.startswith("decoded latent\n")]
    assert len(decoded) == 1 and re.search(r"JSW med .* · reads KL [0-4] \(\d+%\)$", decoded[0])
    assert sum("d=" in c for c in captions) == 6  # six nearest neighbours
    # another projection recomputes and says which
    at.segmented_control(key="map.method").set_value("tsne").run()
    _ok(at)
    assert any("t-SNE of" in c.value for c in at.caption)
