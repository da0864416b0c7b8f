# Two entry points: `make run` (the pipeline, default config.yaml, then its report) and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= all
SNAKEMAKE_ARGS ?=
PYTEST_ARGS ?=

.PHONY: run test test-slurm lint

$(VENV)/installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

# The run ends with the HTML report of whatever the run built (results/report.html).
run: $(VENV)/installed
	$(VENV)/bin/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)
	$(VENV)/bin/snakemake $(SNAKEMAKE_ARGS) --report results/report.html

test: $(VENV)/installed
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Opt-in: the pipeline on a one-node SLURM cluster started here (root; installs slurm-wlm, munge).
test-slurm: $(VENV)/installed
	SYNTHECG_SLURM_TEST=1 $(VENV)/bin/python -m pytest -m slurm $(PYTEST_ARGS)

# Snakemake's linter and formatter check (also part of `make test`, in tests/test_lint.py).
lint: $(VENV)/installed
	$(VENV)/bin/snakemake --lint
	$(VENV)/bin/snakefmt --check Snakefile workflow/
