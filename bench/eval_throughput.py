"""Generation throughput of ``prolong-data eval`` on the smoke model: batched vs one prompt at a time.

    .venv/bin/python bench/eval_throughput.py           # writes bench/results/eval_throughput.md

Builds the tiny random Llama (Llama-3 vocabulary and tokenizer, as ``make train-64k`` smoke runs
do) in a temporary folder, generates the default protocol's ``json_kv`` and ``niah_single``
prompts at 1,024 tokens, and runs the same examples through the hf back end with ``--batch-size``
1 and larger; each row is one full recall pass (generation and scoring), timed by the runner.
On a CPU this measures the batching code path, not a GPU's speed-up.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from prolong_data.assets import llama3_folder
from prolong_data.evaluation.backends.hf import HFBackend
from prolong_data.evaluation.runner import EvalSettings, run_evaluation
from prolong_data.hf_tokenizer import load_hf_tokenizer


def save_smoke_model(folder: Path) -> Path:
    """The tiny random Llama with the packaged Llama-3 tokenizer, saved like an export."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=128256, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=4096, bos_token_id=128000, eos_token_id=128001,
    )  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    load_hf_tokenizer(llama3_folder()).save_pretrained(folder)
    return folder


def measure(model: Path, heldout: str, samples: int, batch_sizes: list[int], out: Path) -> list[dict]:
    """One evaluation per batch size on the same examples; its throughput figures."""
    backend = HFBackend(str(model), device="cpu")
    settings = EvalSettings(
        model=str(model), tasks=("json_kv", "niah_single"), lengths=(1024,), samples=samples, heldout=heldout
    )
    rows = []
    for size in batch_sizes:
        summary = run_evaluation(settings, backend, out / f"batch-{size}", progress=False, batch_size=size)
        rows.append({"batch_size": size, **summary["throughput"]})
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "# Evaluation throughput on the smoke model (CPU, hf back end, 1,024-token prompts)",
        "",
        "| batch size | examples | seconds | examples/s | prompt tokens/s | vs batch 1 |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    base = rows[0]["examples_per_s"]
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['examples']} | {r['seconds']:.1f} | {r['examples_per_s']:.2f} | "
            f"{r['prompt_tokens_per_s']:,.0f} | {r['examples_per_s'] / base:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--heldout", default="examples/corpus/heldout")
    parser.add_argument("--samples", type=int, default=8, help="examples per task")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--out", default="bench/results/eval_throughput.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = save_smoke_model(Path(tmp) / "model")
        sizes = [int(s) for s in args.batch_sizes.split(",")]
        text = table(measure(model, args.heldout, args.samples, sizes, Path(tmp)))
    Path(args.out).write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
