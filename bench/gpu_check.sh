#!/usr/bin/env bash
# The prepared GPU check (bench/gpu_check.py): attention backends against the exact reference,
# training-step throughput and MFU of a ~1B Llama beside plain transformers, chunked versus full
# logits, and a 524,288-token step; writes bench/results/gpu.md. Needs torch and transformers
# only (no mosaicml-streaming, no datatrove). `--dry-run` runs all of it on the CPU with a tiny model.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}"
LIMIT=460  # seconds: the device session allows 8 minutes
exec timeout "$LIMIT" "$PY" bench/gpu_check.py "$@"
