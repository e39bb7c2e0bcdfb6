"""Reading the sample corpus from tests: each file may be stored plain or gzipped (`name.gz`)."""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sample_corpus() -> Path:
    """$PROLONG_CORPUS when set (relative to the working folder), else the repository's examples/corpus."""
    return Path(os.environ.get("PROLONG_CORPUS") or REPO / "examples" / "corpus").resolve()


def corpus_file(corpus: Path, relative: str) -> Path:
    """`corpus/relative`, or its gzipped twin `corpus/relative.gz` when only that exists."""
    plain = corpus / relative
    return plain if plain.exists() else corpus / f"{relative}.gz"


def read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when its name ends in `.gz`."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def read_text(path: Path) -> str:
    """The file's text as `Path.read_text` gives it: UTF-8, line ends (CRLF, CR) read as `\n`."""
    return io.TextIOWrapper(io.BytesIO(read_bytes(path)), encoding="utf-8").read()


def iter_rows(corpus: Path, relative: str) -> Iterator[dict]:
    """The JSON rows of a corpus `.jsonl` file (plain or gzipped), in order."""
    for line in read_text(corpus_file(corpus, relative)).split("\n"):  # not splitlines: U+2028 is text
        if line.strip():
            yield json.loads(line)


def book_files(folder: Path) -> list[Path]:
    """The books of a folder (`*.txt` or `*.txt.gz`), sorted by name."""
    return sorted([*folder.glob("*.txt"), *folder.glob("*.txt.gz")], key=lambda p: p.name)


def plain_name(path: Path) -> str:
    """The file name without a `.gz` ending."""
    return path.name.removesuffix(".gz")


def small_byte_level_bpe(texts: list[str], vocab_size: int = 600):
    """A `tokenizers.Tokenizer`: byte-level BPE with `vocab_size` ids trained on `texts` (no
    download), `<s>` = 0 and `</s>` = 1: a second tokenizer very unlike Llama-3's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(texts, trainer)
    return bpe
