# The two commands: `make run` and `make test`. Each does all the set-up it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask
HOST   ?= 127.0.0.1
PORT   ?= 5000

ROLE   ?= ADMIN
# `make test` runs the suite in this many processes (pytest-xdist, a database each). Most tests wait on
# PostgreSQL, gunicorn or Chromium, so three keep two cores busy; TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 3

.PHONY: run test install install-dev install-npm lock db stop admin lint format bench bench-webhooks bench-webhook-instructions bench-store bench-pages serve clean

# What serving needs (requirements.txt) and, for `make test`, the test and benchmark tools on top.
# constraints.txt pins what those pull in, so every machine installs the versions CI tested.
$(BIN)/.installed: requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed requirements-dev.txt constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

lock: ## after changing requirements*.txt: pin everything they pull in (constraints.txt) from a fresh install
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	{ sed -n '1,2p' constraints.txt; .venv-lock/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .venv-lock

# Clerk's own code for the suite (package.json, pinned by package-lock.json): @clerk/backend as an oracle,
# the clerk-js 6 and @clerk/ui 1 browser bundles. Without node the tests that need them say so and skip.
node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@; \
	else \
	  echo "make: node/npm not found: the tests against Clerk's JS SDK and the real clerk-js bundles will be skipped (install Node.js 20+)."; \
	fi

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev
install-npm: node_modules/.installed

db: install ## create or migrate the schema (starts the embedded PostgreSQL when DATABASE_URL is unset)
	@$(FLASK) db upgrade

run: db ## the app on http://$(HOST):$(PORT), with the demo catalogue (make run PORT=8000 for another port)
	@$(FLASK) seed
	$(FLASK) run --host $(HOST) --port $(PORT)

stop: install ## stop the embedded PostgreSQL that `make run` started (its data stays in instance/pgdata)
	@$(BIN)/python -m devtools.embedded_postgres stop

admin: db ## make someone staff: make admin EMAIL=ada@example.com (ROLE=CLIENT undoes it); they must have signed in once
	@test -n "$(EMAIL)" || { echo "make admin needs EMAIL=<e-mail or Clerk user id>, e.g. make admin EMAIL=ada@example.com"; exit 2; }
	@$(FLASK) users set-role "$(EMAIL)" $(ROLE)

# Bytecode written even where PYTHONDONTWRITEBYTECODE is set (some machines set it): without it each worker
# compiles and assertion-rewrites every test module again on every run, 4 s of collection out of 6.7.
test: install-dev install-npm ## the whole suite, against the embedded PostgreSQL or TEST_DATABASE_URL
	PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: bench-webhooks bench-store bench-pages ## every benchmark in bench/

bench-webhooks: install-dev ## signed user.updated deliveries through gunicorn, beside /api/health (needs wrk)
	$(BIN)/python bench/webhooks.py

bench-webhook-instructions: install-dev ## instructions per webhook delivery, shop against the raw-SQL floor, counted by callgrind (needs valgrind)
	$(BIN)/python bench/webhook_instructions.py

bench-store: install-dev ## catalogue and cart pages through gunicorn, signed in and out; orders of a user among 1,000,000 (needs wrk)
	$(BIN)/python bench/store.py

bench-pages: install-dev install-npm ## page weight: requests and bytes of home, product and cart, first and repeat view, in Chromium (gunicorn, and nginx in front when installed)
	$(BIN)/python bench/pages.py

serve: db ## production server: gunicorn with gunicorn.conf.py (needs DATABASE_URL and SECRET_KEY)
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

clean:
	rm -rf $(VENV) node_modules .pytest_cache .ruff_cache

.PHONY: serve-proxy bench-slow-clients

serve-proxy: db ## production topology: nginx (deploy/nginx/) on PROXY_LISTEN (127.0.0.1:8080) in front of gunicorn on GUNICORN_BIND (127.0.0.1:8000), as the current user
	$(BIN)/python deploy/proxy.py

bench-slow-clients: install-dev ## 50 slow-header + 50 slow-body connections beside /api/health: bare gunicorn, then nginx in front (needs nginx)
	$(BIN)/python bench/slow_clients.py
