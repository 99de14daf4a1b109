# Shortcuts over dev.py and manage.py; dev.py itself needs nothing but Python.
PY := .venv/bin/python

.PHONY: up test stop smoke migrate bench
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
