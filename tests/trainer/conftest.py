"""Fixtures of the trainer tests: small MDS shards, a mixture.json, tiny models, a 2-rank launcher.

The data library is not used here on purpose: the shards are written with ``streaming.MDSWriter``
directly, following the shard contract (docs/shard-format.md). The tokenizer is the packaged
Llama-3 one (``prolong_data.assets.llama3_folder``).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from corpus_files import book_files, iter_rows, read_text, sample_corpus

from prolong_data.assets import llama3_folder

CORPUS = sample_corpus()
TOKENIZER_DIR = llama3_folder()
BOS, EOS = 128000, 128001
COLUMNS = {"input_ids": "ndarray:uint32", "indices": "ndarray:uint32", "domain": "str", "length": "int"}


def write_domain(
    folder: Path, domain: str, rows: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]
) -> None:
    """Writes one MDS domain folder from (input_ids, spans, mask-or-None) rows."""
    from streaming import MDSWriter

    columns = dict(COLUMNS)
    if any(mask is not None for _, _, mask in rows):
        columns["mask"] = "ndarray:uint8"
    with MDSWriter(out=str(folder), columns=columns, compression="zstd", size_limit=1 << 20) as writer:
        for ids, spans, mask in rows:
            sample = {
                "input_ids": ids.astype(np.uint32),
                "indices": spans.astype(np.uint32),
                "domain": domain,
                "length": len(ids),
            }
            if "mask" in columns:
                sample["mask"] = (np.ones(len(ids)) if mask is None else mask).astype(np.uint8)
            writer.write(sample)


def write_mixture(root: Path, seq_len: int, proportions: dict[str, float]) -> Path:
    """Writes ``root/mixture.json`` naming the domain folders under ``root``."""
    streams = [{"domain": d, "path": d, "proportion": p} for d, p in proportions.items()]
    path = root / "mixture.json"
    path.write_text(json.dumps({"seq_len": seq_len, "streams": streams, "manifest": "ignored"}))
    return path


def random_row(rng: np.random.Generator, seq_len: int, vocab: int, with_mask: bool = False):
    """One packed row of random tokens with 1-4 random document spans (and an optional SFT mask)."""
    cuts = np.sort(rng.choice(np.arange(1, seq_len), size=rng.integers(0, 4), replace=False))
    bounds = np.concatenate([[0], cuts, [seq_len]])
    spans = np.stack([bounds[:-1], bounds[1:]], axis=1)
    mask = (rng.random(seq_len) < 0.6).astype(np.uint8) if with_mask else None
    return rng.integers(0, vocab, seq_len), spans, mask


def pack_documents(docs: list[list[int]], seq_len: int) -> list[tuple[np.ndarray, np.ndarray, None]]:
    """Concatenates documents and cuts the stream into rows of ``seq_len`` with their spans.

    A document cut at a row end continues as a new span at the start of the next row; a last
    partial row is dropped.
    """
    stream = np.concatenate([np.asarray(d, dtype=np.int64) for d in docs])
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]])
    rows = []
    for begin in range(0, len(stream) - seq_len + 1, seq_len):
        inner = [int(s - begin) for s in starts if begin < s < begin + seq_len]
        bounds = [0, *inner, seq_len]
        spans = np.array(list(zip(bounds[:-1], bounds[1:])), dtype=np.int64)
        rows.append((stream[begin : begin + seq_len], spans, None))
    return rows


def corpus_documents(max_chars: int = 12000) -> dict[str, list[list[int]]]:
    """Real text as Llama-3 token ids with BOS/EOS: book openings, and short wiki articles."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))

    def encode(text: str) -> list[int]:
        return [BOS, *tokenizer.encode(text, add_special_tokens=False).ids, EOS]

    books = book_files(CORPUS / "books")[:4]
    book_docs = [encode(read_text(p).removeprefix("\ufeff")[:max_chars]) for p in books]
    wiki_docs = [
        encode(row["text"][: max_chars // 4])
        for _, row in zip(range(12), iter_rows(CORPUS, "short/wiki.jsonl"))
    ]
    return {"book": book_docs, "wiki": wiki_docs}


@pytest.fixture(scope="session")
def toy_shards(tmp_path_factory) -> Path:
    """Random-token shards: seq_len 64, vocab 256, domains ``a`` (plain) and ``b`` (SFT masks)."""
    root = tmp_path_factory.mktemp("toy_shards")
    rng = np.random.default_rng(0)
    write_domain(root / "a", "a", [random_row(rng, 64, 256) for _ in range(24)])
    write_domain(root / "b", "b", [random_row(rng, 64, 256, with_mask=True) for _ in range(24)])
    return write_mixture(root, 64, {"a": 0.7, "b": 0.3})


@pytest.fixture(scope="session")
def corpus_shards(tmp_path_factory) -> Path:
    """Shards of real corpus text, Llama-3 tokens, seq_len 256, domains ``book`` and ``wiki``."""
    root = tmp_path_factory.mktemp("corpus_shards")
    for domain, docs in corpus_documents().items():
        write_domain(root / domain, domain, pack_documents(docs, 256))
    return write_mixture(root, 256, {"book": 0.6, "wiki": 0.4})


def tiny_overrides(mixture: Path, out: Path, seq_len: int, vocab: int = 256, **extra) -> list[str]:
    """Command-line overrides for a tiny CPU run on the given shards."""
    args = {
        "out": out,
        "model.tiny": "true",
        "model.tokenizer": TOKENIZER_DIR,
        "model.attention": "sdpa_docs",
        "model.loss_chunk_size": 96,
        "tiny.vocab_size": vocab,
        "data.mixture": mixture,
        "data.seq_len": seq_len,
        "data.micro_batch_size": 2,
        "optim.lr": 3e-3,
        "train.steps": 6,
        "train.tokens_per_step": seq_len * 4,
        "checkpoint.every_steps": 100,
        "log.progress_bar": "false",
    }
    args.update(extra)
    return [f"--{key}={value}" for key, value in args.items()]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_entry(rank: int, world_size: int, port: int, fn, args) -> None:
    """What torchrun would do for one rank: set its variables, then run ``fn(rank, *args)``."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_WORLD_SIZE=str(world_size),
    )
    torch.set_num_threads(1)
    fn(rank, *args)
    # End the rank here, without interpreter finalization: gloo's worker threads can still be
    # dropping the last references to a finished collective's tensors, and a C++ thread that needs
    # the GIL while the interpreter finalizes is unwound by CPython inside gloo's noexcept code:
    # std::terminate, "terminate called without an active exception", SIGABRT. A busy machine
    # delays those threads enough for it to happen. (A failing ``fn`` raises before this line
    # and mp.spawn reports its traceback.)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_ranks(fn, world_size: int, *args) -> None:
    """Runs ``fn(rank, *args)`` in ``world_size`` fresh processes (a local torchrun stand-in)."""
    import torch.multiprocessing as mp

    mp.spawn(_rank_entry, args=(world_size, free_port(), fn, args), nprocs=world_size, join=True)
