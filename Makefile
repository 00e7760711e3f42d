# lth: make venv | make demo | make test
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv demo test lint bench clean

$(BIN)/lth:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip setuptools wheel
	# torch and torchvision are pinned exactly: an unpinned torch would pull another build.
	$(BIN)/pip install torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -e '.[dev,ray,slurm,dali]'

venv: $(BIN)/lth

demo: $(BIN)/lth
	$(BIN)/lth demo --root runs/demo

test: $(BIN)/lth
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest

lint: $(BIN)/lth
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV)
