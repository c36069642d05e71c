#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): SFT tokens/s and MFU, scoring prompts/s, and the lookup-equals-regeneration
# rate in bf16, in ≤ 8 minutes on one accelerator. Needs the default pipeline's models and mixes (`make study`,
# or the DVC cache) and the offline mirror. Run from the repository root: bash bench/gpu_check.sh [extra args]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" PYTHONHASHSEED=0
if [ -z "${REFUSAL_TOKENS_MIRROR:-}" ] && [ -d ../shared/datasets ]; then  # the offline mirror, when beside the checkout
    export REFUSAL_TOKENS_MIRROR="$(cd ../shared/datasets && pwd)"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
timeout 480 python bench/gpu_check.py --device cuda "$@"
