"""Near-duplicate documents of a domain, by MinHash-LSH over word n-grams (docs/dedup.md).

Three datatrove steps, one per pass of a build:

* `SignatureWriter` (pass `read`): each document's MinHash signature, written as small records
  (`sig-RRRRR.bin`: `bands * rows` uint64 per document; `sig-RRRRR.jsonl`: its id and length).
  Shingles are the word n-grams of the lowercased text, words by one regex (`WORDS`), hashed a
  block of text at a time, so the memory of the step does not grow with a document's length.
  Tokenized documents are decoded to text first, through one table of token bytes per tokenizer.
* `ResolveNearDuplicates` (pass `near_dedup`, one task per domain): reads every record, puts
  documents that agree on all `rows` hashes of some band in one bucket (LSH), checks each candidate
  pair against the similarity estimated from all the hashes (the share of equal hashes) before
  merging it (union-find), keeps one document per cluster (`keep`), and writes the others to
  `removed.jsonl` with the document kept and their estimated similarity.
* `DropRemovedIds` (pass `build`): drops the documents whose ids that file names.

Records are sorted by id before anything is decided, so the removals do not depend on how many
tasks wrote them. An id that occurs more than once in a domain is never removed here (it cannot
name one document); exact copies among them are the exact-dedup filter's.
"""

from __future__ import annotations

import codecs
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import xxhash
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers.disk_base import DiskWriter

from prolong_data.filters import CountingFilter
from prolong_data.layout import NEAR_DEDUP_REMOVED, signature_files

WORDS = re.compile(r"\w+")
"""A word of the normalized text: a run of letters, digits and underscores (after lowercasing)."""
NOT_WORD = re.compile(r"\W")
BLOCK_CHARS = 1 << 20
"""Text is split into words a block of about this many characters at a time."""
HASH_BLOCK = 4096
"""Shingles are minhashed this many at a time: a (hashes x HASH_BLOCK) uint64 matrix, 3.7 MB at 112."""
CACHE_WORDS = 1 << 16
"""At most this many word hashes are cached per document (a few MB, whatever its vocabulary)."""
TOKEN_BLOCK = 1 << 18
"""Token ids are decoded this many at a time."""
MAX_CHECKS = 64
"""A document of a bucket is checked against at most this many documents before it."""
SEED = 0x5EED
EMPTY = np.iinfo(np.uint64).max
"""Every hash of a document without a word: such documents are never paired."""
_ROLL = np.uint64(0x9E3779B97F4A7C15)


@dataclass(kw_only=True)
class NearDedupConfig:
    """`near_dedup:` of a domain: MinHash-LSH over word n-grams (docs/dedup.md)."""

    threshold: float = 0.8
    """Documents whose estimated Jaccard similarity of n-gram sets reaches this are duplicates."""
    ngram: int = 5
    """Words per shingle."""
    bands: int = 14
    """LSH bands: a pair is a candidate when all hashes of one band agree."""
    rows: int = 8
    """Hashes per band; the signature has `bands * rows` hashes."""
    keep: Literal["longest", "first"] = "longest"
    """Which document of a cluster stays: the `longest` (characters, or tokens for tokenized
    sources; ties go to the first) or the `first` (smallest id, in sorted order)."""

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ValueError(f"near_dedup threshold must be in (0, 1], got {self.threshold}")
        for name in ("ngram", "bands", "rows"):
            if getattr(self, name) <= 0:
                raise ValueError(f"near_dedup {name} must be positive, got {getattr(self, name)}")
        if self.keep not in ("longest", "first"):
            raise ValueError(f"near_dedup keep must be longest or first, got {self.keep!r}")

    @property
    def hashes(self) -> int:
        return self.bands * self.rows

    def candidate_probability(self, similarity: float) -> float:
        """The chance LSH pairs two documents of this Jaccard similarity: the S-curve."""
        return 1 - (1 - similarity**self.rows) ** self.bands


# ----------------------------------------------------------------------------------------------
# Signatures
# ----------------------------------------------------------------------------------------------


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 arrays: every output bit depends on every input bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def words_of_blocks(blocks: Iterable[str]) -> Iterator[list[str]]:
    """The lowercased words of a text given in pieces, a list per piece; a word cut between two
    pieces is carried to the next, so the words are those of the whole text."""
    carry = ""
    for block in blocks:
        text = carry + block
        cut = len(text)
        while cut > 0 and not NOT_WORD.match(text, cut - 1):
            cut -= 1
        carry = text[cut:]
        if cut:
            yield WORDS.findall(text[:cut].lower())
    if carry:
        yield WORDS.findall(carry.lower())


def text_blocks(text: str, size: int = BLOCK_CHARS) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def hash_words(words: list[str], cache: dict[str, int]) -> np.ndarray:
    """(len(words),) uint64 hashes of words (xxh64), remembered in `cache` (cleared by the caller)."""
    for word in set(words).difference(cache):
        cache[word] = xxhash.xxh64_intdigest(word)
    return np.fromiter(map(cache.__getitem__, words), dtype=np.uint64, count=len(words))


def ngram_hashes(words: np.ndarray, n: int) -> np.ndarray:
    """(len(words) - n + 1,) uint64 hashes of the n-grams of word hashes `words` (len >= n): a
    polynomial of the n word hashes, then mixed."""
    count = len(words) - n + 1
    acc = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            acc += words[k : k + count] * (_ROLL ** np.uint64(k))
    return _mix(acc)


class MinHasher:
    """MinHash signatures of word n-gram sets; `signature(blocks)` keeps memory flat in length."""

    def __init__(self, ngram: int = 5, hashes: int = 112, seed: int = SEED):
        self.ngram, self.hashes = ngram, hashes
        rng = np.random.default_rng(seed)
        self._a = rng.integers(1, 2**63, size=hashes, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self._b = rng.integers(0, 2**63, size=hashes, dtype=np.uint64)

    def _fold(self, signature: np.ndarray, shingles: np.ndarray) -> None:
        with np.errstate(over="ignore"):
            for start in range(0, len(shingles), HASH_BLOCK):
                part = shingles[None, start : start + HASH_BLOCK]
                values = self._a[:, None] * part + self._b[:, None]  # (hashes, block)
                np.minimum(signature, values.min(axis=1), out=signature)

    def signature(self, blocks: Iterable[str]) -> np.ndarray:
        """(hashes,) uint64: the minimum of each hash function over the text's shingles (the
        n-grams of its words; one shingle of all its words when it has fewer than `ngram`).
        A text without a word gets `EMPTY` everywhere."""
        signature = np.full(self.hashes, EMPTY, dtype=np.uint64)
        cache: dict[str, int] = {}
        tail = np.empty(0, dtype=np.uint64)  # the last ngram - 1 words, for n-grams across blocks
        seen = 0
        for words in words_of_blocks(blocks):
            if len(cache) > CACHE_WORDS:
                cache.clear()  # a bound on memory for texts of unbounded vocabulary
            hashed = np.concatenate([tail, hash_words(words, cache)])
            seen += len(words)
            if len(hashed) >= self.ngram:
                self._fold(signature, ngram_hashes(hashed, self.ngram))
                tail = hashed[len(hashed) - self.ngram + 1 :] if self.ngram > 1 else hashed[:0]
            else:
                tail = hashed
        if 0 < seen < self.ngram:
            short = np.concatenate([tail, np.zeros(self.ngram - len(tail), dtype=np.uint64)])
            self._fold(signature, ngram_hashes(short, self.ngram))
        return signature


def estimated_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The share of equal hashes of two signatures: an unbiased estimate of their Jaccard."""
    return float(np.count_nonzero(a == b)) / len(a)


def byte_level_alphabet() -> dict[str, int]:
    """The byte-level BPE alphabet (GPT-2, Llama-3): the character that stands for each byte.
    Printable Latin-1 bytes stand for themselves; the others take the code points from 256 on."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = {b: b for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return {chr(c): b for b, c in chars.items()}


@lru_cache(maxsize=4)
def token_bytes(tokenizer: str) -> np.ndarray:
    """(vocab,) object array: the bytes of each token id, read once per tokenizer from its
    vocabulary (byte-level BPE tokens map back to bytes exactly; other tokenizers decode each id)."""
    from prolong_data.tokenization import load_tokenizer

    loaded = load_tokenizer(tokenizer)
    spec = loaded.spec_json()
    added = {t["id"] for t in spec.get("added_tokens", [])}
    alphabet = byte_level_alphabet() if (spec.get("decoder") or {}).get("type") == "ByteLevel" else None
    table = np.empty(loaded.vocab_size, dtype=object)
    for i in range(loaded.vocab_size):
        token = loaded.hf.id_to_token(i) if alphabet is not None and i not in added else None
        if token is not None and all(c in alphabet for c in token):
            table[i] = bytes(alphabet[c] for c in token)
        else:
            table[i] = loaded.hf.decode([i]).encode("utf-8", "surrogatepass")
    return table


def token_blocks(tokens: np.ndarray, table: np.ndarray, size: int = TOKEN_BLOCK) -> Iterator[str]:
    """The text of token ids, `size` ids at a time (a character cut between blocks is whole in
    the next; invalid bytes become U+FFFD)."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for start in range(0, len(tokens), size):
        yield decoder.decode(b"".join(table[tokens[start : start + size]]))
    yield decoder.decode(b"", final=True)


class SignatureWriter(PipelineStep):
    """Writes the MinHash signature, id and length of every document (see module doc);
    `passthrough` forwards the documents to the next step (else the step ends the pipeline)."""

    name = "near-dedup signatures"
    type = "🫂 - DEDUP"

    def __init__(
        self, folder: str, config: NearDedupConfig, passthrough: bool = False, tokenizer: str | None = None
    ):
        super().__init__()
        self.folder, self.config, self.passthrough, self.tokenizer = (
            str(folder),
            config,
            passthrough,
            tokenizer,
        )

    def output_files(self, rank: int) -> list[Path]:
        return list(signature_files(self.folder, rank))

    def run(self, data, rank: int = 0, world_size: int = 1):
        hasher = MinHasher(self.config.ngram, self.config.hashes)
        sig_path, ids_path = signature_files(self.folder, rank)
        sig_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_sig, tmp_ids = sig_path.with_suffix(".bin.tmp"), ids_path.with_suffix(".jsonl.tmp")
        count = 0
        with open(tmp_sig, "wb") as sigs, open(tmp_ids, "w", encoding="utf-8") as ids:
            for doc in data or ():
                blocks, length = self._text_of(doc)
                sigs.write(hasher.signature(blocks).tobytes())
                ids.write(json.dumps({"id": str(doc.id), "length": length}, ensure_ascii=False) + "\n")
                count += 1
                if self.passthrough:
                    yield doc
        tmp_sig.replace(sig_path)
        tmp_ids.replace(ids_path)
        self.stat_update("documents", value=count)

    def _text_of(self, doc) -> tuple[Iterable[str], int]:
        tokens = getattr(doc, "tokens", None)
        if tokens is not None:
            return token_blocks(np.asarray(tokens), token_bytes(self.tokenizer)), len(tokens)
        return text_blocks(doc.text), len(doc.text)


# ----------------------------------------------------------------------------------------------
# Resolution
# ----------------------------------------------------------------------------------------------


def read_signatures(folder: str | Path, tasks: int, hashes: int) -> tuple[list[dict], np.ndarray]:
    """Every record the signature pass wrote ((id, length) dicts, (n, hashes) uint64), in rank order."""
    records, parts = [], []
    for rank in range(tasks):
        sig_path, ids_path = signature_files(folder, rank)
        if not sig_path.is_file() or not ids_path.is_file():
            raise FileNotFoundError(
                f"{sig_path} is missing: run the same command again (its read task reruns)"
            )
        rows = [json.loads(line) for line in ids_path.read_text(encoding="utf-8").splitlines() if line]
        sigs = np.fromfile(sig_path, dtype=np.uint64)
        if len(sigs) != len(rows) * hashes:
            raise ValueError(
                f"{sig_path} holds {len(sigs)} hashes for {len(rows)} documents: run the build again"
            )
        records += rows
        parts.append(sigs.reshape(len(rows), hashes))
    return records, np.concatenate(parts) if parts else np.empty((0, hashes), dtype=np.uint64)


class UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def candidate_buckets(signatures: np.ndarray, bands: int, rows: int) -> Iterator[list[int]]:
    """Groups of (at least two) document indices that agree on every hash of one band."""
    for band in range(bands):
        buckets: dict[bytes, list[int]] = {}
        part = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        for i in range(len(part)):
            buckets.setdefault(part[i].tobytes(), []).append(i)
        yield from (members for members in buckets.values() if len(members) > 1)


def find_clusters(signatures: np.ndarray, config: NearDedupConfig, eligible: np.ndarray) -> UnionFind:
    """Union-find of the documents joined by verified LSH pairs: a candidate pair is merged when
    the share of equal hashes of the two signatures reaches the threshold."""
    clusters = UnionFind(len(signatures))
    for members in candidate_buckets(signatures, config.bands, config.rows):
        members = [m for m in members if eligible[m]]
        for j, doc in enumerate(members[1:], start=1):
            for other in members[max(0, j - MAX_CHECKS) : j]:
                if clusters.find(other) == clusters.find(doc):
                    break
                if estimated_similarity(signatures[doc], signatures[other]) >= config.threshold:
                    clusters.union(doc, other)
                    break
    return clusters


def choose_removals(records: list[dict], signatures: np.ndarray, config: NearDedupConfig) -> list[dict]:
    """One entry per removed document: {removed, kept, similarity, length}, in id order.
    `records` are sorted by id (the order `first` means)."""
    ids = [r["id"] for r in records]
    unique = _unique_mask(ids)
    has_words = ~np.all(signatures == EMPTY, axis=1) if len(signatures) else np.zeros(0, bool)
    clusters = find_clusters(signatures, config, unique & has_words)
    groups: dict[int, list[int]] = {}
    for i in range(len(records)):
        groups.setdefault(clusters.find(i), []).append(i)
    removed = []
    for members in groups.values():
        if len(members) < 2:
            continue
        if config.keep == "longest":
            kept = max(members, key=lambda i: (records[i]["length"], -i))
        else:
            kept = min(members)
        for i in members:
            if i != kept:
                similarity = estimated_similarity(signatures[i], signatures[kept])
                removed.append(
                    {
                        "removed": ids[i],
                        "kept": ids[kept],
                        "similarity": round(similarity, 4),
                        "length": records[i]["length"],
                    }
                )
    return sorted(removed, key=lambda r: r["removed"])


def _unique_mask(ids: list[str]) -> np.ndarray:
    """(n,) bool: whether each id occurs once."""
    counts = Counter(ids)
    return np.array([counts[i] == 1 for i in ids], dtype=bool)


def removed_file(folder: str | Path) -> Path:
    """The removals of a domain (`ResolveNearDuplicates` writes it, `DropRemovedIds` reads it)."""
    return Path(folder) / NEAR_DEDUP_REMOVED


class ResolveNearDuplicates(PipelineStep):
    """Pass `near_dedup`, one task: signatures in, `removed.jsonl` out (see module doc)."""

    name = "near-dedup clusters"
    type = "🫂 - DEDUP"

    def __init__(
        self, folder: str, tasks: int, config: NearDedupConfig, domain: str, unit: str = "characters"
    ):
        super().__init__()
        self.folder, self.tasks, self.config, self.domain, self.unit = (
            str(folder),
            tasks,
            config,
            domain,
            unit,
        )

    def output_files(self, rank: int) -> list[Path]:
        return [removed_file(self.folder)]

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        records, signatures = read_signatures(self.folder, self.tasks, self.config.hashes)
        order = sorted(range(len(records)), key=lambda i: records[i]["id"])
        records = [records[i] for i in order]
        signatures = signatures[order] if len(order) else signatures
        removals = choose_removals(records, signatures, self.config)
        path = removed_file(self.folder)
        tmp = path.with_suffix(".jsonl.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for r in removals:
                line = {"domain": self.domain, "removed": r["removed"], "kept": r["kept"]}
                line |= {"similarity": r["similarity"], self.unit: r["length"]}
                f.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
        tmp.replace(path)
        self.stat_update("documents", value=len(records))
        self.stat_update("removed", value=len(removals))
        self.stat_update(f"removed_{self.unit}", value=sum(r["length"] for r in removals))
        return iter(())


def read_removals(folder: str | Path) -> list[dict]:
    """The lines of a domain's `removed.jsonl` (empty when the domain has none)."""
    path = removed_file(folder)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class DropRemovedIds(CountingFilter):
    """Pass `build`: drops the documents that `ResolveNearDuplicates` chose to remove."""

    name = "near dedup"

    def __init__(self, folder: str, exclusion_writer: DiskWriter | None = None):
        super().__init__(exclusion_writer)
        self.folder = str(folder)
        self._removed: frozenset[str] = frozenset()

    def run(self, data, rank: int = 0, world_size: int = 1):
        self._removed = frozenset(r["removed"] for r in read_removals(self.folder))
        yield from super().run(data, rank, world_size)

    def filter(self, doc) -> bool | tuple[bool, str]:
        return (False, "near_duplicate") if str(doc.id) in self._removed else (True, None)
