# Two commands on a fresh machine: `make run` (the whole pipeline) and `make test` (then, as root,
# `make test-pi`: the emulated Raspberry Pi).
# Both create .venv with the `all` extra when it is missing or older than pyproject.toml; a second
# run reinstalls nothing.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= $(firstword $(wildcard $(MNIST_EDGE_DATA) ../shared/data/mnist.npz))
OUT    ?= artifacts
DATA_FLAG := $(if $(DATA),--data $(DATA),)
# The edge model's second step: fine-tuned on crops of desk scenes of training digits, cut by the
# shipped locator as camera cuts them (one run: desk frames read exactly +1.1 points on average
# over five sets of 300, none lower; README, Reading a desk)
DESK_TUNE := --desk-scenes 24000 --epochs 5 --lr 0.0005

.PHONY: run models test test-pi lint venv clean pi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(BIN)/python -m pip install --quiet -e ".[all]"
	@touch $(STAMP)

# The whole pipeline: the edge model and the classic baseline, each trained and exported, then
# benchmarked against each other. bench exits non-zero (and so does make) when the int8 gate fails.
run: $(STAMP)
	@echo "== 1/7 train the edge model"
	$(BIN)/mnist-edge train $(DATA_FLAG) --out $(OUT)/base
	@echo "== 2/7 fine-tune it on the crops a camera over a desk gives"
	$(BIN)/mnist-edge train --init $(OUT)/base/model.keras $(DESK_TUNE) $(DATA_FLAG) --out $(OUT)
	@echo "== 3/7 export it: fp32 and int8, TFLite and ONNX, each validated"
	$(BIN)/mnist-edge export --int8 $(DATA_FLAG) --model $(OUT)/model.keras --out $(OUT)
	@echo "== 4/7 train the row reader on the rows the shipped locator finds, beside the model"
	$(BIN)/mnist-edge rows $(DATA_FLAG) --out $(OUT)
	@echo "== 5/7 train the classic baseline CNN"
	$(BIN)/mnist-edge train --arch baseline $(DATA_FLAG) --out $(OUT)/baseline
	@echo "== 6/7 export the baseline"
	$(BIN)/mnist-edge export --int8 $(DATA_FLAG) --model $(OUT)/baseline/model.keras --out $(OUT)/baseline
	@echo "== 7/7 benchmark accuracy against latency across runtimes"
	$(BIN)/mnist-edge bench $(DATA_FLAG) --artifacts $(OUT) --baseline $(OUT)/baseline
	@echo
	@echo "models:  $(OUT)/model_{fp32,int8}.{tflite,onnx} (+ manifest.json); baseline in $(OUT)/baseline/"
	@echo "report:  $(OUT)/bench.md, $(OUT)/bench.json; plot: $(OUT)/bench.png"
	@echo "logs:    TensorFlow's own messages in $(OUT)/{train,export}.log (and the same in $(OUT)/baseline/)"

# Ship a finished `make run` as the default models the device commands use.
models: $(STAMP)
	$(BIN)/python tools/ship_models.py --artifacts $(OUT) --out models

# MNIST for the tests and the docstring examples: $(DATA), as for `make run`
TEST_ENV := $(if $(DATA),MNIST_EDGE_DATA=$(abspath $(DATA)) )

# Lint and the whole suite but the emulated Pi, on both cores (pytest-xdist, one file per worker at a
# time; 6 minutes on a 2-core Xeon, 11-13 one after another). The collection runs alone first: when this
# machine lacks something a selected test needs, it stops there in one line (tests/conftest.py),
# which a worker process could not say.
test: $(STAMP)
	$(BIN)/python -m ruff check .
	@out=$$(mktemp); $(TEST_ENV)$(BIN)/python -m pytest --collect-only -q -p no:xdist > $$out 2>&1; \
	  rc=$$?; if [ $$rc -ne 0 ]; then grep -v '::' $$out | grep . | tail -n 3; fi; rm -f $$out; exit $$rc
	$(TEST_ENV)$(BIN)/python -m pytest -n 2 --dist loadfile -m 'not pi and not own_process'
	$(TEST_ENV)$(BIN)/python -m pytest -p no:xdist -q -m own_process tests/test_export.py

# The emulated Pi's test (tests/test_pi_emulated.py), on Pi OS's bookworm and trixie: root,
# qemu-user-static, binfmt-support, mmdebstrap and arch-test; its first run builds each arm64 rootfs
# and its device venvs (minutes each, then cached). Apart from `make test` to keep that under 15
# minutes; CI runs both.
test-pi: $(STAMP)
	$(TEST_ENV)$(BIN)/python -m pytest -m pi tests/test_pi_emulated.py

# The device commands on Raspberry Pi OS 64-bit (Pi 4 and Pi 5 CPUs) under qemu-user, compared with
# this machine (as root; tools/pi_emulated.py says what it needs), on both its Debian bases: trixie
# (today's image) and bookworm. Each rootfs is cached in ~/.cache.
pi: $(STAMP)
	@rc=0; for suite in trixie bookworm; do \
	  $(BIN)/python tools/pi_emulated.py --suite $$suite $(DATA:%=--data %) || rc=1; done; exit $$rc

lint: $(STAMP)
	$(BIN)/python -m ruff check .

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
