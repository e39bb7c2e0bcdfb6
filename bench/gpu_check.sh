#!/usr/bin/env bash
# GPU check of the trainer on one GPU (about 5 minutes on an H200): attention backends against the
# exact reference, then tokens/s, MFU and peak memory of a ~1B Llama at 65,536 tokens per step,
# beside plain transformers. Needs torch and transformers; streaming is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
timeout 460 torchrun --standalone --nproc_per_node=1 bench/trainer_gpu_check.py
