# Two commands: `make demo` and `make test`. Both build .venv from nothing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501

.PHONY: demo test venv chromium synth bench clean checkpoints

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

# Headless Chromium for the browser test (Debian's package; Playwright never downloads one).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: the browser test will be skipped"; \
	else echo "chromium not found and cannot be installed here: the browser test will be skipped"; fi

# The default synthetic cohort the demo opens on (generated once, then reused).
synth: $(STAMP)
	$(BIN)/oaviz synth --default

demo: $(STAMP) synth
	$(BIN)/streamlit run app.py --server.headless true --server.port $(PORT)

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache

# The bundled demo checkpoints (demo preset, default synthetic knee cohort: film knees with visible risk, seed 0).
DEFAULT_COHORT := data/cohorts/synthetic-knee
# --unless-current: a checkpoint already trained on today's default cohort is kept, so an interrupted
# `make checkpoints` picks up at the model it stopped in.
TRAIN := $(BIN)/oaviz train --unless-current
checkpoints: $(STAMP) synth
	$(TRAIN) beta_vae --data $(DEFAULT_COHORT) --out checkpoints/beta_vae-demo --epochs 50 --patience 6
	$(TRAIN) vaesim --data $(DEFAULT_COHORT) --out checkpoints/vaesim-demo --epochs 20 --patience 0
# VAESim's matched VAE + KMeans baseline: the same architecture, β = 1 and VAESim's reconstruction weights, no prototypes.
	$(TRAIN) beta_vae --data $(DEFAULT_COHORT) --out checkpoints/beta_vae-matched-demo --epochs 20 --patience 0 --set beta=1 --set recon_weight=50 --set joint_weight=9
	$(TRAIN) cnn --data $(DEFAULT_COHORT) --out checkpoints/cnn-demo --epochs 15
	$(TRAIN) dual_head --data $(DEFAULT_COHORT) --out checkpoints/dual_head-single_oa-demo --epochs 15 --set variant=single_oa
	$(TRAIN) dual_head --data $(DEFAULT_COHORT) --out checkpoints/dual_head-single_kl-demo --epochs 15 --set variant=single_kl
	$(TRAIN) dual_head --data $(DEFAULT_COHORT) --out checkpoints/dual_head-dual-demo --epochs 15 --set variant=dual
# Issue-5 models: VQ-VAE, KL + landmark classifier, latent diffusion naming both, KECAE.
	$(TRAIN) vqvae --data $(DEFAULT_COHORT) --out checkpoints/vqvae-demo --epochs 12 --patience 0
	$(TRAIN) multitask --data $(DEFAULT_COHORT) --out checkpoints/multitask-demo --epochs 20 --patience 5
	$(TRAIN) latent_diffusion --data $(DEFAULT_COHORT) --out checkpoints/latent_diffusion-demo --epochs 35 --patience 0 --set vqvae_checkpoint=vqvae-demo --set classifier_checkpoint=multitask-demo
	$(TRAIN) kecae --data $(DEFAULT_COHORT) --out checkpoints/kecae-demo --epochs 30 --patience 0 --set discriminator_checkpoint=multitask-demo
