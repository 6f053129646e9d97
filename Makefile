# Both entry points set themselves up: a fresh clone needs only Python 3.10+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
# FunctionGraph runs Python 3.10: `python3.10` on PATH, else one under pyenv's root. It compiles
# the package's bytecode and runs the cold starts as deployed; where there is one, the suite runs on
# it too. Its own sys.executable, so that a pyenv shim not set to 3.10 is passed over.
PY310  ?= $(firstword $(shell for p in python3.10 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10; do \
            $$p -c 'import sys; assert sys.version_info[:2] == (3, 10); print(sys.executable)' 2>/dev/null; done))
VENV310 := .venv310

.PHONY: demo test lint typecheck unit unit310 mutation bench package clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

demo: $(STAMP)
	$(BIN)/python -m modelarts_cleanup demo

lint: $(STAMP)
	$(BIN)/ruff check src tests handler.py deploy benchmarks
	$(BIN)/ruff format --check src tests handler.py deploy benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict src handler.py deploy/package.py benchmarks

unit: $(STAMP)
	$(BIN)/pytest

# The same tests on Python 3.10, the runtime's version, when the machine has one.
unit310: $(STAMP)
ifeq ($(PY310),)
	@echo "unit310: no Python 3.10 on this machine; the suite ran on $$($(BIN)/python -V) only"
else
	test -x $(VENV310)/bin/python || $(PY310) -m venv $(VENV310)
	test -f $(VENV310)/$(notdir $(STAMP)) || { $(VENV310)/bin/python -m pip install --quiet -e '.[test]' \
		&& rm -f $(VENV310)/.installed-* && touch $(VENV310)/$(notdir $(STAMP)); }
	$(VENV310)/bin/pytest -q -p no:cacheprovider
endif

test: lint typecheck unit unit310

# Mutation testing of the modules that decide what gets deleted: a score per module and every
# surviving mutant (tests/mutation/). Not part of `make test`: 12 to 16 minutes on two cores.
MUTATION_STAMP := $(VENV)/.mutation-$(shell cksum pyproject.toml | cut -d' ' -f1)
$(MUTATION_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,mutation]'
	rm -f $(VENV)/.mutation-*
	touch $@

mutation: $(MUTATION_STAMP)
	rm -rf mutants
	$(BIN)/mutmut run
	$(BIN)/python -m tests.mutation.score

# Against the official SDK and the physical limit, on loopback; prints tables (a few minutes).
# Builds the code package (as `make package` does) for the cold starts as deployed.
bench: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m benchmarks $(if $(PY310),--python $(PY310))

# dist/modelarts-cleanup-<version>.zip for FunctionGraph's Python 3.10 runtime (reproducible),
# its modules compiled by Python 3.10; without one it stops and says how to get one.
package: $(STAMP)
	$(BIN)/python deploy/package.py --out dist $(if $(PY310),--python $(PY310))

clean:
	rm -rf $(VENV) $(VENV310) dist build mutants .pytest_cache .mypy_cache .ruff_cache
