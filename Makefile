# kdteach developer entry points (GNU make).
# Every target that needs Python creates $(VENV) first, so a fresh clone only needs `make <target>`.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch
PROFILE ?= full
COURSE ?= course
CHROMIUM ?= /usr/bin/chromium
# the proxy in front of the hub of `make test-hub`, from npm, kept in build/hub/
HUB_PROXY_VERSION ?= 4.6.3
HUB_PROXY = build/hub/node_modules/.bin/configurable-http-proxy
BIN = $(VENV)/bin
# the cache of trained models: the package defaults to ~/.cache/kdteach, the repository keeps its own
export KDTEACH_CACHE ?= $(CURDIR)/artifacts

STAMP = $(VENV)/.installed
LINT_PATHS = $(wildcard kdteach tests benchmarks)
CPU_ENV = KDTEACH_PROFILE=quick KDTEACH_DEVICE=cpu MPLBACKEND=Agg OMP_NUM_THREADS=1
GPU_ENV = KDTEACH_PROFILE=full KDTEACH_DEVICE=cuda MPLBACKEND=Agg
NBVAL_ARGS = --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/
HAVE_NOTEBOOKS = ls notebooks/*.ipynb >/dev/null 2>&1

.DEFAULT_GOAL := help
.PHONY: help prepare test test-gpu test-browser test-hub reproduce bench bench-step bench-input-gradients bench-prepare bench-course notebooks exercises assignments lab lint slides site clean distclean

help:
	@echo "kdteach make targets:"
	@echo "  make reproduce   run the original protocol (PROFILE=$(PROFILE); PROFILE=quick for a fast check)"
	@echo "  make prepare     train into the cache everything the lessons need (PROFILE=$(PROFILE))"
	@echo "  make test        lint, unit tests and notebooks on CPU with the quick profile"
	@echo "  make test-gpu    unit tests and notebooks on CUDA with the full profile"
	@echo "  make test-browser  JupyterLab, a slide deck and a live RISE slideshow checked in chromium (make test runs it)"
	@echo "  make test-hub    three learners run two lessons on a real JupyterHub (make test runs it)"
	@echo "  make slides      one offline reveal.js deck per lesson, in slides/"
	@echo "  make site        the lessons (and solutions) as an offline web site, in site/"
	@echo "  make bench       original-protocol benchmark (benchmarks/original_protocol.py)"
	@echo "  make bench-step  stacked step rates beside torch.bmm (benchmarks/step_rates.py)"
	@echo "  make bench-input-gradients  L_GR/L_JAC steps: autograd against matrix products"
	@echo "  make bench-prepare  each lesson need's training time from an empty cache (PROFILE=$(PROFILE))"
	@echo "  make bench-course  every lesson run from an empty cache, beside reproduce (PROFILE=$(PROFILE))"
	@echo "  make notebooks   re-execute notebooks/*.ipynb in place with the full profile"
	@echo "  make exercises   run notebooks/solutions/ and generate notebooks/exercises/ from them"
	@echo "  make assignments the exercises as an nbgrader course in $(COURSE)/ (source/, release/)"
	@echo "  make lab         open the notebooks in JupyterLab"
	@echo "  make lint        ruff check"
	@echo "  make clean       remove caches, results/ and artifacts/ (keeps $(VENV))"
	@echo "  make distclean   clean, and also remove $(VENV)"
	@echo "Variables: PYTHON=$(PYTHON) VENV=$(VENV) TORCH_SPEC=$(TORCH_SPEC) PROFILE=$(PROFILE)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install -e ".[dev]"
	touch $@

test: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(CPU_ENV) $(BIN)/python -m pytest tests
	if $(HAVE_NOTEBOOKS); then \
		$(CPU_ENV) $(BIN)/python -m pytest $(NBVAL_ARGS); \
	else \
		echo "no notebooks/*.ipynb yet: skipping notebook tests"; \
	fi
	if $(HAVE_NOTEBOOKS); then $(MAKE) --no-print-directory test-browser; fi
	if $(HAVE_NOTEBOOKS); then $(MAKE) --no-print-directory test-hub; fi

test-browser: $(STAMP) $(CHROMIUM)
	KDTEACH_DEVICE=cpu OMP_NUM_THREADS=1 KDTEACH_CHROMIUM=$(CHROMIUM) $(BIN)/python -m pytest -m browser -p no:cacheprovider tests/browser

test-hub: $(STAMP) $(HUB_PROXY)
	KDTEACH_DEVICE=cpu OMP_NUM_THREADS=1 KDTEACH_HUB_PROXY=$(CURDIR)/$(HUB_PROXY) $(BIN)/python -m pytest -m hub -p no:cacheprovider tests/hub

$(HUB_PROXY):
	@echo "installing configurable-http-proxy $(HUB_PROXY_VERSION) from npm for the hub test"
	npm install --prefix build/hub --no-save --no-audit --no-fund \
		configurable-http-proxy@$(HUB_PROXY_VERSION)

$(CHROMIUM):
	@echo "installing Debian's chromium for the browser tests (needs root)"
	apt-get update && apt-get install -y chromium

test-gpu: $(STAMP)
	$(GPU_ENV) $(BIN)/python -m pytest tests
	if $(HAVE_NOTEBOOKS); then \
		$(GPU_ENV) $(BIN)/python -m pytest $(NBVAL_ARGS); \
	else \
		echo "no notebooks/*.ipynb yet: skipping notebook tests"; \
	fi

reproduce: $(STAMP)
	$(BIN)/python -m kdteach reproduce --profile $(PROFILE)

prepare: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m kdteach prepare --profile $(PROFILE)

bench: $(STAMP)
	$(BIN)/python benchmarks/original_protocol.py

bench-step: $(STAMP)
	$(BIN)/python benchmarks/step_rates.py

bench-input-gradients: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/input_gradients.py

bench-prepare: $(STAMP)
	$(BIN)/python benchmarks/prepare_times.py --profile $(PROFILE) --progress

bench-course: $(STAMP)
	$(BIN)/python benchmarks/course.py --profile $(PROFILE)

notebooks: $(STAMP)
	if $(HAVE_NOTEBOOKS); then \
		KDTEACH_PROFILE=full KDTEACH_DEVICE=cpu OMP_NUM_THREADS=1 $(BIN)/jupyter nbconvert \
			--to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=-1 notebooks/*.ipynb; \
	else \
		echo "no notebooks/*.ipynb to execute"; \
	fi

exercises: $(STAMP)
	$(CPU_ENV) $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.record_timing=False notebooks/solutions/*.ipynb
	$(BIN)/python -m kdteach.publish.learner_notebooks --solutions notebooks/solutions \
		--exercises notebooks/exercises --package-data kdteach/exercises/solutions.json

assignments: $(STAMP)
	$(BIN)/python -m kdteach.publish.assignments --course $(COURSE) --solutions notebooks/solutions

slides: $(STAMP)
	$(BIN)/python -m kdteach.publish.slides build notebooks/*.ipynb --out slides

site: $(STAMP)
	KDTEACH_PROFILE=$(PROFILE) $(BIN)/python -m kdteach.publish.site --notebooks notebooks --out site

# jupyter/ holds kdteach-rise-widgets, which lets the widgets draw in RISE's slideshows
lab: $(STAMP)
	OMP_NUM_THREADS=1 JUPYTER_PATH=$(CURDIR)/jupyter$${JUPYTER_PATH:+:$$JUPYTER_PATH} \
		$(BIN)/jupyter lab notebooks/

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS) $(wildcard notebooks)

clean:
	rm -rf results/ artifacts/ build/ dist/ slides/ site/ .pytest_cache/ .ruff_cache/ .coverage
	find . -path ./$(VENV) -prune -o \
		\( -name __pycache__ -o -name .ipynb_checkpoints -o -name '*.egg-info' \) \
		-type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
