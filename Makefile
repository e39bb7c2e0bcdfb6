# prolong-data: every command a researcher needs. `make shards` and `make test` work on a fresh
# clone: the first run creates .venv from pyproject.toml (about 5 minutes), later runs reuse it
# until pyproject.toml or constraints.txt changes.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORPUS ?= examples/corpus
PYTEST := $(BIN)/python -m pytest

# Training: on a machine with CUDA the stages run their real configs on all local GPUs (give the
# stage-1 model with MODEL=...); without CUDA each is a smoke run of the same stage on demo data.
MODEL ?= meta-llama/Meta-Llama-3-8B-Instruct
NPROC ?= $(shell nvidia-smi -L 2>/dev/null | wc -l)
GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
STAGE1_DATA ?= $(if $(GPU),data/shards/stage1-64k,data/shards/demo)/mixture.json
STAGE2_DATA ?= $(if $(GPU),data/shards/stage2-512k,data/shards/demo-512k)/mixture.json
SFT_DATA ?= $(if $(GPU),data/shards/sft,data/shards/sft-demo)/mixture.json
STAGE1_OUT ?= runs/stage1-64k
STAGE2_OUT ?= runs/stage2-512k
SFT_OUT ?= runs/sft
STAGE2_INIT ?= $(STAGE1_OUT)/hf
SFT_INIT ?= $(STAGE2_OUT)/hf
# stage 2 starts AdamW from stage 1's newest checkpoint, as ProLong's train_512K.sh does;
# `make train-512k STAGE2_OPTIM=` starts it fresh
STAGE2_OPTIM ?= $(STAGE1_OUT)
# raw data of the real recipes (docs/training.md lists the folders each recipe reads)
RAW ?= data/raw
TRAIN := $(if $(GPU),$(BIN)/torchrun --standalone --nproc_per_node=$(NPROC),$(BIN)/python) -m trainer.train
# stage 2 splits each sequence over an SP group: 8 GPUs per group on GPUs (NPROC a multiple of 8,
# or add --parallel.sp=N), 2 gloo processes on a CPU
TRAIN_512K := $(BIN)/torchrun --standalone --nproc_per_node=$(if $(GPU),$(NPROC),2) -m trainer.train

.PHONY: venv venv-tf5 constraints dist test test-slow test-core-install test-slurm test-all test-tf5 gpu-check-dry shards shards-512k shards-sft repack-demo train-64k train-512k sft eval bench lint clean

venv: $(STAMP)

# pip stays quiet: errors show; Python warnings of the build backend (setuptools' notes on editable
# installs) and pip's notes about local index folders without a package do not.
PIP_INSTALL := set -o pipefail; PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --constraint constraints.txt
PIP_FILTER := 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(PIP_INSTALL) --upgrade pip $(PIP_FILTER)
	@echo "installing prolong-data with extras train,plot,dev,ray,hub,quality into $(VENV) (a few minutes the first time)"
	@$(PIP_INSTALL) -e '.[train,plot,dev,ray,hub,quality]' $(PIP_FILTER)
	@touch $(STAMP)

## Rewrite constraints.txt from the versions installed in .venv (after changing pyproject.toml).
constraints: $(STAMP)
	@{ sed -n '1,2p' constraints.txt; echo "pip==$$($(BIN)/python -m pip --version | cut -d' ' -f2)"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^#'; } > constraints.txt.new
	@mv constraints.txt.new constraints.txt
	@touch $(STAMP)  # the venv is what the new file says

## The sdist and the wheel to publish, in dist/ (python -m build; the wheel carries the recipes, the
## Llama-3 tokenizer and the sample corpus). `make test-core-install` installs such a wheel and tests it.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	@ls -l dist

## Fast tests (about 10 minutes on 2 cores, as the README says).
test: $(STAMP)
	PROLONG_CORPUS=$(CORPUS) $(PYTEST) -q -m "not slow and not gpu"

## End-to-end runs of the real commands on the sample corpus (CI runs these too).
test-slow: $(STAMP)
	PROLONG_CORPUS=$(CORPUS) $(PYTEST) -q -m "slow and not gpu and not core_install and not slurm"

## The wheel of `make dist`, its metadata and files; then the core install from it alone (no extras)
## in a fresh venv: build the demo from another folder, verify it, no torch (CI).
## CORE_CONSTRAINTS=constraints-lowest.txt tries the lowest versions, CORE_CONSTRAINTS=none the newest.
CORE_CONSTRAINTS ?= constraints.txt
test-core-install: $(STAMP)
	PROLONG_CORPUS=$(CORPUS) PROLONG_CORE_CONSTRAINTS=$(CORE_CONSTRAINTS) $(PYTEST) -q -m core_install tests/test_core_install.py

## A real Slurm on this machine (installs slurm-wlm and munge with apt as root, else skips): the
## demo built, cancelled mid-array and resumed through sbatch; examples/slurm/train.sbatch (CI).
test-slurm: $(STAMP)
	PROLONG_CORPUS=$(CORPUS) $(PYTEST) -q -m slurm tests/pipelines/test_slurm_cluster.py

test-all: test test-slow test-core-install test-slurm

## The demo mixtures (CORPUS=path for another folder laid out like examples/corpus).
shards: $(STAMP)
	$(BIN)/prolong-data shards --recipe demo --out data/shards/demo --corpus $(CORPUS)

shards-512k: $(STAMP)
	$(BIN)/prolong-data shards --recipe demo-512k --out data/shards/demo-512k --corpus $(CORPUS)

shards-sft: $(STAMP)
	$(BIN)/prolong-data shards --recipe sft-demo --out data/shards/sft-demo --corpus $(CORPUS)

## The demo shards re-packed into 32K sequences without tokenizing again (a `tokenized` source).
repack-demo: $(STAMP) data/shards/demo/mixture.json
	$(BIN)/prolong-data shards --recipe repack-demo --out data/shards/repack-demo

data/shards/demo/mixture.json:
	$(MAKE) shards
data/shards/demo-512k/mixture.json:
	$(MAKE) shards-512k
data/shards/sft-demo/mixture.json:
	$(MAKE) shards-sft
# the real recipes' shards (GPU runs), built from RAW=<folder> laid out as the recipes name
data/shards/stage1-64k/mixture.json data/shards/stage2-512k/mixture.json data/shards/sft/mixture.json: data/shards/%/mixture.json: $(STAMP)
	$(BIN)/prolong-data shards --recipe $* --out data/shards/$* --corpus $(RAW)

## Stage 1 (64K). Chained: stage 2 starts from stage 1's export, SFT from stage 2's
## (STAGE2_INIT=... / SFT_INIT=... point a stage anywhere).
train-64k: $(STAMP) $(STAGE1_DATA)
	$(TRAIN) --config trainer/configs/stage1-64k.yaml --model.path=$(MODEL) \
		--data.mixture=$(STAGE1_DATA) --out=$(STAGE1_OUT)

$(STAGE1_OUT)/hf/config.json:
	$(MAKE) train-64k

train-512k: $(STAMP) $(STAGE2_DATA) $(STAGE2_INIT)/config.json
	$(TRAIN_512K) --config trainer/configs/stage2-512k.yaml --model.path=$(STAGE2_INIT) \
		--data.mixture=$(STAGE2_DATA) --out=$(STAGE2_OUT) \
		--checkpoint.init_optimizer_from=$(if $(STAGE2_OPTIM),$(STAGE2_OPTIM),null)

$(STAGE2_OUT)/hf/config.json:
	$(MAKE) train-512k

sft: $(STAMP) $(SFT_DATA) $(SFT_INIT)/config.json
	$(TRAIN) --config trainer/configs/sft.yaml --model.path=$(SFT_INIT) \
		--data.mixture=$(SFT_DATA) --out=$(SFT_OUT)

## Long-context evaluation (docs/evaluation.md) of the newest export under runs/ (MODEL=<HF folder or hub
## id> overrides) into runs/eval/<run name>/. Without CUDA: a smoke run at 1K and 2K tokens.
EVAL_MODEL = $(if $(filter command line environment,$(origin MODEL)),$(MODEL),$(shell ls -td runs/*/hf 2>/dev/null | head -1))
EVAL_NAME = $(notdir $(patsubst %/hf,%,$(patsubst %/,%,$(EVAL_MODEL))))
EVAL_OUT ?= runs/eval/$(EVAL_NAME)
HELDOUT ?= examples/corpus/heldout
EVAL_GPU_ARGS ?= --lengths 8192,16384,32768,65536 --samples 100
EVAL_CPU_ARGS ?= --lengths 1024,2048 --samples 2 --depths 2 --window 512 --documents 2
EVAL_ARGS ?= $(if $(GPU),$(EVAL_GPU_ARGS),$(EVAL_CPU_ARGS))

eval: $(STAMP)
	@test -n "$(EVAL_MODEL)" || { echo "make eval: no export under runs/*/hf; run make train-64k (or make sft) first, or pass MODEL=<HF folder or hub id>" >&2; exit 2; }
	$(BIN)/prolong-data eval --model $(EVAL_MODEL) --heldout $(HELDOUT) --out $(EVAL_OUT) $(EVAL_ARGS)

## Benchmarks: results tables land in bench/results/*.md (see README, "Benchmarks").
bench: $(STAMP)
	$(BIN)/python bench/tokenize_throughput.py --corpus $(CORPUS) --out bench/results/tokenize_throughput.md
	$(BIN)/python bench/pipeline_demo.py --corpus $(CORPUS) --out bench/results/pipeline_demo.md
	$(BIN)/python bench/trainer_memory.py --out bench/results/trainer_memory.md
	$(BIN)/python bench/hygiene.py --corpus $(CORPUS) --out bench/results/hygiene.md
	$(BIN)/python bench/eval_throughput.py --heldout $(HELDOUT) --out bench/results/eval_throughput.md

## transformers 5 beside 4.57: a second venv (.venv-tf5) holding transformers 5 and its hub client,
## layered over .venv for everything else (torch, mosaicml-streaming, pytest: a .pth file appends
## .venv's site-packages, so streaming is .venv's copy; its transformers<5 pin is metadata only).
TF5 ?= 5.17.0
VENV_TF5 := .venv-tf5
TF5_TESTS := tests/trainer/test_rope_and_loading.py tests/trainer/test_hf_export.py tests/trainer/test_doc_attention.py \
	tests/trainer/test_rank0_load.py tests/trainer/test_stage_handoff.py

$(VENV_TF5)/.installed: $(STAMP)
	rm -rf $(VENV_TF5) && $(PYTHON) -m venv $(VENV_TF5)
	$(VENV_TF5)/bin/python -m pip install --quiet "transformers==$(TF5)" \
		"numpy==$$($(BIN)/python -c 'import numpy; print(numpy.__version__)')" 2>&1 | grep -v "^WARNING: Location" || true
	$(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
		> "$$($(VENV_TF5)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/prolong-base-venv.pth"
	$(VENV_TF5)/bin/python -c "import transformers, torch; assert transformers.__version__ == '$(TF5)'"
	@touch $@

venv-tf5: $(VENV_TF5)/.installed

## The model-loading, rope, attention and export tests under transformers 5 (CI runs it).
test-tf5: $(VENV_TF5)/.installed
	PYTHONPATH=$(CURDIR) PROLONG_CORPUS=$(CORPUS) $(VENV_TF5)/bin/python -m pytest -q $(TF5_TESTS)

## The GPU check (bench/gpu_check.sh) on CPU with a tiny model: every step of the script runs.
gpu-check-dry: $(STAMP)
	bash bench/gpu_check.sh --dry-run

lint: $(STAMP)
	$(BIN)/ruff check prolong_data pipelines trainer tests bench
	$(BIN)/ruff format --check prolong_data pipelines trainer tests bench

clean:
	rm -rf data/shards runs bench/work dist build $(VENV_TF5)
