# Shortcuts over dev.py and manage.py; dev.py itself needs nothing but Python.
PY := .venv/bin/python

.PHONY: up test stop smoke migrate bench lint fmt
up:
	python3 dev.py up
test:
	python3 dev.py test
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
# mypy loads the settings only to read the models: a placeholder DATABASE_URL keeps it from
# starting the embedded PostgreSQL; nothing connects to it.
lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	DATABASE_URL=$${DATABASE_URL:-postgres://mypy@127.0.0.1:1/mypy} $(PY) -m mypy
# Rewrite the tree: autofixable lint findings, then the formatter.
fmt:
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .
