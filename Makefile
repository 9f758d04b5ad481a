# The two commands a new user needs: `make run` (set up, train on the embedded data if needed, serve)
# and `make test`. Everything else is a building block of those.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARTIFACTS ?= artifacts

.PHONY: install train run serve test test-fast lint browser-deps axe-deps docker-deps proxy-deps load-deps image-test clean bench bench-quick bench-full notebook

$(STAMP): requirements.txt requirements-dev.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt -e .
	touch $(STAMP)

install: $(STAMP)

train: install
	$(PY) pipeline/training_pipeline.py

# Train only when no complete model artifacts exist yet, then serve on http://$(HOST):$(PORT) (127.0.0.1:5000 unless
# HOST or PORT say otherwise, e.g. `PORT=8080 make run`: port 5000 is taken on many laptops)
HOST ?= 127.0.0.1
PORT ?= 5000
run: install
	@test -f $(ARTIFACTS)/model/manifest.json || $(PY) pipeline/training_pipeline.py
	HOST=$(HOST) PORT=$(PORT) $(PY) application.py

# Production serving, exactly what the container runs (deploy/serve.py): Debian's nginx on 127.0.0.1:$${PORT:-5000}
# in front of gunicorn (gunicorn.conf.py) on a Unix socket; nginx holds slow clients, limits requests per client and
# refuses oversized requests (deploy/traffic.yaml), serves /static. `kill -HUP <its pid>` reloads the model.
serve: install proxy-deps
	$(PY) -m deploy.serve --host 127.0.0.1

# Debian's nginx for `make serve` and the tests of the production stack, as browser-deps installs Chromium (root on
# CI and dev machines). Installed only: where systemd would start Debian's own nginx service, it is stopped again.
proxy-deps:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null \
	    && { [ ! -d /run/systemd/system ] || systemctl disable --now nginx >/dev/null 2>&1 || true; }; }

# Debian's wrk, the benchmarks' HTTP load generator (a tenth of locust's CPU; the paced load needs it), as
# browser-deps installs Chromium. Without it (no root) the benchmarks fall back to locust and skip the paced load.
load-deps:
	@command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } \
	  || echo "wrk could not be installed: the HTTP benchmarks use locust and skip the paced load"

# Debian's Chromium and its driver for the real-browser tests (root on CI and dev machines).
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

# axe-core, the accessibility scan the browser tests inject into every page, from the npm registry at the version
# tests/a11y/package-lock.json pins, into tests/a11y/node_modules (git-ignored). Node.js and npm come from Debian
# when the machine has none (root, as for Chromium).
AXE := tests/a11y/node_modules/axe-core/axe.min.js
axe-deps: $(AXE)

$(AXE): tests/a11y/package.json tests/a11y/package-lock.json
	@command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	npm ci --prefix tests/a11y --no-audit --no-fund --loglevel=error
	@touch $@

# A Docker engine for the image test, as browser-deps installs Chromium: Debian's docker.io and debootstrap
# installed and dockerd started when none answers (root; docker/engine.sh). Without root and without an engine it
# does nothing, and tests/test_image.py skips with one line.
docker-deps:
	@docker/engine.sh

# The real container image (tests/test_image.py): built from a clean export of HEAD by docker/build-image.sh (the
# Jenkinsfile's command; on the stand-in base of docker/standin-base.sh where no registry answers), then run as
# deployment.yaml runs the pod, and checked from outside and inside. `make test` runs it too.
image-test: install docker-deps
	$(PY) -m pytest tests/test_image.py

# Everything: the lint, then every test tier (unit, integration with real training and servers, the container
# image, browser).
test: install browser-deps axe-deps docker-deps proxy-deps load-deps lint
	$(PY) -m pytest

# The unit tier alone, in under a minute: no training, no gunicorn or browser (markers in pytest.ini).
test-fast: install
	$(PY) -m pytest -m "not integration and not browser"

lint: install
	$(VENV)/bin/ruff check .

# The notebook (notebook/anime.ipynb) executed top to bottom on the artifacts and rendered to
# $(ARTIFACTS)/reports/notebook.html: a model is trained first when there is none, and the evaluation reports are
# made when missing (from the evaluation model, trained again only when it is gone). The kernel is this venv's.
NOTEBOOK_ENV := ANIME_ARTIFACTS_DIR=$(abspath $(ARTIFACTS)) TF_CPP_MIN_LOG_LEVEL=3
notebook: install
	@test -f $(ARTIFACTS)/model/manifest.json || $(NOTEBOOK_ENV) $(PY) pipeline/training_pipeline.py
	@test -f $(ARTIFACTS)/reports/metrics.json || { \
	  { test -f $(ARTIFACTS)/evaluation/model/manifest.json || \
	    $(NOTEBOOK_ENV) $(PY) pipeline/training_pipeline.py --stage train; } && \
	  $(NOTEBOOK_ENV) $(PY) pipeline/training_pipeline.py --stage evaluate; }
	$(NOTEBOOK_ENV) $(PY) -m jupyter nbconvert --to html --execute notebook/anime.ipynb \
	  --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=900 \
	  --output-dir $(ARTIFACTS)/reports --output notebook

# Benchmarks (python -m bench.run, from the repository root): bench/results/bench.json and summary.md;
# `make bench` adds the soak (soak.json). The HTTP load generator is Debian's wrk (load-deps).
# bench-quick uses artifacts/model, or trains a small model first when there is none, then runs the whole
# pipeline on a 10 M-row synthetic file (issue 14's budget: 300 s, 6 GB). bench-full does the same at the full
# 2020 size, 109 M rows, then serves the model it published (budget: 30 minutes, 10 GB; bench/RESULTS.md).
bench: install proxy-deps load-deps
	$(PY) -m bench.run
	@# The 2-minute soak (issue 7) against the served model: zero 5xx, no dropped connection, flat memory.
	@test -f $(ARTIFACTS)/model/manifest.json || $(PY) -m pipeline.training_pipeline
	$(PY) -m bench.soak --seconds 120 --artifacts $(ARTIFACTS) --output bench/results/soak.json

bench-quick: install proxy-deps load-deps
	$(PY) -m bench.run --quick
	$(PY) -m bench.full_size --rows 10000000 --skip-serving

bench-full: install proxy-deps load-deps
	$(PY) -m bench.full_size --rows 109224747 --max-users 8000

clean:
	rm -rf $(ARTIFACTS) .pytest_cache
