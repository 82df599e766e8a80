# The README's commands. Both bootstrap a virtual environment from the lock file first,
# so a fresh clone on a machine with only Python 3.11 needs nothing else.
PYTHON ?= python3.11
VENV   := .venv
TOOLS  := .tools
UV     := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: demo test install lint format typecheck schemas bench clean

## Set up everything and run the live end-to-end loop (Ctrl-C to stop).
demo: install
	$(VENV)/bin/homeloop demo $(ARGS)

## Lint, type-check and run the whole test suite (unit and integration, on real services).
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest $(ARGS)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

$(TOOLS)/bin/uv:
	$(shell command -v $(PYTHON) || command -v python3) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet "uv>=0.5"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

typecheck: install
	$(VENV)/bin/mypy

schemas: install
	$(VENV)/bin/homeloop schemas

clean:
	rm -rf $(VENV) $(TOOLS) .homeloop .pytest_cache .mypy_cache .ruff_cache
