# Switchboard: `make run` serves the whole product, `make test` runs everything.
SHELL := /bin/bash
.DEFAULT_GOAL := run
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQS := $(wildcard requirements/*.txt)
# Re-install only when a requirements file changed (keeps a second `make run` fast).
STAMP := $(VENV)/.installed-$(shell cat $(REQS) | sha1sum | cut -c1-12)

export OPENROUTER_URL ?=
export REDIS_URL ?= redis://127.0.0.1:6379/0
WEB_PORT ?= 8000
# Websockets are accepted only from the site's own origin: follow the port when it is changed.
export SITE_URL ?= http://127.0.0.1:$(WEB_PORT)
SANDBOX_PORT ?= 8001

.PHONY: run test lint format setup system-packages test-packages bench clean

# System packages come from apt, only when missing (Debian 12; as root or with sudo).
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)
system-packages:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$(WITH_BROWSER)" ]; then command -v chromium >/dev/null || missing="$$missing chromium"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "Installing system packages:$$missing"; \
	  $(APT) update -q && DEBIAN_FRONTEND=noninteractive $(APT) install -y -q $$missing; \
	fi

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	@rm -f $(VENV)/.installed-*; touch $@

setup: system-packages $(STAMP)

run: setup
	@$(PY) manage.py migrate --noinput -v 0
	@procs="web worker ready"; \
	if ! $(VENV)/bin/python -c "import redis,os; redis.Redis.from_url(os.environ['REDIS_URL'], socket_connect_timeout=1).ping()" 2>/dev/null; then \
	  procs="redis $$procs"; fi; \
	if [ -z "$$OPENROUTER_URL" ]; then procs="sandbox $$procs"; \
	  export OPENROUTER_URL=http://127.0.0.1:$(SANDBOX_PORT); fi; \
	export WEB_PORT=$(WEB_PORT) SANDBOX_PORT=$(SANDBOX_PORT) WEB_CPU=$${WEB_CPU-auto}; \
	export REDIS_PORT=$$(echo "$$REDIS_URL" | sed -E 's#.*:([0-9]+)(/.*)?$$#\1#'); \
	exec $(VENV)/bin/honcho start $$procs

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: WITH_BROWSER=1
test: setup lint
	$(PY) -m pytest

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
