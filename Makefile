# The README's two commands: `make demo` (the main job) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo lint test clean browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel on this machine's disk (a bare `torch` would pull CUDA).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# The authors' package, as the reference of the released-model parity tests; its declared
	# dependencies (torchvision among them) are not needed to import it and are left out.
	$(BIN)/pip install -q --no-deps miro-t2i==0.1.4
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/rewardflow demo --out runs/demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks tools
	$(BIN)/ruff format --check src tests benchmarks tools

# The web page's end-to-end test drives Debian's Chromium (browsers cannot be downloaded by pip here).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

test: $(STAMP) browser lint
	$(BIN)/python -m pytest tests

clean:
	rm -rf runs/demo
