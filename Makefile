# Two commands on a fresh machine: `make run` (the whole pipeline) and `make test`.
# Both create .venv with every extra when it is missing or older than pyproject.toml; a second
# run reinstalls nothing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= $(firstword $(wildcard $(MNIST_EDGE_DATA) ../shared/data/mnist.npz))
OUT    ?= artifacts
DATA_FLAG := $(if $(DATA),--data $(DATA),)

.PHONY: run test lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all]"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/mnist-edge train $(DATA_FLAG) --out $(OUT)
	$(BIN)/mnist-edge export --int8 $(DATA_FLAG) --model $(OUT)/model.keras --out $(OUT)
	@echo
	@echo "artifacts in $(OUT)/: model.keras, train.json, model_{fp32,int8}.{tflite,onnx}, manifest.json"

test: $(STAMP)
	$(BIN)/python -m ruff check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/python -m ruff check .

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
