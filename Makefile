# mobexport — `make demo` (set up + run the main job) and `make test` (set up + run the tests).
SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ASSETS ?= $(CURDIR)/.cache/assets
# torch must be pinned: any other version pulls GBs of CUDA wheels here. numpy 2.3.5: coremltools 9.0's
# TorchScript frontend breaks on numpy 2.4. typing-extensions<4.13: litert-converter's xdsl==0.28.0 caps it, and
# without the hint pip's resolver backtracks (through Jinja2 2.x sdists) until it fails on a fresh machine.
PINS := torch==2.13.0 numpy==2.3.5 'typing-extensions<4.13'
# --timeout: a test that hangs (a deadlock, a child that never exits) fails with every thread's stack after 15 min
# instead of holding its worker until CI's own limit; the slowest test takes under 2 minutes (--durations lists them)
PYTEST_ARGS ?= -m "not slow" --timeout 900 --timeout-method thread

.PHONY: install assets kotlin test lint demo matrix bench-export clean help

help:
	@echo "make demo   - venv, install, fetch assets, export + validate + benchmark, print results"
	@echo "make test   - venv, install, fetch assets, kotlinc, lint + layer check + app checks + pytest (+ benchkit JUnit)"
	@echo "make matrix - full models x targets conversion matrix on Ray (slow; resumable, results/matrix.md;"
	@echo "              SWEEP_ARGS='--address auto --db postgresql://...' for a cluster)"
	@echo "make bench-export - zoo export times to onnx-fp32, tflite-fp32, tflite-w8a8 (the matrix on those targets)"

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PINS)
	$(BIN)/python -m pip install -q -e '.[all,dev]' $(PINS)
	touch $@

assets: install
	$(BIN)/python -m mobexport.exporter.assets fetch --dest $(ASSETS)

lint: install
	$(BIN)/ruff check mobexport exporter converters quantization benchmarks tests scripts
	@# import-linter walks the installed package tree; the editable install maps folders, so check a real install
	rm -rf .cache/lint-site build && $(BIN)/python -m pip install -q --no-deps --no-compile --target .cache/lint-site . 2>/dev/null
	cd .cache/lint-site && PYTHONPATH=. ../../$(BIN)/lint-imports --config ../../pyproject.toml

# kotlinc (pinned, checksummed, cached in .cache/kotlin) for android_app/benchkit; tests/test_kotlin.py compiles it
# and runs its JUnit tests, and the summary is printed after pytest.
kotlin:
	scripts/setup_kotlin.sh

test: install assets lint kotlin
	rm -f .cache/kotlin/junit-summary.txt
	MOBEXPORT_ASSETS=$(ASSETS) $(BIN)/python -m pytest -n 2 --dist loadgroup --durations 15 $(PYTEST_ARGS)
	@echo "android_app/benchkit (tests/test_kotlin.py):"; grep -E '^(kotlinc|junit:|FAIL|SKIP|PASS ApiClientLiveTest)' \
		.cache/kotlin/junit-summary.txt 2>/dev/null || echo "  not run (kotlinc, junit4 or libandroid-json-java missing)"

demo: install assets
	MOBEXPORT_ASSETS=$(ASSETS) $(BIN)/python scripts/demo.py

matrix: install assets
	MOBEXPORT_ASSETS=$(ASSETS) $(BIN)/mobexport sweep --to all --resume --table results/matrix.md $(SWEEP_ARGS)

bench-export: install assets
	MOBEXPORT_ASSETS=$(ASSETS) $(BIN)/python scripts/bench_export.py zoo

clean:
	rm -rf $(VENV) exports .pytest_cache mobexport-results.db
