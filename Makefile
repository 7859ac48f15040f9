# Two commands do all set-up on a fresh machine:
#   make demo   - venv + pinned install + Traj checkpoints (if reachable) + the Traj Gradio demo on 127.0.0.1
#   make test   - venv + pinned install + the whole offline test suite (last line: "N passed, N failed")
PYTHON ?= python3.11
VENV ?= .venv
PY := $(abspath $(VENV))/bin/python
STAMP := $(VENV)/.installed
NODEPS := $(wildcard requirements-nodeps.txt)
MODE ?= traj
PORT ?= 7860
DEMO_ARGS ?=
BENCH_ARGS ?=
SUITES ?=

.PHONY: venv test demo demo-tiny fetch check-ckpts fix-copies check-copies bench golden style clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt $(NODEPS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(if $(NODEPS),$(PY) -m pip install --quiet --no-deps -r $(NODEPS))
	@touch $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(PY) tests/run_tests.py $(SUITES)

# Fetches the Traj weights when the hub is reachable; the demo falls back to tiny mode (with a banner) otherwise.
demo: $(STAMP)
	@cd MOFA-Video-Traj && if $(PY) -m utils.checkpoints fetch --mode traj --tiny_fallback; \
		then $(PY) run_gradio.py --port $(PORT) $(DEMO_ARGS); \
		else $(PY) run_gradio.py --tiny --port $(PORT) $(DEMO_ARGS); fi

demo-tiny: $(STAMP)
	cd MOFA-Video-Traj && $(PY) run_gradio.py --tiny --port $(PORT) $(DEMO_ARGS)

fetch: $(STAMP)
	cd MOFA-Video-Traj && $(PY) -m utils.checkpoints fetch --mode $(MODE)

check-ckpts: $(STAMP)
	cd MOFA-Video-Traj && $(PY) -m utils.checkpoints check

fix-copies:
	$(PYTHON) tests/check_copies.py --fix

check-copies:
	$(PYTHON) tests/check_copies.py

# ruff (pyproject.toml): formats the tree and applies the safe lint fixes; make test fails on what remains.
style: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Rewrites tests/golden/*.safetensors from diffusers 0.24.0 (installed into a temporary folder; needs PyPI).
golden: $(STAMP)
	$(PY) tests/golden/generate_golden.py

bench: $(STAMP)
	$(PY) tests/bench/bench.py $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)
