# Insurance Navigator document pipeline. `make run` and `make test` set everything up themselves.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test stop samples clean-data setup bench

$(STAMP): requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

setup: $(STAMP)
	$(PY) -m navigator.embedded_db start >/dev/null
	$(PY) manage.py migrate --noinput -v0

run: setup
	$(PY) manage.py demo_admin
	$(VENV)/bin/honcho start -f Procfile

test: $(STAMP)
	$(PY) -m pytest --cov=ingestion --cov=navigator --cov=fakes --cov=monitoring --cov-report=term $(PYTEST_ARGS)

bench: setup
	$(PY) manage.py bench $(BENCH_ARGS)

stop: $(STAMP)
	$(PY) -m navigator.embedded_db stop

samples: $(STAMP)
	$(PY) samples/generate.py

clean-data: stop
	rm -rf .data
