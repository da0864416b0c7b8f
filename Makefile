# Two entry points: `make run` (the pipeline, default config.yaml) and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= all
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test

$(VENV)/installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/installed
	$(VENV)/bin/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

test: $(VENV)/installed
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
