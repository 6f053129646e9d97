# Both entry points set themselves up: a fresh clone needs only Python 3.10+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint typecheck unit bench package clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/python -m modelarts_cleanup demo

lint: $(STAMP)
	$(BIN)/ruff check src tests handler.py deploy
	$(BIN)/ruff format --check src tests handler.py deploy

typecheck: $(STAMP)
	$(BIN)/mypy --strict src handler.py deploy/package.py

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

# dist/modelarts-cleanup-<version>.zip for FunctionGraph's Python 3.10 runtime (reproducible).
package: $(STAMP)
	$(BIN)/python deploy/package.py --out dist

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
