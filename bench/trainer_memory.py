"""Peak memory of one training step of the tiny Llama at 65,536 tokens, chunked vs plain loss.

    .venv/bin/python bench/trainer_memory.py            # writes bench/results/trainer_memory.md

Each measurement runs in its own process (peak resident memory is per process): build the tiny
Llama (Llama-3 vocabulary, 128,256), run one forward + backward + AdamW step on a packed
sequence, report the process's peak RSS. The plain loss builds the full (T, V) fp32 logits and
their gradient; where those alone exceed the free memory it is not run, and the table says so.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

VOCAB = 128256


def one_step(loss_kind: str, seq_len: int) -> dict:
    """Runs one training step in this process and returns its figures."""
    import torch

    from trainer.attention import DocMask
    from trainer.config import ModelConfig, ParallelConfig, TinyConfig
    from trainer.loss import chunked_cross_entropy_sum, plain_cross_entropy_sum
    from trainer.model import CausalLMWithLoss, load_lm
    from trainer.parallelize import DistEnv, parallelize

    cpu = torch.device("cpu")
    lm = load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=VOCAB), seq_len)
    model = parallelize(CausalLMWithLoss(lm), ParallelConfig(mixed_precision="fp32"), DistEnv(), cpu)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, VOCAB, (1, seq_len))
    bounds = [0, seq_len // 2, 3 * seq_len // 4, seq_len]  # three documents
    positions = torch.cat([torch.arange(b - a) for a, b in zip(bounds[:-1], bounds[1:])])[None]
    labels = torch.roll(ids, -1, dims=1)
    labels[0, -1] = -100
    mask = DocMask.from_cu_seqlens(torch.tensor(bounds), cpu, "sdpa_docs")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    began = time.perf_counter()
    hidden = model.hidden_states(ids, positions, mask).flatten(0, 1)  # (T, D)
    head = model.lm.get_output_embeddings().weight  # (V, D)
    if loss_kind == "chunked":
        loss = chunked_cross_entropy_sum(hidden, head, labels.flatten(), 4096)
    else:
        loss = plain_cross_entropy_sum(hidden, head, labels.flatten())
    (loss / seq_len).backward()
    optimizer.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"peak_gib": peak, "before_step_gib": base, "seconds": time.perf_counter() - began}


def available_gib() -> float:
    """MemAvailable of /proc/meminfo in GiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable"):
            return int(line.split()[1]) / 2**20
    return float("inf")


def measure(loss_kind: str, seq_len: int) -> dict:
    """One step in a fresh process, or a 'does not fit' record for the plain loss."""
    logits_gib = seq_len * VOCAB * 4 / 2**30
    if loss_kind == "plain" and 2 * logits_gib > 0.9 * available_gib():
        return {"skipped": f"does not fit: logits + their gradient alone need {2 * logits_gib:.1f} GiB"}
    cmd = [sys.executable, __file__, "--one", loss_kind, str(seq_len)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(rows: list[tuple[str, int, dict]]) -> str:
    """Markdown table of the measurements."""
    lines = [
        "| loss | tokens | peak RSS (GiB) | RSS before the step (GiB) | step seconds |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, seq_len, r in rows:
        if "skipped" in r:
            lines.append(f"| {kind} | {seq_len:,} | {r['skipped']} | | |")
        else:
            lines.append(
                f"| {kind} | {seq_len:,} | {r['peak_gib']:.2f} | {r['before_step_gib']:.2f} | {r['seconds']:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=2, metavar=("LOSS", "SEQ_LEN"), help=argparse.SUPPRESS)
    parser.add_argument("--seq-lens", default="8192,65536", help="comma-separated token counts")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "trainer_memory.md"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_step(args.one[0], int(args.one[1]))))
        return
    rows = [
        (kind, int(n), measure(kind, int(n)))
        for n in args.seq_lens.split(",")
        for kind in ("chunked", "plain")
    ]
    text = (
        "# Trainer memory: one training step of the tiny Llama (vocabulary 128,256), CPU, fp32\n\n"
        "Chunked = `trainer/loss.py` (chunks of 4,096 tokens); plain = full (T, V) fp32 logits.\n\n"
        + table(rows)
        + "\n"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
