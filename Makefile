# Two commands for a fresh clone: `make demo` runs the whole pipeline, `make test` runs the tests.
# Both create the virtual environment in .venv on first use.
VENV ?= .venv
PYTHON ?= python3

.PHONY: demo test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# PYTHONWARNINGS: setuptools' editable-install banner is advice for package authors, not for a first run.
	PYTHONWARNINGS=ignore $(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/balanceit demo

test: $(VENV)/.installed
	$(VENV)/bin/python -m pytest

clean:
	rm -rf .balanceit
