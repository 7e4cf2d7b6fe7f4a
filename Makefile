# Insurance Navigator document pipeline. `make run` and `make test` set everything up themselves.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test stop samples clean-data setup bench setup-local eval-search bench-search

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

# The components nothing may slip through: each needs 95% line coverage or `make test` fails.
CRITICAL := ingestion/pipeline/runner.py ingestion/statuses.py ingestion/services.py \
	ingestion/providers/llamaparse.py ingestion/providers/openai_embeddings.py

test: $(STAMP)
	$(PY) -m pytest --cov=ingestion --cov=navigator --cov=fakes --cov=monitoring --cov-report=term $(PYTEST_ARGS)
	@echo "Critical components (95% line coverage each):"
	@$(PY) -m coverage report --include="$$(echo $(CRITICAL) | tr ' ' ',')"
	@for f in $(CRITICAL); do $(PY) -m coverage report --include=$$f --fail-under=95 >/dev/null \
		|| { echo "$$f is under 95% line coverage"; exit 1; }; done

bench: setup
	$(PY) manage.py bench $(BENCH_ARGS)

# The local embedding backend in its own venv (PyTorch CPU + all-MiniLM-L6-v2); requirements.txt stays lean.
LOCAL_VENV := .venv-local
LOCAL_STAMP := $(LOCAL_VENV)/.installed
$(LOCAL_STAMP): requirements.txt requirements-local.txt
	@test -x $(LOCAL_VENV)/bin/python || $(PYTHON) -m venv $(LOCAL_VENV) || python3 -m venv $(LOCAL_VENV)
	$(LOCAL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(LOCAL_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-local.txt
	@touch $(LOCAL_STAMP)

setup-local: $(LOCAL_STAMP)

# Search quality on the labelled sample questions (fake embeddings; add the local model when installed).
# queries.json is the set the search was tuned on; heldout.json was never used to tune it.
EVAL_SETS := samples/eval/queries.json samples/eval/heldout.json
eval-search: setup
	@for set in $(EVAL_SETS); do $(PY) manage.py eval_search --queries $$set || exit 1; \
		if test -x $(LOCAL_VENV)/bin/python; then HF_HUB_OFFLINE=1 $(LOCAL_VENV)/bin/python manage.py eval_search \
			--queries $$set --backend local || exit 1; fi; done

bench-search: setup
	$(PY) manage.py bench_search --chunks 1000 5000 20000

stop: $(STAMP)
	$(PY) -m navigator.embedded_db stop

samples: $(STAMP)
	$(PY) samples/generate.py

clean-data: stop
	rm -rf .data
