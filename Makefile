# `make demo` and `make test` do all set-up on a fresh Debian machine (as root they also
# install the Debian packages the tests use); both create or reuse .venv.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the compiled engine (setup.py, mostool/_build.py): rebuilt in place whenever a source of it
# changes, so `make test` runs the suite on compiled code made from the tree as it is
# (MOSTOOL_PURE=1 make test: pure Python, nothing compiled)
BUILT := mostool/_compiled.json
ENGINE_SRC := $(wildcard mostool/stack/*.py mostool/events/*.py mostool/stack/*.c) \
	mostool/config.py mostool/errors.py mostool/_build.py setup.py
# gcc and python3-dev: the compiled engine (without them it installs as pure Python)
DEB_PKGS := libpcap-dev tshark tcpdump iproute2 tmux ethtool gcc python3-dev

.PHONY: demo test lint deb clean build notebook

# dependencies and an editable pure install; `build` then compiles (and says how long)
$(STAMP): pyproject.toml
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then $(MAKE) --no-print-directory deb; fi
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	PYTHONWARNINGS=ignore MOSTOOL_PURE=1 $(VPY) -m pip install -q -e '.[test]'
	touch $(STAMP)

build: $(STAMP)
	@if [ -n "$$MOSTOOL_PURE" ] && [ "$$MOSTOOL_PURE" != 0 ]; then \
	  rm -f $(BUILT); find mostool -name '*.so' -delete; echo "pure Python build"; \
	else $(MAKE) --no-print-directory $(BUILT); fi

$(BUILT): $(ENGINE_SRC) pyproject.toml
	@echo "compiling the engine with mypyc (about 40 s on 2 cores) ..."
	@t0=$$(date +%s); $(VPY) -m pip install -q --no-deps -e . && \
	  echo "compiled engine built in $$(( $$(date +%s) - t0 )) s"
	@test -f $(BUILT) || echo "no compiled engine (see pip output): running pure Python"

deb:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: $(STAMP)
	@$(VENV)/bin/mostool flows -r sample_pcaps/http_small.pcap --format table
	@$(VENV)/bin/mostool run -r sample_pcaps/http_small.pcap --app http
	@echo
	@echo "next: mostool watch -r sample_pcaps/http_small.pcap --app http --speed 1 --hold" \
	  "(q quits); mostool streams -r sample_pcaps/http_small.pcap -o streams/;" \
	  "mostool flows --help; make notebook (JupyterLab on notebooks/)"

test: build
	$(VPY) -m ruff check mostool tests
	$(VPY) -m mypy mostool
	$(VPY) -c 'import mostool; print(mostool.version_text())'
	$(VPY) -m pytest

# JupyterLab on notebooks/ (the notebook extra is in the test extra; JupyterLab is added here)
notebook: $(STAMP)
	PYTHONWARNINGS=ignore $(VPY) -m pip install -q -e '.[jupyter]'
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

lint: $(STAMP)
	$(VPY) -m ruff check mostool tests
	$(VPY) -m mypy mostool

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build $(BUILT)
	find mostool -name '*.so' -delete
