# The two commands of the README: `make run` and `make test`. Both work on a fresh Debian machine.
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# What the tests need from Debian: a real browser, ffprobe, a Redis server, Janus (the
# benchmark comparison), ip (its network namespace) and coturn (the TURN relay's tests; `make
# run` needs no TURN).
TEST_DEBS := chromium ffmpeg redis-server janus iproute2 ethtool coturn procps
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test fuzz setup test-setup system-test-deps lint clean

run: setup
	$(VENV)/bin/mediaserver serve --dev

test: test-setup
	$(PY) -m ruff check .
	$(PY) -m pytest

# Before a release: every property-based test (parsers, WebSocket methods, HTTP bodies) with
# 100,000 cases each, against the same code as `make test` (docs/operations.md, "Fuzzing").
fuzz: test-setup
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -p no:cacheprovider -m fuzz --timeout=0 -q

# hls.js for the recording player, uPlot for the analytics dashboard's charts, from the npm
# registry (never fetched at run time)
HLS_JS := web_client/vendor/hls.min.js
UPLOT_JS := web_client/vendor/uPlot.iife.min.js

setup: $(VENV)/.installed $(HLS_JS) $(UPLOT_JS)

test-setup: system-test-deps $(VENV)/.installed-test $(HLS_JS) $(UPLOT_JS)

$(HLS_JS):
	@command -v npm >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm; }
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix .npm hls.js@1.6
	mkdir -p $(dir $@) && cp .npm/node_modules/hls.js/dist/hls.min.js $@

# its own prefix: npm may prune what another install left in one (and make -j runs both)
$(UPLOT_JS):
	@command -v npm >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm; }
	npm install --silent --no-save --no-package-lock --no-audit --no-fund --prefix .npm/uplot \
	  uplot@1.6
	mkdir -p $(dir $@) && cp .npm/uplot/node_modules/uplot/dist/uPlot.iife.min.js \
	  .npm/uplot/node_modules/uplot/dist/uPlot.min.css $(dir $@)

$(VENV)/bin/python:
	@python3 -m venv --help >/dev/null 2>&1 && python3 -c 'import ensurepip' 2>/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv python3-dev; }
	@# a C compiler and Python's headers: the install compiles mediaserver/native/
	@command -v cc >/dev/null 2>&1 && python3 -c 'import sysconfig, os, sys; \
	  sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq gcc libc6-dev python3-dev; }
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# the C parts of the packet path are compiled by the install (setup.py, mediaserver/native/)
NATIVE := setup.py $(wildcard mediaserver/native/*.c mediaserver/native/*_build.py)

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml $(NATIVE)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/bin/python pyproject.toml $(NATIVE)
	$(PY) -m pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

system-test-deps:
	@missing=""; for p in $(TEST_DEBS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) data .pytest_cache .npm web_client/vendor
