# The two commands: `make run` and `make test`. Each does all the set-up it needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
FLASK  := $(BIN)/flask
HOST   ?= 127.0.0.1
PORT   ?= 5000

.PHONY: run test install db lint format bench bench-webhooks bench-store serve clean

$(BIN)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

db: install ## create or migrate the schema (starts the embedded PostgreSQL when DATABASE_URL is unset)
	$(FLASK) db upgrade

run: db ## the app on http://$(HOST):$(PORT), with the demo catalogue
	$(FLASK) seed
	$(FLASK) run --host $(HOST) --port $(PORT)

test: install ## the whole suite, against the embedded PostgreSQL or TEST_DATABASE_URL
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: bench-webhooks bench-store ## every benchmark in bench/

bench-webhooks: install ## signed user.updated deliveries through gunicorn, beside /api/health (needs wrk)
	$(BIN)/python bench/webhooks.py

bench-store: install ## catalogue and cart pages through gunicorn, signed in and out; orders of a user among 1,000,000 (needs wrk)
	$(BIN)/python bench/store.py

serve: db ## production server: gunicorn with gunicorn.conf.py (needs DATABASE_URL and SECRET_KEY)
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
