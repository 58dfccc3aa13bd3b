# `make demo` and `make test` do all set-up on a fresh Debian machine (as root they also
# install the Debian packages the tests use); both create or reuse .venv.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEB_PKGS := libpcap-dev tshark tcpdump iproute2 tmux ethtool

.PHONY: demo test lint deb clean notebook

$(STAMP): pyproject.toml
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then $(MAKE) --no-print-directory deb; fi
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	PYTHONWARNINGS=ignore $(VPY) -m pip install -q -e '.[test]'
	touch $(STAMP)

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
	  "mostool flows --help; the notebooks in notebooks/ (pip install -e '.[notebook]')"

test: $(STAMP)
	$(VPY) -m ruff check mostool tests
	$(VPY) -m mypy mostool
	$(VPY) -m pytest

# JupyterLab on notebooks/ (the notebook extra is in the test extra; JupyterLab is added here)
notebook: $(STAMP)
	PYTHONWARNINGS=ignore $(VPY) -m pip install -q -e '.[jupyter]'
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

lint: $(STAMP)
	$(VPY) -m ruff check mostool tests
	$(VPY) -m mypy mostool

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
