"""Tokenizer loading and exact, fast encoding of long documents.

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

import hashlib
import importlib.util
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
from datatrove.pipeline.base import PipelineStep

from prolong_data.assets import llama3_folder
from prolong_data.contract import TOKEN_DTYPE

logger = logging.getLogger(__name__)


LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_NUM_SPECIAL = 256
BOS_CANDIDATES = ("<|begin_of_text|>", "<s>", "<|startoftext|>", "<|endoftext|>")
EOS_CANDIDATES = ("<|end_of_text|>", "</s>", "<|endoftext|>", "<|im_end|>")

# A cut right after a newline followed by a letter is a pre-tokenizer boundary for Llama-3 and
# GPT-style byte-level regexes: no piece can start with a newline and continue into a letter.
SAFE_SPLIT = re.compile(r"\n(?=[^\W\d_])")


class TokenizerError(ValueError):
    """A tokenizer spec that cannot be loaded; the message says what to give instead."""


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


@dataclass
class LoadedTokenizer:
    """An HF `tokenizers.Tokenizer` plus what the shards record about it."""

    name: str
    """What the user asked for (`llama3`, a path or a hub id)."""
    hf: object
    """The `tokenizers.Tokenizer` that defines the ids (the reference for every engine). It is set
    to encode special-token strings found in text as ordinary text."""
    bos_id: int
    """Token id put before every document."""
    eos_id: int
    """Token id put after every document."""
    tiktoken_file: str | None = None
    """Path of a tiktoken BPE file with the same vocabulary, when one is known."""
    json_file: str | None = None
    """Path of the tokenizer.json it was loaded from, when there is one (read faster than `to_str`)."""

    def spec_json(self) -> dict:
        """The tokenizer.json content as a dict."""
        if self.json_file is not None:
            import orjson

            return orjson.loads(Path(self.json_file).read_bytes())
        return json.loads(self.hf.to_str())

    @cached_property
    def vocab_hash(self) -> str:
        """sha256 of the (token, id) table including special tokens: equal hashes, equal ids."""
        import orjson

        vocab = self.hf.get_vocab(with_added_tokens=True)
        return hashlib.sha256(orjson.dumps(sorted(vocab.items(), key=lambda kv: kv[1]))).hexdigest()

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size(with_added_tokens=True)

    def describe(self) -> dict:
        """The manifest entry for this tokenizer."""
        return {
            "name": self.name,
            "vocab_hash": self.vocab_hash,
            "vocab_size": self.vocab_size,
            "bos_id": self.bos_id,
            "eos_id": self.eos_id,
        }

    def encode_reference(self, text: str) -> np.ndarray:
        """Whole-document HF encoding, special-token look-alikes as plain text: the ground truth."""
        return np.asarray(self.hf.encode(text, add_special_tokens=False).ids, TOKEN_DTYPE)

    def decode(self, ids: Sequence[int]) -> str:
        return self.hf.decode([int(i) for i in ids], skip_special_tokens=False)


def load_tokenizer(spec: str, *, bos: str | None = None, eos: str | None = None) -> LoadedTokenizer:
    """Load a tokenizer from `llama3`, a `tokenizer.json` file, a local HF folder, or a hub id.

    `llama3` is Meta's Llama-3 tokenizer as shipped inside this package (`prolong_data.assets`):
    offline, no extra package. `bos` / `eos` override the document boundary tokens (by string).
    A process loads each tokenizer once: build tasks that run one after the other in the same
    worker share it (and its tiktoken engine, see `tiktoken_encoding`).
    """
    return _load_tokenizer_cached(spec, bos, eos)


@lru_cache(maxsize=8)
def _load_tokenizer_cached(spec: str, bos: str | None, eos: str | None) -> LoadedTokenizer:
    json_file = tiktoken_file = None
    if spec == "llama3":
        folder = llama3_folder()
        json_file, tiktoken_file = str(folder / "tokenizer.json"), str(folder / "tokenizer.model")
        hf, config = _load_tokenizer_json(Path(json_file)), _read_tokenizer_config(folder)
    else:
        path = Path(spec).expanduser()
        if path.is_file():
            hf, json_file = _load_tokenizer_json(path), str(path)
        elif path.is_dir():
            hf = _load_folder(path)
            json_file = str(path / "tokenizer.json") if (path / "tokenizer.json").is_file() else None
        elif looks_like_hub_id(spec):
            logger.warning(
                "tokenizer %r is no local file or folder: fetching it from the Hugging Face hub", spec
            )
            hf = _load_from_hub(spec)
        else:
            raise TokenizerError(
                f"tokenizer {spec!r}: no such file or folder (relative paths start at {Path.cwd()}). Give "
                "`llama3`, a tokenizer.json path, a folder with tokenizer.json, or a hub id like "
                "meta-llama/Meta-Llama-3-8B."
            )
        config = _read_tokenizer_config(Path(spec))
    bos_id = _special_id(hf, bos, config.get("bos_token"), BOS_CANDIDATES, "bos")
    eos_id = _special_id(hf, eos, None, EOS_CANDIDATES, "eos")
    hf.encode_special_tokens = True  # documents can never inject control tokens
    return LoadedTokenizer(
        name=spec, hf=hf, bos_id=bos_id, eos_id=eos_id, tiktoken_file=tiktoken_file, json_file=json_file
    )


HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
FILE_SUFFIXES = (".json", ".model", ".txt", ".yaml", ".yml", ".bin", ".gz", ".xz", ".zst", ".tiktoken")


def looks_like_hub_id(spec: str) -> bool:
    """True for `org/name` that is no local path: one slash, hub-legal characters, no file
    ending (`mytok/tokenizer.json` is a missing file, not a model), and no local folder `org`."""
    if not HUB_ID.fullmatch(spec) or spec.lower().endswith(FILE_SUFFIXES):
        return False
    return not Path(spec.split("/")[0]).exists()


def _load_tokenizer_json(path: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


def _load_folder(path: Path):
    if (path / "tokenizer.json").is_file():
        return _load_tokenizer_json(path / "tokenizer.json")
    _require_transformers(f"tokenizer folder {path} (no tokenizer.json)")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path)).backend_tokenizer
    except Exception as err:  # transformers raises many kinds here
        raise TokenizerError(
            f"folder {path} holds no loadable tokenizer ({err}); it needs tokenizer.json"
        ) from err


def _load_from_hub(repo_id: str):
    _require_transformers(f"hub tokenizer {repo_id!r}")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(repo_id).backend_tokenizer
    except Exception as err:
        raise TokenizerError(
            f"could not fetch tokenizer {repo_id!r} from the hub ({type(err).__name__}). Offline? "
            "Use `llama3` or a local tokenizer.json instead."
        ) from err


def _require_transformers(what: str) -> None:
    """Raise `TokenizerError` naming the extra to install when transformers is missing."""
    if importlib.util.find_spec("transformers") is None:
        raise TokenizerError(
            f"{what} needs transformers, which the core install leaves out: "
            "pip install 'prolong-data[train]' (or give a tokenizer.json path)"
        )


def _read_tokenizer_config(spec: Path) -> dict:
    folder = spec if spec.is_dir() else spec.parent
    config = folder / "tokenizer_config.json"
    if not config.is_file():
        return {}
    data = json.loads(config.read_text())
    return {k: (v["content"] if isinstance(v, dict) else v) for k, v in data.items() if k.endswith("_token")}


def _special_id(
    hf, override: str | None, configured: str | None, candidates: Iterable[str], role: str
) -> int:
    """Id of the document boundary token: the override, else the configured, else a known name."""
    for token in (override, configured, *candidates):
        if token is not None and hf.token_to_id(token) is not None:
            return hf.token_to_id(token)
    raise TokenizerError(f"cannot find a {role} token in this tokenizer; pass {role}='<the token>'")


def llama3_special_tokens() -> list[str]:
    """The 256 Llama-3 (8B, 8B-Instruct) special tokens, in id order from 128000.

    These are Llama-3.0's names, the ones of ProLong's base model and of the packaged
    tokenizer.json; Llama-3.1 renamed a few reserved slots (e.g. 128004
    `<|finetune_right_pad_id|>`) without changing any id.
    """
    named = {
        0: "<|begin_of_text|>",
        1: "<|end_of_text|>",
        6: "<|start_header_id|>",
        7: "<|end_header_id|>",
        9: "<|eot_id|>",
    }
    tokens, reserved = [], 0
    for slot in range(LLAMA3_NUM_SPECIAL):
        if slot in named:
            tokens.append(named[slot])
        else:
            tokens.append(f"<|reserved_special_token_{reserved}|>")
            reserved += 1
    return tokens


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


# --------------------------------------------------------------------------------------------
# The datatrove step
# --------------------------------------------------------------------------------------------


@dataclass
class TokenizedDocument:
    """One document as token ids (BOS/EOS included), with where it came from."""

    id: str
    tokens: np.ndarray  # (n,) uint32
    source: str = ""
    mask: np.ndarray | None = None  # (n,) uint8, SFT only


class TokenizeDocuments(PipelineStep):
    """datatrove step: `Document`s in, `TokenizedDocument`s (with BOS/EOS) out, in input order.

    The tokenizer is loaded inside `run`, so the step pickles cheaply to executor workers. The
    engine is chosen on the first `check_docs` documents (see `choose_engine`); the choice is
    logged and counted in the step's stats.
    """

    name = "fast exact tokenizer"
    type = "🔢 - TOKENIZER"

    def __init__(
        self,
        tokenizer: str,
        engine: str = "auto",
        threads: int = 1,
        batch_chars: int = 4_000_000,
        add_bos: bool = True,
        add_eos: bool = True,
        check_docs: int = 4,
        check_chars: int = 50_000,
    ):
        super().__init__()
        if batch_chars <= 0 or threads <= 0:
            raise ValueError("batch_chars and threads must be positive")
        self.tokenizer, self.engine_name, self.threads = tokenizer, engine, threads
        self.batch_chars, self.add_bos, self.add_eos = batch_chars, add_bos, add_eos
        self.check_docs, self.check_chars = check_docs, check_chars

    def run(self, data, rank: int = 0, world_size: int = 1):
        tok = load_tokenizer(self.tokenizer)
        engine, batch, size = None, [], 0
        for doc in data:
            batch.append(doc)
            size += len(doc.text)
            if engine is None and len(batch) >= self.check_docs:
                engine = self._pick_engine(tok, batch)
            if size >= self.batch_chars:
                engine = engine or self._pick_engine(tok, batch)
                yield from self._encode(engine, tok, batch)
                batch, size = [], 0
        if batch:
            engine = engine or self._pick_engine(tok, batch)
            yield from self._encode(engine, tok, batch)

    def _pick_engine(self, tok: LoadedTokenizer, docs) -> Engine:
        sample = [identity_sample(d.text, self.check_chars) for d in docs[: self.check_docs]]
        engine = choose_engine(tok, sample, preferred=self.engine_name, threads=self.threads)
        logger.info("tokenizing with engine %s", engine.name)
        self.stat_update(f"engine_{engine.name}")
        return engine

    def _encode(self, engine: Engine, tok: LoadedTokenizer, docs):
        with self.track_time(unit="batch"):
            ids = engine.encode_batch([d.text for d in docs])
        total = 0
        for doc, doc_ids in zip(docs, ids):
            tokens = with_boundaries(doc_ids, tok, bos=self.add_bos, eos=self.add_eos)
            total += len(tokens)
            source = doc.metadata.get("source", "") if doc.metadata else ""
            yield TokenizedDocument(id=doc.id, tokens=tokens, source=str(source))
        self.stat_update("tokens", value=total, unit="batch")  # one update per batch: stats are slow


def identity_sample(text: str, max_chars: int) -> str:
    """The text an engine's identity check encodes for one document: at most `max_chars`
    characters from its start, so the check costs the same on a 30 MB single-line document as on a
    page. Any text serves: the engine and the reference encode the same string and must agree;
    it ends at a safe boundary when one lies in the second half, so the sample is what the engine
    sees of a long document (a piece), else it is cut where it stands."""
    if len(text) <= max_chars:
        return text
    cut = max(
        (m.start() + 1 for m in SAFE_SPLIT.finditer(text, max_chars // 2, max_chars)), default=max_chars
    )
    return text[:cut]
