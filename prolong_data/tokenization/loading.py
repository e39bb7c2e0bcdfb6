"""Loading a tokenizer (`llama3`, a tokenizer.json, an HF folder or a hub id) and what the shards
record about it."""

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

from prolong_data.assets import llama3_folder
from prolong_data.contract import TOKEN_DTYPE

logger = logging.getLogger(__name__)

LLAMA3_NUM_SPECIAL = 256
BOS_CANDIDATES = ("<|begin_of_text|>", "<s>", "<|startoftext|>", "<|endoftext|>")
EOS_CANDIDATES = ("<|end_of_text|>", "</s>", "<|endoftext|>", "<|im_end|>")


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
