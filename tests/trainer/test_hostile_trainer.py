"""Shards that do not fit the run: the trainer says so in one line, exit status 2, before it starts
a model or a data loader (trainer/preflight.py). The shards are a real build of corpus text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import tiny_overrides
from corpus_files import book_files, corpus_file, plain_name, read_bytes

from pipelines.cli import main as prolong_data
from trainer.config import load_config
from trainer.preflight import check_run
from trainer.train import cli

STAGE1 = "trainer/configs/stage1-64k.yaml"
SEQ = 256


@pytest.fixture(scope="module")
def built(tmp_path_factory, corpus, tokenizer_json) -> Path:
    """`prolong-data shards` over two book openings and 60 Q&A rows: domains `book` and `qa`,
    Llama-3 tokens (128,256 ids), 256-token sequences; returns the build folder."""
    root = tmp_path_factory.mktemp("trainer_shards")
    books, rows = root / "books", root / "rows"
    books.mkdir()
    rows.mkdir()
    for src in book_files(corpus / "books")[:2]:
        (books / plain_name(src)).write_bytes(read_bytes(src)[:20_000])
    qa = read_bytes(corpus_file(corpus, "short/qa.jsonl")).splitlines()[:60]
    (rows / "qa.jsonl").write_bytes(b"\n".join(qa) + b"\n")
    recipe = {
        "name": "trainer-hostile",
        "seq_len": SEQ,
        "tokenizer": tokenizer_json,
        "token_budget": 10_000,
        "domains": [
            {
                "name": "book",
                "group": "long",
                "proportion": 0.5,
                "sources": [{"kind": "book_files", "paths": [str(books)]}],
            },
            {
                "name": "qa",
                "group": "short",
                "proportion": 0.5,
                "sources": [{"kind": "rows", "paths": [str(rows)]}],
            },
        ],
    }
    (root / "r.yaml").write_text(yaml.safe_dump(recipe))
    out = root / "out"
    assert (
        prolong_data(["shards", "--recipe", str(root / "r.yaml"), "--out", str(out), "--workers", "1"]) == 0
    )
    return out


def train_cli(mixture: Path, out: Path, capsys, vocab: int = 128256, **extra) -> tuple[int, str]:
    """(exit status, the single stderr line) of a tiny run on `mixture`."""
    code = cli(["--config", STAGE1, *tiny_overrides(mixture, out, SEQ, vocab=vocab, **extra)])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert "Traceback" not in err and len(lines) == 1, err
    return code, lines[0]


def test_a_model_vocabulary_smaller_than_the_shards_tokenizer_is_refused(built, tmp_path, capsys):
    """Llama-3 ids (up to 128,255) and a tiny model with 256 embedding rows: an IndexError inside
    the embedding after start-up before; now one line before anything starts."""
    code, line = train_cli(built / "mixture.json", tmp_path / "run", capsys, vocab=256)
    assert code == 2
    assert "was tokenized with" in line and "(128,256 ids)" in line and "vocab_size 256" in line
    assert not (tmp_path / "run").exists()


def test_a_domain_with_no_samples_is_refused(built, tmp_path, capsys):
    """A domain whose index lists no shard (tampered index.json): a streaming RuntimeError before."""
    copy = Path(shutil.copytree(built, tmp_path / "build"))
    index = json.loads((copy / "qa" / "index.json").read_text())
    index["shards"] = []
    (copy / "qa" / "index.json").write_text(json.dumps(index))
    code, line = train_cli(copy / "mixture.json", tmp_path / "run", capsys)
    assert code == 2
    assert "domain 'qa'" in line and "holds no samples" in line
    assert not (tmp_path / "run").exists()


def test_apply_masks_over_shards_without_masks_is_refused(built, tmp_path, capsys):
    code, line = train_cli(built / "mixture.json", tmp_path / "run", capsys, **{"data.apply_masks": "true"})
    assert code == 2
    assert "data.apply_masks=true but no domain" in line and "--data.apply_masks=false" in line


def test_apply_masks_names_the_domains_without_masks(toy_shards, tmp_path):
    """Domain `a` has no mask column, `b` has one: the run goes on and says `a` trains on every token."""
    args = tiny_overrides(toy_shards, tmp_path / "run", 64, **{"data.apply_masks": "true"})
    notices = check_run(load_config(STAGE1, args))
    assert notices == [
        "data.apply_masks=true: domains ['a'] have no `mask` column; every token of theirs is a target"
    ]


@pytest.mark.parametrize("content", ["[]", "null", '"streams"', "3"])
def test_a_mixture_of_another_shape_is_one_line(built, tmp_path, capsys, content):
    mixture = tmp_path / "mixture.json"
    mixture.write_text(content)
    code, line = train_cli(mixture, tmp_path / "run", capsys)
    assert code == 2 and "not a mixture object" in line and line.count(str(mixture)) == 1


def test_shards_that_fit_pass_every_check(built):
    assert (
        check_run(load_config(STAGE1, tiny_overrides(built / "mixture.json", "unused", SEQ, vocab=128256)))
        == []
    )


def test_a_checkpoint_vocabulary_is_read_from_its_config(built, tmp_path):
    """A Hugging Face folder whose config.json says vocab_size 96: refused by its path."""
    from trainer.config import ModelConfig, TinyConfig
    from trainer.model import load_lm

    folder = tmp_path / "small-model"
    load_lm(ModelConfig(tiny=True), TinyConfig(vocab_size=96, num_layers=1), SEQ).save_pretrained(folder)
    args = tiny_overrides(built / "mixture.json", tmp_path / "run", SEQ, **{"model.path": folder})
    args = [a for a in args if not a.startswith("--model.tiny=")] + ["--model.tiny=false"]
    with pytest.raises(ValueError, match=rf"but model.path={folder} has vocab_size 96: ids up to 128,255"):
        check_run(load_config(STAGE1, args))


def test_a_domain_without_manifest_is_checked_by_its_first_sample(built, tmp_path, capsys):
    """Shards written by other tools carry no manifest: the first sample's ids are compared."""
    copy = Path(shutil.copytree(built, tmp_path / "build"))
    (copy / "book" / "manifest.json").unlink()
    (copy / "qa" / "manifest.json").unlink()
    code, line = train_cli(copy / "mixture.json", tmp_path / "run", capsys, vocab=1000)
    assert code == 2
    assert f"domain 'book' ({copy / 'book'}, no manifest.json) holds token id 128," in line  # BOS or EOS
    assert "in its first sample" in line and "vocab_size 1,000" in line
