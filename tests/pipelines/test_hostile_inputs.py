"""Hostile input to the readers: every case is counted with where it came from, none stops a
read, none hangs, and nothing outside the folders a recipe names is ever read."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from prolong_data.sources import (
    BookFolderReader,
    HashPartitionWriter,
    PartitionReader,
    RepoFolderReader,
    TextRowsReader,
)
from prolong_data.sources.chat import ChatRowsReader
from prolong_data.sources.files import iter_lines

SECRET = "PRIVATE-KEY-do-not-train-on-me"


def docs_of(reader, rank=0, world_size=1):
    return list(reader.run(None, rank, world_size))


def rows_file(path: Path, rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def make_repo(root: Path, name: str, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / name / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / name / rel).write_text(text)
    return root / name


@pytest.fixture
def secret_file(tmp_path) -> Path:
    """A private file outside every source folder."""
    path = tmp_path / "elsewhere" / "id_rsa.txt"
    path.parent.mkdir()
    path.write_text(SECRET + "\n")
    return path


# -- truncated compressed files ------------------------------------------------------------------


def test_truncated_jsonl_gz_keeps_the_rows_before_the_cut(tmp_path):
    data = gzip.compress(rows_file(tmp_path, [{"id": f"r{i}", "text": f"row {i} " * 50} for i in range(400)]))
    (tmp_path / "rows").mkdir()
    (tmp_path / "rows" / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "rows" / "whole.jsonl.gz").write_bytes(gzip.compress(rows_file(tmp_path, [{"text": "fine"}])))
    reader = TextRowsReader(str(tmp_path / "rows"))
    docs = docs_of(reader)
    ids = [d.id for d in docs if d.id.startswith("r")]
    assert 0 < len(ids) < 400 and ids == [
        f"r{i}" for i in range(len(ids))
    ]  # the rows before the cut, in order
    assert docs[-1].text == "fine"  # the next file is read as usual
    assert reader.bad.counts == {"truncated_file": 1}
    assert reader.bad.examples["truncated_file"][0]["file"].endswith("cut.jsonl.gz")


def test_truncated_txt_gz_book_is_counted_and_its_text_kept(tmp_path):
    book = "".join(f"Line {i} of a long book about the sea.\n" for i in range(20_000))
    data = gzip.compress(book.encode())
    (tmp_path / "b.txt.gz").write_bytes(data[: len(data) // 2])
    reader = BookFolderReader(str(tmp_path))
    (doc,) = docs_of(reader)
    assert reader.bad.counts == {"truncated_file": 1}
    assert book.startswith(doc.text.rstrip("\n")[:-100]) and 1000 < len(doc.text) < len(book)


# -- names and ids that UTF-8 cannot write --------------------------------------------------------


def test_lone_surrogate_ids_and_undecodable_file_names_pass_the_partition(tmp_path):
    folder = tmp_path / "rows"
    folder.mkdir()
    weird = Path(os.fsdecode(bytes(folder) + b"/caf\xff.jsonl"))  # a name byte that is not UTF-8
    weird.write_bytes(b'{"id": "\\ud800", "text": "lone surrogate id"}\n{"text": "no id"}\n')
    reader = TextRowsReader(str(folder))
    docs = docs_of(reader)
    assert [d.text for d in docs] == ["lone surrogate id", "no id"]
    for doc in docs:  # ids and provenance are writable as UTF-8 now
        doc.id.encode("utf-8")
        doc.metadata["source"].encode("utf-8")
    assert docs[0].id == "\\ud800" and docs[1].id == "caf\\udcff.jsonl/2"
    assert reader.bad.counts == {"invalid_name": 2}
    json.dumps(reader.bad.to_dict()).encode("utf-8")  # the report prints

    # two tasks: the documents go through a partition file and come back
    for rank in range(2):
        HashPartitionWriter(str(tmp_path / "parts"), 2).run(iter(docs), rank, 2)
    back = [d for p in range(2) for d in PartitionReader(str(tmp_path / "parts")).run(None, p, 2)]
    assert sorted(d.id for d in back) == sorted([d.id for d in docs] * 2)


def test_a_missing_or_truncated_partition_fails_the_task_instead_of_losing_documents(tmp_path):
    from datatrove.data import Document

    from prolong_data.sources.partitions import PartitionError, partition_file

    docs = [Document(text=f"document {i} " * 200, id=str(i)) for i in range(50)]
    for rank in range(2):
        writer = HashPartitionWriter(str(tmp_path), 2)
        writer.run(iter(docs[rank::2]), rank, 2)
        assert writer.report_extra()["partition_bytes"] == [
            partition_file(tmp_path, p, rank).stat().st_size for p in range(2)
        ]
    assert sum(len(list(PartitionReader(str(tmp_path), sources=2).run(None, p, 2))) for p in range(2)) == 50
    path = partition_file(tmp_path, 1, 0)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(PartitionError, match="from-00000.jsonl.zst is truncated"):
        list(PartitionReader(str(tmp_path)).run(None, 1, 2))
    path.unlink()
    with pytest.raises(PartitionError, match="is missing"):
        list(PartitionReader(str(tmp_path), sources=2).run(None, 1, 2))


def test_lone_surrogates_in_chat_turns_are_repaired_and_counted(tmp_path):
    row = {"messages": [{"role": "user", "content": "hi \ud800"}, {"role": "assistant", "content": "ok"}]}
    (tmp_path / "chat.jsonl").write_text(json.dumps(row) + "\n")
    reader = ChatRowsReader(str(tmp_path))
    (doc,) = docs_of(reader)
    assert doc.metadata["messages"][0]["content"] == "hi \ufffd"
    assert reader.bad.counts == {"invalid_utf8_repaired": 1}
    drop = ChatRowsReader(str(tmp_path), utf8="drop")
    assert docs_of(drop) == [] and drop.bad.counts == {"invalid_utf8_dropped": 1}


# -- special files, links out of the folder, size bounds -----------------------------------------


@pytest.mark.timeout(120)  # a FIFO that is opened blocks forever: fail, never hang
def test_fifo_in_a_repository_and_a_book_folder_is_skipped_and_counted(tmp_path):
    repo = make_repo(tmp_path / "repos", "pkg", {"a.py": "a = 1\n", "b.py": "b = 2\n"})
    os.mkfifo(repo / "c.py")
    code = RepoFolderReader(str(tmp_path / "repos"))
    (doc,) = docs_of(code)
    assert doc.metadata["files"] == 2 and code.bad.counts == {"special_file": 1}
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "a.txt").write_text("a book\n")
    os.mkfifo(tmp_path / "books" / "pipe.txt")
    books = BookFolderReader(str(tmp_path / "books"))
    assert [d.text for d in docs_of(books)] == ["a book\n"] and books.bad.counts == {"special_file": 1}


@pytest.mark.timeout(120)  # reading /dev/zero never ends
def test_links_out_of_a_repository_are_never_followed(tmp_path, secret_file):
    repo = make_repo(tmp_path / "repos", "pkg", {"a.py": "a = 1\n", "b.py": "b = 2\n", "sub/c.py": "c = 3\n"})
    os.symlink(secret_file, repo / "key.py")  # a file out of the repository
    os.symlink(secret_file.parent, repo / "linked")  # a folder out of it
    os.symlink("/dev/zero", repo / "zero.py")  # a device
    os.symlink(repo / "a.py", repo / "alias.py")  # inside the repository: fine
    outside_repo = make_repo(tmp_path, "other", {"x.py": SECRET, "y.py": SECRET})
    os.symlink(outside_repo, tmp_path / "repos" / "linkedrepo")  # a whole repository out of the folder
    reader = RepoFolderReader(str(tmp_path / "repos"))
    docs = docs_of(reader)
    assert [d.id for d in docs] == ["pkg"] and SECRET not in docs[0].text
    assert docs[0].metadata["files"] == 4  # a.py, alias.py, b.py, sub/c.py
    assert reader.bad.counts == {"outside_root": 4}  # key.py, linked/, zero.py, linkedrepo


def test_links_out_of_a_book_or_rows_folder_are_never_followed(tmp_path, secret_file):
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "real.txt").write_text("a real book\n")
    os.symlink(secret_file, tmp_path / "books" / "stolen.txt")
    os.symlink("/dev/zero", tmp_path / "books" / "zero.txt")
    books = BookFolderReader(str(tmp_path / "books"))
    assert [d.text for d in docs_of(books)] == ["a real book\n"]
    assert books.bad.counts == {"outside_root": 2}
    (tmp_path / "rows").mkdir()
    os.symlink(secret_file, tmp_path / "rows" / "stolen.jsonl")
    rows = TextRowsReader(str(tmp_path / "rows"), glob="*.jsonl")
    assert docs_of(rows) == [] and rows.bad.counts == {"outside_root": 1}
    named = BookFolderReader(str(secret_file))  # a file the recipe names itself is read
    assert [d.text for d in docs_of(named)] == [SECRET + "\n"]


def test_every_file_read_has_a_size_bound(tmp_path):
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "small.txt").write_text("small\n")
    (tmp_path / "books" / "big.txt").write_text("x" * 5000)
    (tmp_path / "books" / "bomb.txt.gz").write_bytes(gzip.compress(b"y" * 50_000))  # small on disk
    books = BookFolderReader(str(tmp_path / "books"), max_file_bytes=4096)
    assert [d.text for d in docs_of(books)] == ["small\n"]
    assert books.bad.counts == {"oversized_file": 2}

    repo = make_repo(tmp_path / "repos", "pkg", {"a.py": "a = 1\n", "b.py": "b = 2\n", "big.py": "z" * 5000})
    code = RepoFolderReader(str(tmp_path / "repos"), max_file_bytes=4096)
    (doc,) = docs_of(code)
    assert "z" * 100 not in doc.text and code.stats["skipped_oversized_files"].total == 1
    assert repo.is_dir()

    (tmp_path / "rows").mkdir()
    (tmp_path / "rows" / "r.jsonl").write_bytes(
        rows_file(tmp_path, [{"text": "short"}, {"text": "w" * 5000}, {"text": "after"}])
    )
    rows = TextRowsReader(str(tmp_path / "rows"))
    rows.max_line_bytes = 1000
    assert [d.text for d in docs_of(rows)] == ["short", "after"]
    assert rows.bad.counts == {"oversized_row": 1} and rows.bad.examples["oversized_row"][0]["line"] == 2
    rows_bounded = TextRowsReader(str(tmp_path / "rows"), max_file_bytes=100)
    assert docs_of(rows_bounded) == [] and rows_bounded.bad.counts == {"oversized_file": 1}


def test_a_line_without_end_is_read_in_bounded_pieces(tmp_path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(b"x" * 300_000 + b"\n" + b'{"text": "ok"}')  # a huge first line, no newline at the end
    assert list(iter_lines(str(path), max_line_bytes=1000)) == [(1, None), (2, b'{"text": "ok"}')]


def test_bom_is_stripped_from_code_files_as_from_books(tmp_path):
    make_repo(tmp_path / "repos", "pkg", {"a.py": "\ufeffa = 1\r\n", "b.py": "b = 2\n"})
    (doc,) = docs_of(RepoFolderReader(str(tmp_path / "repos")))
    assert "\ufeff" not in doc.text and "# File: pkg/a.py\na = 1\n" in doc.text


# -- a 30 MB single-line document ------------------------------------------------------------------


def test_the_engine_check_on_a_30mb_single_line_book_encodes_a_bounded_sample(monkeypatch, tokenizer_json):
    from datatrove.data import Document

    from prolong_data.tokenization import step as T

    text = " ".join(["word"] * 6_000_000)  # 30 MB, no newline: no safe boundary anywhere
    seen = []
    real = T.choose_engine

    def spy(tok, sample, **kwargs):
        seen.extend(len(s) for s in sample)
        return real(tok, sample, **kwargs)

    monkeypatch.setattr(T, "choose_engine", spy)
    step = T.TokenizeDocuments(tokenizer_json, check_chars=50_000)
    (out,) = list(step.run([Document(text=text, id="long")]))
    assert seen == [50_000]  # the identity check encoded 50,000 characters, not 30 MB
    assert len(out.tokens) == 6_000_000 + 2  # "word", then " word" each, BOS and EOS


def test_identity_sample_is_a_prefix_cut_at_a_safe_boundary_when_one_is_near():
    from prolong_data.tokenization.step import identity_sample

    text = "Alpha beta.\nGamma delta.\n" * 10_000
    sample = identity_sample(text, 1000)
    assert text.startswith(sample) and 500 <= len(sample) <= 1000 and sample.endswith("\n")
    assert identity_sample("short", 1000) == "short"
    assert identity_sample("x" * 5000, 1000) == "x" * 1000


def test_exactness_holds_on_the_sample_the_check_sees(llama3_tok):
    """The identity check compares an engine with the reference on the same bounded sample:
    whatever the cut, both encode the same string, so a disagreement is always caught."""
    from prolong_data.tokenization.engines import build_engine, engine_matches_reference
    from prolong_data.tokenization.step import identity_sample

    text = ("Chapter one. It was a dark night, said Anne; " * 3000).replace(";", ";\n", 7)
    engine = build_engine("tiktoken", llama3_tok)
    assert engine_matches_reference(engine, llama3_tok, [identity_sample(text, 2000)])
    np.testing.assert_array_equal(engine.encode_batch([text])[0], llama3_tok.encode_reference(text))
