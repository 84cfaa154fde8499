# The two commands of the README: `make demo` and `make test`. Both create .venv on
# first use and install the project there, so a fresh clone needs only Python 3.11.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m workflow demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/pyright

pytest: $(STAMP)
	$(PY) -m pytest -q --nbmake tests notebooks

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

test: lint typecheck docs pytest

bench: $(STAMP)
	@for script in benchmarks/*.py; do \
		case $$script in */_*) continue;; esac; \
		echo "# $$script"; $(PY) $$script || exit 1; \
	done

clean:
	rm -rf $(VENV) site .mypy_cache .ruff_cache .pytest_cache .hypothesis
