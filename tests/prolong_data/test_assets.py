"""The Llama-3 tokenizer shipped in the package: consistent files, offline loading, the cache."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys

import numpy as np

from prolong_data.assets import LLAMA3_ASSETS, llama3_folder
from prolong_data.tokenization import engines as T
from prolong_data.tokenization.loading import llama3_special_tokens


def test_packaged_tokenizer_json_has_the_ids_of_metas_tokenizer_model():
    model = gzip.decompress((LLAMA3_ASSETS / "tokenizer.model.gz").read_bytes()).decode()
    meta = {base64.b64decode(tok): int(rank) for tok, rank in (line.split() for line in model.splitlines())}
    spec = json.loads(gzip.decompress((LLAMA3_ASSETS / "tokenizer.json.gz").read_bytes()))
    ranks, pattern = T._byte_level_bpe_parts(spec)
    assert len(meta) == 128000 and ranks == meta  # every BPE token, same id
    assert pattern == T.LLAMA3_PATTERN
    special = sorted((t["id"], t["content"]) for t in spec["added_tokens"])
    assert [content for _, content in special] == llama3_special_tokens()
    assert [i for i, _ in special] == list(range(128000, 128256))


def test_llama3_folder_unpacks_the_files_once(tmp_path):
    folder = llama3_folder(tmp_path)
    names = {p.name for p in folder.iterdir()}
    assert names == {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "NOTICE.txt"}
    want = gzip.decompress((LLAMA3_ASSETS / "tokenizer.json.gz").read_bytes())
    assert (folder / "tokenizer.json").read_bytes() == want
    assert "Meta Llama 3 Community License" in (folder / "NOTICE.txt").read_text()
    before = (folder / "tokenizer.json").stat().st_mtime_ns
    assert llama3_folder(tmp_path) == folder and (folder / "tokenizer.json").stat().st_mtime_ns == before


def test_llama3_folder_falls_back_to_the_temp_folder_when_the_cache_cannot_be_written(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    folder = llama3_folder(blocker)  # mkdir under a file fails
    assert not folder.is_relative_to(blocker) and (folder / "tokenizer.json").is_file()


def test_llama3_loads_offline_without_transformers_or_llama_models():
    code = (
        "import sys\n"
        "sys.modules['llama_models'] = None; sys.modules['transformers'] = None  # importing them fails\n"
        "from prolong_data.tokenization import load_tokenizer, build_engine\n"
        "tok = load_tokenizer('llama3')\n"
        "assert (tok.vocab_size, tok.bos_id, tok.eos_id) == (128256, 128000, 128001)\n"
        "assert tok.hf.token_to_id('<|eot_id|>') == 128009 and tok.tiktoken_file.endswith('tokenizer.model')\n"
        "text = 'Call me Ishmael. Some years ago - 1851 - never mind how long.'\n"
        "assert build_engine('tiktoken', tok).encode_batch([text])[0].tolist() == tok.encode_reference(text).tolist()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_llama3_has_the_vocabulary_of_its_tokenizer_json(llama3_tok):
    tok = T.load_tokenizer("llama3")
    assert tok.vocab_hash == llama3_tok.vocab_hash and tok.name == "llama3"
    text = "<|begin_of_text|> stays text; 12345 tokens"
    assert np.array_equal(tok.encode_reference(text), llama3_tok.encode_reference(text))
