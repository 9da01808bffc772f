# jailadmin — `make run` serves the site, `make test` runs lint and the whole test suite.
# Both install what is missing first (Debian packages, the venv, fail2ban unpacked into var/).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VAR := var
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 3
APT_PACKAGES := python3 python3-venv redis-server chromium sqlite3
export JAILADMIN_VAR_DIR ?= $(CURDIR)/$(VAR)

.PHONY: install system-packages fail2ban venv test lint format run bench screenshot clean

install: system-packages fail2ban venv

# Debian packages the project needs; apt runs only when one of them is missing.
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Debian's fail2ban, unpacked (not installed): no system service, config or firewall is touched.
# Debian 12's 1.0.2 in var/fail2ban; Debian 13's 1.1.0 in var/fail2ban-1.1 (through a private
# apt configuration in var/apt-trixie: the system's apt lists are never touched).
fail2ban: $(VAR)/fail2ban/bin/fail2ban-client $(VAR)/fail2ban-1.1/bin/fail2ban-client
$(VAR)/fail2ban/bin/fail2ban-client:
	bash scripts/install-fail2ban.sh $(VAR)/fail2ban
$(VAR)/fail2ban-1.1/bin/fail2ban-client:
	bash scripts/install-fail2ban.sh $(VAR)/fail2ban-1.1 trixie

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# mypy runs with JAILADMIN_DEBUG=true: the django-stubs plugin imports the settings, which
# refuse to load without a secret key unless DEBUG is on (only its development key is used).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-cache
	JAILADMIN_DEBUG=true $(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The whole suite on fail2ban 1.0, then the fail2ban-facing tests again on 1.1
# (JAILADMIN_TEST_FAIL2BAN selects the unpacked version the private servers run).
# The `fail2ban` marker is the set, not a file list, so it cannot drift: tests/conftest.py
# puts it on everything in tests/fail2ban/ and tests/services/, other modules opt in.
test: install lint
	JAILADMIN_DEBUG=false JAILADMIN_TEST_FAIL2BAN=1.0 $(PY) -m pytest $(PYTEST_ARGS)
	JAILADMIN_DEBUG=false JAILADMIN_TEST_FAIL2BAN=1.1 $(PY) -m pytest -m "fail2ban and not slow" $(PYTEST_ARGS)

run: install
	bash scripts/run.sh

# Each benchmark runs in its own throw-away directory whatever JAILADMIN_* says (the
# JAILADMIN_VAR_DIR exported above included): bench/common.py. Never the site's var/.
bench: install
	$(PY) bench/run_all.py

# Dashboard and history screenshots (headless Chromium) into artifacts/.
screenshot: install
	$(PY) scripts/screenshot_dashboard.py --out artifacts

clean:
	rm -rf $(VENV) $(VAR)
