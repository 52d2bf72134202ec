# Two commands do all the set-up on a fresh machine:
#   make demo   installs edgeir into .venv, exports AnyIR to Core ML (the main job) and verifies the package
#               numerically (on Linux through edgeir's MIL interpreter)
#   make test   installs edgeir into .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.edgeir-installed

.PHONY: install demo test test-all lint clean

install: $(STAMP)

# torch is installed first and pinned: an unpinned torch pulls the multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO_BUNDLE := artifacts/anyir-paper-allinone3-coreml-fp16

demo: install
	$(VENV)/bin/edgeir export anyir --target coreml -o artifacts
	$(VENV)/bin/edgeir verify $(DEMO_BUNDLE)

# Two workers (one per core here and in CI), one torch thread each so they do not fight over the cores; the
# cases of one (method, target) share a worker (--dist loadgroup), so its bundle is exported once.
test: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadgroup --durations=15

test-all: install
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadgroup -m ''

lint: install
	$(VENV)/bin/ruff check edgeir plugins quant targets tests bench

clean:
	rm -rf artifacts .pytest_cache
