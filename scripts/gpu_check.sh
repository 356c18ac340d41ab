#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: every stage with device=cuda beside the CPU (voiceagent/bench/gpu.py), then
# the live-call latency benchmark on the default config (device "auto": CUDA wherever an engine sees the GPU).
# Under 5 minutes. Without a GPU it says so and exits 0. Run from the checkout after `make install`.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
"$python" -m voiceagent.bench.gpu "$@"
if "$python" -c 'import sys; from voiceagent.components import cuda_available as c; sys.exit(not c("ctranslate2"))'
then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$python" -m voiceagent bench latency
fi
