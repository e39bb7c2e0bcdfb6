"""The datatrove step that tokenizes documents, choosing the fastest exact engine on a sample."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from datatrove.pipeline.base import PipelineStep

from prolong_data.tokenization.engines import SAFE_SPLIT, Engine, choose_engine, with_boundaries
from prolong_data.tokenization.loading import LoadedTokenizer, load_tokenizer

logger = logging.getLogger(__name__)

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
