"""Exact, fast encoding of long documents: the engines and how one is chosen.

Three ideas make long-document tokenization fast without changing a single id:

* gigatoken re-implements byte-level BPE for the common tokenizers (Llama-3's among them) with a
  SIMD pre-tokenizer instead of a regex engine and a cache of already-encoded pieces: on the sample
  books about 18x tiktoken's speed on one thread (33M vs 1.8M tokens/s).
* Byte-level BPE never merges across pre-tokenizer pieces, and the Llama-3 / GPT-style split
  regexes always end a piece right after a newline that is followed by a letter. Cutting a
  document at such points and encoding the pieces separately therefore gives exactly the ids of
  the whole document, while letting the pieces run on several threads.
* tiktoken implements the same byte-level BPE several times faster than HF `tokenizers`, and it
  can express any HF byte-level BPE tokenizer whose token ids are its merge ranks (Llama-3's is).

Engines are tried in order (gigatoken, tiktoken, HF on split pieces, HF on whole documents); each
is checked against whole-document HF encoding on a sample before use, and skipped with a warning
if it differs. Text that looks like a special token (``<|begin_of_text|>`` inside a book) is
encoded as plain text by every engine, so documents can never inject control tokens.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

import numpy as np

from prolong_data.contract import TOKEN_DTYPE
from prolong_data.tokenization.loading import LoadedTokenizer, load_tokenizer

logger = logging.getLogger(__name__)

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# A cut right after a newline followed by a letter is a pre-tokenizer boundary for Llama-3 and
# GPT-style byte-level regexes: no piece can start with a newline and continue into a letter.
SAFE_SPLIT = re.compile(r"\n(?=[^\W\d_])")


# --------------------------------------------------------------------------------------------
# Splitting long documents at safe boundaries
# --------------------------------------------------------------------------------------------


def split_at_safe_boundaries(text: str, piece_chars: int = 16384) -> list[str]:
    """Cut `text` into pieces of roughly `piece_chars`, only right after a newline before a letter.

    Concatenating the pieces gives `text` back; encoding them one by one gives the ids of the
    whole text for Llama-3 / GPT-style byte-level BPE tokenizers.
    """
    if len(text) <= piece_chars:
        return [text]
    pieces, start = [], 0
    while len(text) - start > piece_chars:
        match = SAFE_SPLIT.search(text, start + piece_chars)
        if match is None:
            break
        cut = match.start() + 1  # just after the newline
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------


class Engine:
    """Turns a batch of texts into token ids (no BOS/EOS), identical to `encode_reference`."""

    name = "engine"

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        raise NotImplementedError


class HFWholeEngine(Engine):
    """HF tokenizers, each document encoded whole: the slow, always-correct reference."""

    name = "hf-whole"

    def __init__(self, tok: LoadedTokenizer):
        self.hf = tok.hf

    def encode_batch(self, texts):
        encodings = self.hf.encode_batch(list(texts), add_special_tokens=False)
        return [np.asarray(e.ids, TOKEN_DTYPE) for e in encodings]


class _PieceEngine(Engine):
    """Splits documents at safe boundaries, encodes all pieces as one batch, joins per document."""

    def __init__(self, piece_chars: int):
        self.piece_chars = piece_chars

    def encode_pieces(self, pieces: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def encode_batch(self, texts):
        pieces, owners = [], []
        for i, text in enumerate(texts):
            for piece in split_at_safe_boundaries(text, self.piece_chars):
                pieces.append(piece)
                owners.append(i)
        ids = self.encode_pieces(pieces)
        out: list[list[np.ndarray]] = [[] for _ in texts]
        for owner, piece_ids in zip(owners, ids):
            out[owner].append(np.asarray(piece_ids, TOKEN_DTYPE))
        return [np.concatenate(parts) if parts else np.zeros(0, TOKEN_DTYPE) for parts in out]


class HFSplitEngine(_PieceEngine):
    """HF tokenizers on safe-boundary pieces, batched (tokenizers runs a batch on all cores)."""

    name = "hf-split"

    def __init__(self, tok: LoadedTokenizer, piece_chars: int = 16384):
        super().__init__(piece_chars)
        self.hf = tok.hf

    def encode_pieces(self, pieces):
        return [e.ids for e in self.hf.encode_batch(pieces, add_special_tokens=False)]


class TiktokenEngine(_PieceEngine):
    """tiktoken's Rust BPE on safe-boundary pieces, `threads` at a time."""

    name = "tiktoken"

    def __init__(self, encoding, threads: int = 1, piece_chars: int = 16384):
        super().__init__(piece_chars)
        self.encoding = encoding
        self.threads = threads

    def encode_pieces(self, pieces):
        if self.threads <= 1:
            # the encoding has no special tokens, so this is encode_ordinary straight into numpy
            return [self.encoding.encode_to_numpy(p, disallowed_special=()) for p in pieces]
        return self.encoding.encode_ordinary_batch(pieces, num_threads=self.threads)


class GigatokenEngine(Engine):
    """gigatoken's byte-level BPE on whole documents, one after the other on the calling thread.

    It takes no thread count: measured here, two threads sharing one gigatoken tokenizer encoded
    6x slower than one (23.5M vs 3.9M tokens/s on the sample books and ShortMix); run more worker
    processes instead.
    """

    name = "gigatoken"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def encode_batch(self, texts):
        return [self.tokenizer.encode(text) for text in texts]  # each (n,) uint32


def gigatoken_tokenizer(tok: LoadedTokenizer):
    """A `gigatoken.Tokenizer` for `tok`'s vocabulary, or None when gigatoken cannot load it.

    Built from the tokenizer.json with the *special* added tokens removed, so that their strings in
    a document are encoded as plain text, as `encode_reference` does. Built once per tokenizer and
    process; the identity check in `choose_engine` still decides whether it is used.
    """
    return _built_once(tok, "gigatoken", _build_gigatoken)


def _build_gigatoken(tok: LoadedTokenizer):
    try:
        import gigatoken
    except ImportError:
        return None
    spec = tok.spec_json()
    spec["added_tokens"] = [t for t in spec.get("added_tokens") or [] if not t.get("special")]
    spec["post_processor"] = None  # ids only: BOS/EOS are added by `with_boundaries`
    try:
        return gigatoken.Tokenizer.from_json(json.dumps(spec))
    except Exception as err:  # gigatoken raises several kinds for what it does not support
        logger.info("gigatoken cannot load tokenizer %s (%s)", tok.name, err)
        return None


def tiktoken_encoding(tok: LoadedTokenizer):
    """A tiktoken `Encoding` with the same vocabulary as `tok`, or None when it cannot express it.

    Possible for byte-level BPE with a single split regex and no normalizer, where ids are
    merge ranks (tiktoken merges by the rank of the merged bytes). The identity check in
    `choose_engine` catches any tokenizer where that last assumption fails. Built once per
    tokenizer and process.
    """
    return _built_once(tok, "tiktoken", _build_tiktoken_encoding)


def _built_once(tok: LoadedTokenizer, key: str, build):
    """`build(tok)`, computed on first use and kept on `tok` (one per tokenizer and process)."""
    if key not in tok.__dict__:
        tok.__dict__[key] = build(tok)
    return tok.__dict__[key]


def _build_tiktoken_encoding(tok: LoadedTokenizer):
    try:
        import tiktoken
    except ImportError:
        return None
    if tok.tiktoken_file is not None:
        from tiktoken.load import load_tiktoken_bpe

        ranks = load_tiktoken_bpe(tok.tiktoken_file)
        pattern = LLAMA3_PATTERN
    else:
        parsed = _byte_level_bpe_parts(tok.spec_json())
        if parsed is None:
            return None
        ranks, pattern = parsed
    return tiktoken.Encoding(
        name=f"prolong-{tok.vocab_hash[:12]}", pat_str=pattern, mergeable_ranks=ranks, special_tokens={}
    )


def _byte_level_bpe_parts(spec: dict):
    """(mergeable_ranks, split regex) from a tokenizer.json, or None if not plain byte-level BPE."""
    model, pre = spec.get("model", {}), spec.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or spec.get("normalizer"):
        return None
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    splits = [s for s in steps if s.get("type") == "Split"]
    byte_levels = [s for s in steps if s.get("type") == "ByteLevel"]
    if len(splits) != 1 or len(byte_levels) != 1 or byte_levels[0].get("use_regex", True):
        return None
    if splits[0].get("behavior") != "Isolated" or "Regex" not in splits[0].get("pattern", {}):
        return None
    # byte-level characters -> the latin-1 character of their byte, then one C-level encode
    to_latin1 = {c: "\uffff" for c in range(256)}  # a raw low character is not byte-level: refuse it
    to_latin1.update({ord(ch): chr(b) for b, ch in _bytes_to_unicode().items()})
    ranks = {}
    for token, rank in model["vocab"].items():
        try:
            ranks[token.translate(to_latin1).encode("latin-1")] = rank
        except UnicodeEncodeError:  # a character outside the byte-level alphabet
            return None
    return ranks, splits[0]["pattern"]["Regex"]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table used by byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


ENGINE_ORDER = ("gigatoken", "tiktoken", "hf-split", "hf-whole")


def build_engine(name: str, tok: LoadedTokenizer, threads: int = 1) -> Engine | None:
    """The engine called `name` for `tok`, or None if this tokenizer cannot use it."""
    if name == "gigatoken":
        tokenizer = gigatoken_tokenizer(tok)
        return None if tokenizer is None else GigatokenEngine(tokenizer)
    if name == "tiktoken":
        encoding = tiktoken_encoding(tok)
        return None if encoding is None else TiktokenEngine(encoding, threads=threads)
    if name == "hf-split":
        return HFSplitEngine(tok)
    if name == "hf-whole":
        return HFWholeEngine(tok)
    raise ValueError(f"unknown engine {name!r}; choose from {ENGINE_ORDER} or 'auto'")


def warm_tokenizer(spec: str) -> LoadedTokenizer:
    """Load `spec` and build its first usable engine in this process, ahead of the work.

    Worker processes forked afterwards (the local executor forks) find both already in memory
    instead of loading them again, one second or so each.
    """
    tok = load_tokenizer(spec)
    for name in ENGINE_ORDER:
        if build_engine(name, tok) is not None:
            break
    return tok


def engine_matches_reference(engine: Engine, tok: LoadedTokenizer, sample: Sequence[str]) -> bool:
    """True when `engine` gives the reference ids on every text of `sample`."""
    got = engine.encode_batch(sample)
    return all(np.array_equal(g, tok.encode_reference(t)) for g, t in zip(got, sample))


def choose_engine(
    tok: LoadedTokenizer, sample: Sequence[str], preferred: str = "auto", threads: int = 1
) -> Engine:
    """The fastest engine that reproduces whole-document HF ids on `sample`.

    `preferred="auto"` tries gigatoken, tiktoken, HF on split pieces, then HF whole; naming an engine
    starts the search there. An engine that disagrees on the sample is skipped with a warning.
    """
    order = ENGINE_ORDER if preferred == "auto" else ENGINE_ORDER[ENGINE_ORDER.index(preferred) :]
    if preferred != "auto" and preferred not in ENGINE_ORDER:
        raise ValueError(f"unknown engine {preferred!r}; choose from {ENGINE_ORDER} or 'auto'")
    for name in order:
        engine = build_engine(name, tok, threads=threads)
        if engine is None:
            logger.info("engine %s cannot express tokenizer %s; trying the next", name, tok.name)
            continue
        if name == "hf-whole" or engine_matches_reference(engine, tok, sample):
            return engine
        logger.warning("engine %s gives different ids than HF on the sample; falling back", name)
    raise AssertionError("hf-whole is always available")


def with_boundaries(ids: np.ndarray, tok: LoadedTokenizer, bos: bool = True, eos: bool = True) -> np.ndarray:
    """`ids` with the document's BOS in front and EOS at the end, as the recipe says."""
    parts = []
    if bos:
        parts.append(np.asarray([tok.bos_id], TOKEN_DTYPE))
    parts.append(ids.astype(TOKEN_DTYPE, copy=False))
    if eos:
        parts.append(np.asarray([tok.eos_id], TOKEN_DTYPE))
    return np.concatenate(parts)
