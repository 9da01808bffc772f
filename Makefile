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
# openssh-client: the site reaches other fail2ban hosts' agents with `ssh` (jails/agent/ssh.py).
APT_PACKAGES := python3 python3-venv redis-server chromium sqlite3 openssh-client
# Only for `make test` (an operator's `make run` never installs a web server or a database
# server): postgresql for its binaries (`make test-postgres` runs a private cluster,
# scripts/postgres.sh; the `main` cluster Debian's package may create is never used); nginx,
# caddy, openssl: the reverse-proxy tests run their own nginx and Caddy with a self-signed
# certificate (tests/support/nginx.py, caddy.py); the system's services are never configured.
# openssh-server: the fleet tests run their own sshd on a private port (tests/support/sshd.py);
# apt-install keeps Debian's from starting or being enabled when it installs it (below).
# gettext: `make messages` and the catalogue tests (tests/i18n/) run makemessages and msgfmt;
# `make run` needs none of it, the compiled catalogues are committed.
APT_TEST_PACKAGES := postgresql nginx caddy openssl openssh-server gettext
export JAILADMIN_VAR_DIR ?= $(CURDIR)/$(VAR)

.PHONY: install test-install test-vendor test-packages apt-install system-packages fail2ban venv test test-sqlite test-sqlite-1.0 test-sqlite-1.1 test-postgres lint format coverage run bench screenshot mutation messages clean

install: system-packages fail2ban venv
test-install: install test-packages test-vendor
# axe-core for the accessibility tests (tests/a11y/): the pinned npm tarball, its sha512 checked
# against the registry's integrity, unpacked into .test-vendor/ (git-ignored); never served.
test-vendor: venv
	$(PY) -m tests.support.axe

# Debian packages the project needs; apt runs only when one of them is missing.
system-packages:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"
test-packages:
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_TEST_PACKAGES)"
apt-install:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  guard=""; case " $$missing " in *" openssh-server "*) \
	    if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && guard=1; \
	    fi;; esac; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  status=$$?; \
	  if [ -n "$$guard" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	  case " $$missing " in *" openssh-server "*) \
	    if command -v systemctl >/dev/null 2>&1; then \
	      systemctl disable --quiet ssh.service ssh.socket >/dev/null 2>&1 || true; \
	    fi;; esac; \
	  exit $$status; \
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
# TEST_WORKERS pytest-xdist processes (each has its own private fail2ban, Redis, static files
# and test database); TEST_WORKERS=0 runs in this process, for a debugger.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS)
# The 1.1 pass and the PostgreSQL pass run side by side: each alone leaves the cores idle
# much of the time (its tests wait on fail2ban, sshd, PostgreSQL), and nothing they start is
# shared (every server, directory and database is private to its pytest process). Together
# 9.4 min on a fresh clone, against 5.5 + 10.6 min one after the other.
# --output-sync prints each pass's output whole when it ends.
test: test-install lint test-sqlite-1.0
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-sqlite-1.1 test-postgres
test-sqlite: test-sqlite-1.0 test-sqlite-1.1
test-sqlite-1.0: test-install
	JAILADMIN_DEBUG=false JAILADMIN_TEST_FAIL2BAN=1.0 $(PYTEST) $(PYTEST_ARGS)
test-sqlite-1.1: test-install
	JAILADMIN_DEBUG=false JAILADMIN_TEST_FAIL2BAN=1.1 $(PYTEST) -m "fail2ban and not slow" $(PYTEST_ARGS)

# The whole suite again on PostgreSQL (fail2ban 1.0 only: the 1.1 pass checks fail2ban, not
# the database). scripts/postgres.sh runs a private cluster in var/postgres (Unix socket only,
# an unprivileged user), started if needed and stopped again if this run started it. The
# database name is unique to the run ($$$$: the shell's pid), so two runs never meet;
# pytest-django creates test_<name>_gwN for each xdist worker and drops it at the end.
# Left out: tests marked no_site_database, which tests/conftest.py puts on every test that
# pytest-django would refuse a query (no django_db marker, no database fixture); the browser
# tests serve the site on their own SQLite file. On PostgreSQL they would run the very same
# thing again.
test-postgres: test-install
	bash scripts/postgres.sh run env JAILADMIN_DEBUG=false JAILADMIN_TEST_FAIL2BAN=1.0 \
	  JAILADMIN_DATABASE_URL="$$(bash scripts/postgres.sh url jailadmin_$$$$)" \
	  $(PYTEST) -m "not no_site_database" $(PYTEST_ARGS)

# Branch coverage of both `make test` passes, Python subprocesses included ([tool.coverage] in
# pyproject.toml, README "Coverage"). Not part of `make test`: measuring slows the suite down.
# Every process writes its own data file into COVERAGE_DIR; they are combined, then reported
# on the terminal and as HTML in COVERAGE_DIR/html. The report is printed even when a test
# fails, and the target then fails too.
COVERAGE_DIR ?= $(CURDIR)/.coverage-data
COVERAGE := COVERAGE_FILE=$(COVERAGE_DIR)/coverage $(PY) -m coverage
# Budgets the measurement itself breaks: coverage loaded into the agent adds about 1 MB to
# its resident memory. `make test` keeps checking them.
COVERAGE_DESELECT := --deselect tests/agent/test_agent_server.py::test_agent_resident_memory_while_serving_stays_under_30_mb
coverage: test-install
	rm -rf $(COVERAGE_DIR) && mkdir -p $(COVERAGE_DIR)
	status=0; \
	JAILADMIN_DEBUG=false JAILADMIN_TEST_FAIL2BAN=1.0 $(COVERAGE) run -m pytest -n $(TEST_WORKERS) $(COVERAGE_DESELECT) $(PYTEST_ARGS) || status=$$?; \
	JAILADMIN_DEBUG=false JAILADMIN_TEST_FAIL2BAN=1.1 $(COVERAGE) run -m pytest -n $(TEST_WORKERS) -m "fail2ban and not slow" $(COVERAGE_DESELECT) $(PYTEST_ARGS) || status=$$?; \
	$(COVERAGE) combine --quiet && $(COVERAGE) html -q -d $(COVERAGE_DIR)/html && $(COVERAGE) report || status=$$?; \
	echo "HTML report: $(COVERAGE_DIR)/html/index.html"; \
	exit $$status

run: install
	bash scripts/run.sh

# Each benchmark runs in its own throw-away directory whatever JAILADMIN_* says (the
# JAILADMIN_VAR_DIR exported above included): bench/common.py. Never the site's var/.
bench: install
	$(PY) bench/run_all.py

# Mutation testing of the Django-free packages (README, "Mutation testing"); not part of `make test`.
# mutmut 3 works in mutants/ (git-ignored; kept between runs, it only re-tests what changed).
# PrivateServer looks for the unpacked fail2ban beside its own package, so mutants/var links to var/.
# MUTANTS narrows the run, e.g. make mutation MUTANTS='jails.fail2ban.validation*'.
MUTATION_CHILDREN ?= 2
mutation: install
	mkdir -p mutants && ln -sfn ../$(VAR) mutants/var
	JAILADMIN_DEBUG=false $(VENV)/bin/mutmut run --max-children $(MUTATION_CHILDREN) $(MUTANTS)
	$(VENV)/bin/mutmut results

# The translation catalogues (README, "Languages"): makemessages for every language over
# jails/, jailadmin/ and templates/, then msgfmt; commit the .po and .mo files it changes.
messages: venv
	@$(MAKE) --no-print-directory apt-install PACKAGES="gettext"
	$(PY) scripts/messages.py

# Dashboard and history screenshots (headless Chromium) into artifacts/.
screenshot: install
	$(PY) scripts/screenshot_dashboard.py --out artifacts

clean:
	rm -rf $(VENV) $(VAR) mutants .test-vendor
