#!/usr/bin/env bash
# The paper profile's first GPU check on a single-GPU machine with no network, in well under 10 minutes:
# the train stage's QLoRA step at 16,384 tokens on a randomly initialised Qwen3-8B (measured peak printed
# beside the CPU estimate's breakdown) and a short generation through the evaluation engine's decoding code.
# Needs python3 with torch (a CUDA 13 build), transformers, peft and accelerate; bitsandbytes comes from the
# trimmed wheel in benchmarks/wheels (rebuild: scripts/trim-bnb-wheel), TRL is not needed. The repository
# with that wheel is the whole bundle (< 64 MiB: git ls-files | xargs du -ch).
#   benchmarks/gpu_check.sh --dry-run        # any machine: config, estimate, plan, wheel checksum; no GPU
#   benchmarks/gpu_check.sh [--out DIR]      # the GPU run; DIR/gpu_check.json gets the numbers (default: .)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
wheel=benchmarks/wheels/bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl
(cd benchmarks/wheels && sha256sum --check --quiet SHA256SUMS) || { echo "gpu_check: $wheel does not match SHA256SUMS" >&2; exit 2; }
if [[ " $* " == *" --dry-run "* ]]; then
    echo "bitsandbytes: $wheel (sha256 OK) would be installed with: $python -m pip install --no-index --no-deps --target SITE $wheel"
    exec "$python" benchmarks/gpu_check.py "$@"
fi
if ! "$python" -c "import bitsandbytes" 2>/dev/null; then
    site="$(mktemp -d)/site"
    "$python" -m pip install --quiet --no-index --no-deps --no-compile --target "$site" "$wheel"
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
cuda="$("$python" -c 'import torch; print(torch.version.cuda or "none")')"
if [[ "$cuda" != 13.* ]]; then
    echo "gpu_check: torch is built for CUDA $cuda; the trimmed wheel holds only bitsandbytes' CUDA 13.x libraries" \
         "(rebuild it with KEEP='cpu cuda${cuda/./}' scripts/trim-bnb-wheel)" >&2
    exit 2
fi
export PYTORCH_ALLOC_CONF="${PYTORCH_ALLOC_CONF:-expandable_segments:False}"  # the allocator the train stage runs with
exec timeout 590 "$python" benchmarks/gpu_check.py "$@"
