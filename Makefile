# Two entry points for a fresh machine: `make demo` and `make test`. Both build .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.natkit-installed
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: demo test test-slow test-all bench report readme data venv clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# Fashion-MNIST: Debian's package when we may install it, else $$NATKIT_DATA / --data-root (see README).
data:
	@if [ -f $(FMNIST) ]; then echo "Fashion-MNIST: Debian package dataset-fashion-mnist ($(dir $(FMNIST)))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "Fashion-MNIST: installing Debian package dataset-fashion-mnist"; \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null)) && \
	  echo "Fashion-MNIST: installed to $(dir $(FMNIST))"; \
	elif [ -n "$$NATKIT_DATA" ]; then echo "Fashion-MNIST: looking in NATKIT_DATA=$$NATKIT_DATA"; \
	else echo "Fashion-MNIST: not installed and cannot install it (not root); set NATKIT_DATA to a folder with the IDX files"; fi

# The searches run in 2 lanes side by side (one torch thread each) with a progress line per search.
demo: venv data
	$(BIN)/python -m benchmarks.quick --out results/quick

# The suite without the checks marked `slow` (SIGKILL/resume rounds, Dask clusters, two-process runs), spread
# over the machine's cores (pytest-xdist); `make test-slow` runs those; CI (.ci/run) runs both.
test: venv data
	$(BIN)/python -m pytest -n $(JOBS) -m "not slow" --durations=15

test-slow: venv data
	$(BIN)/python -m pytest -n $(JOBS) -m slow --durations=10

test-all: venv data
	$(BIN)/python -m pytest -n $(JOBS) --durations=15

bench: venv data
	$(BIN)/python -m benchmarks.run_all

readme: venv
	$(BIN)/python -m benchmarks.readme_table

clean:
	rm -rf $(VENV) build *.egg-info
