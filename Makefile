# Shortcuts over dev.py and manage.py; dev.py itself needs nothing but Python.
PY := .venv/bin/python

.PHONY: up test test-fast stop smoke migrate bench lint fmt
up:
	python3 dev.py up
test:
	python3 dev.py test
test-fast:
	python3 dev.py test --fast
stop:
	python3 dev.py stop
smoke:
	python3 dev.py up --smoke
migrate:
	$(PY) manage.py migrate
# Benchmark against bare SQL (BENCHMARKS.md); needs DATABASE_URL. make bench BENCH_ARGS="--scale large"
bench:
	$(PY) -m bench.run $(BENCH_ARGS)
# Lint (ruff), format check and type check (mypy with django-stubs, pyproject.toml); CI runs this.
# mypy loads the settings only to read the models: BAGTRACKER_START_EMBEDDED=0 keeps them from
# starting the embedded PostgreSQL and Valkey (as for `manage.py embedded_db`); nothing connects.
lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	BAGTRACKER_START_EMBEDDED=0 $(PY) -m mypy
# Rewrite the tree: autofixable lint findings, then the formatter.
fmt:
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .
