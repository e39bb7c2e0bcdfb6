"""Readers: what each source kind turns into documents, and how bad input is counted."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest
import zstandard

from prolong_data.sources import (
    BookFolderReader,
    ConcatRepos,
    HashPartitionWriter,
    PartitionReader,
    RepoFolderReader,
    SourcePathError,
    StackRowsReader,
    TextRowsReader,
    clean_book_text,
    merge_bad_input,
)

BOOK = (
    "\ufeffThe Project Gutenberg eBook of Tiny\r\n\r\nlicence blah\r\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK TINY ***\r\n"
    "Chapter 1\r\nIt was a dark night.\r\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK TINY ***\r\nmore licence\r\n"
)


def docs_of(reader, rank=0, world_size=1):
    return list(reader.run(None, rank, world_size))


def test_book_files_strip_gutenberg_bom_crlf(tmp_path):
    (tmp_path / "b.txt").write_bytes(BOOK.encode("utf-8"))
    (tmp_path / "plain.txt").write_text("no markers\nat all\n")
    docs = docs_of(BookFolderReader(str(tmp_path)))
    assert [d.id for d in docs] == ["b", "plain"]
    assert docs[0].text == "Chapter 1\nIt was a dark night.\n"
    assert docs[0].metadata["source"] == "b.txt"
    assert docs[1].text == "no markers\nat all\n"


def test_clean_book_text_older_footer():
    text = (
        "*** START OF THIS PROJECT GUTENBERG EBOOK X ***\nbody\nEnd of Project Gutenberg’s X, by Y\nfooter\n"
    )
    assert clean_book_text(text) == "body\n"


def test_book_files_bad_input(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "latin.txt").write_bytes("caf\xe9 au lait".encode("latin-1"))
    reader = BookFolderReader(str(tmp_path), bad_input_file=str(tmp_path / "bad.{rank:05d}.json"))
    docs = docs_of(reader)
    assert [d.text for d in docs] == ["caf\ufffd au lait\n"]
    assert reader.bad.counts == {"empty_file": 1, "invalid_utf8_repaired": 1}
    assert json.loads((tmp_path / "bad.00000.json").read_text())["counts"]["empty_file"] == 1
    dropping = BookFolderReader(str(tmp_path), utf8="drop")
    assert docs_of(dropping) == [] and dropping.bad.counts["invalid_utf8_dropped"] == 1


def write_rows(path: Path, rows: list) -> None:
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows]
    data = b"\n".join(lines) + b"\n"
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    elif path.name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)


def test_rows_bad_input_counted_with_file_and_line(tmp_path):
    write_rows(
        tmp_path / "a.jsonl",
        [
            {"id": "ok1", "text": "first"},
            b'{"id": "broken", "text": ',  # malformed JSON
            b'{"id": "bytes", "text": "caf\xe9"}',  # invalid UTF-8
            {"id": "nofield", "body": "x"},  # missing field
            [1, 2],  # not an object
            {"id": "ok2", "text": "second"},
        ],
    )
    (tmp_path / "b.jsonl").write_bytes(b"")
    (tmp_path / "c.parquet").write_bytes(b"this is not parquet")
    reader = TextRowsReader(str(tmp_path))
    docs = docs_of(reader)
    assert [d.id for d in docs] == ["ok1", "bytes", "ok2"]
    assert docs[1].text == "caf\ufffd"
    assert reader.bad.counts == {
        "malformed_json": 1,
        "invalid_utf8_repaired": 1,
        "missing_field": 1,
        "not_an_object": 1,
        "empty_file": 1,
        "not_parquet": 1,
    }
    where = {r: (e[0]["file"].rsplit("/", 1)[-1], e[0]["line"]) for r, e in reader.bad.examples.items()}
    assert where["malformed_json"] == ("a.jsonl", 2)
    assert where["missing_field"] == ("a.jsonl", 4)
    assert where["not_parquet"] == ("c.parquet", None)
    assert docs[0].metadata["source"] == "a.jsonl:1"


def test_rows_compressed_parquet_keep_where_and_tulu(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_rows(tmp_path / "x.jsonl.gz", [{"text": "gz", "meta": {"redpajama_set_name": "RedPajamaBook"}}])
    write_rows(tmp_path / "y.jsonl.zst", [{"text": "zst", "meta": {"redpajama_set_name": "RedPajamaC4"}}])
    pq.write_table(
        pa.table({"text": ["pq"], "meta": [{"redpajama_set_name": "RedPajamaBook"}]}), tmp_path / "z.parquet"
    )
    kept = docs_of(TextRowsReader(str(tmp_path), keep_where={"meta.redpajama_set_name": "RedPajamaBook"}))
    assert [d.text for d in kept] == ["gz", "pq"]
    chats = tmp_path / "chat"
    chats.mkdir()
    write_rows(
        chats / "c.jsonl",
        [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}],
    )
    (doc,) = docs_of(TextRowsReader(str(chats), render="tulu"))
    assert doc.text == "<|user|>\nhi\n<|assistant|>\nyo\n"


def test_missing_source_path_fails_at_once(tmp_path):
    with pytest.raises(SourcePathError, match="does not exist"):
        TextRowsReader(str(tmp_path / "nope")).check()
    with pytest.raises(SourcePathError, match="holds no input files"):
        TextRowsReader(str(tmp_path)).check()


def test_rank_sharding_covers_every_file_once(tmp_path):
    for i in range(5):
        write_rows(tmp_path / f"{i}.jsonl", [{"id": f"d{i}", "text": f"t{i}"}])
    ids = [d.id for r in range(3) for d in docs_of(TextRowsReader(str(tmp_path)), r, 3)]
    assert sorted(ids) == [f"d{i}" for i in range(5)]


def make_repo(root: Path, name: str, files: dict) -> Path:
    for rel, content in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root / name


def test_repo_folders_skip_binary_vendored_generated_oversized(tmp_path):
    repo = make_repo(
        tmp_path,
        "pkg",
        {
            "b.py": "print('b')\n",
            "a/z.py": "z = 1",
            "a/y.py": "y = 2\n",
            "logo.png": b"\x89PNG\0\0",
            "data.bin2": b"abc\0def",
            "vendor/lib.py": "vendored = True\n",
            "gen.py": "# Code generated by protoc. DO NOT EDIT.\nx = 1\n",
            "big.py": "x" * 5000,
            "__pycache__/b.cpython-311.pyc": b"\0\0",
        },
    )
    os.symlink(tmp_path / "missing-target", repo / "broken.py")  # out of the repository: never read
    os.symlink(repo / "missing-target", repo / "broken2.py")  # inside, but dangling
    make_repo(tmp_path, "single", {"only.py": "one file\n"})
    (tmp_path / "loose.py").write_text("not a repo\n")
    reader = RepoFolderReader([str(tmp_path)], max_file_bytes=1000)
    docs = docs_of(reader)
    assert [d.id for d in docs] == ["pkg"]  # `single` has one file: not a multi-file repository
    assert (
        docs[0].text
        == "# File: pkg/a/y.py\ny = 2\n\n# File: pkg/a/z.py\nz = 1\n\n# File: pkg/b.py\nprint('b')\n\n"
    )
    assert docs[0].metadata["files"] == 3
    assert reader.bad.counts == {"outside_root": 1, "unreadable_file": 1}
    stats = {k: v.total for k, v in reader.stats.stats.items()}
    assert stats["skipped_binary_files"] == 2  # logo.png by its suffix, data.bin2 by a NUL byte
    assert stats["skipped_generated_files"] == 2  # gen.py by its marker, the .pyc under __pycache__
    assert stats["skipped_vendored_files"] == 1
    assert stats["skipped_oversized_files"] == 1 and stats["repos_too_few_files"] == 1


SKIPPED_BY_BOTH = {
    "src/main.py": "import util\n",
    "src/util.py": "x = 1\n",
    "node_modules/left-pad/index.js": "module.exports = 1;\n",
    "third_party/lib/a.c": "int a;\n",
    ".github/workflows/ci.yml": "on: push\n",
    "build/lib/src/main.py": "import util\n",
    "api_pb2.py": "x = 2\n",
    "web/app.min.js": "var a=1;\n",
    "web/app.js.map": "{}\n",
    "poetry.lock": "[[package]]\n",
    "package-lock.json": "{}\n",
    "gen/schema.py": "# Generated by the schema tool. DO NOT EDIT.\nx = 3\n",
    "img/logo.png": "not really a png\n",
}


def test_stack_rows_skip_the_files_folders_skip_under_the_same_reasons(tmp_path):
    """One repository as a folder and as The Stack rows: the same document, the same counts."""
    make_repo(tmp_path / "folders", "proj", SKIPPED_BY_BOTH)
    folders = RepoFolderReader([str(tmp_path / "folders")], file_order="dependency")
    (from_folder,) = docs_of(folders)
    rows = [
        {"content": text, "max_stars_repo_name": "proj", "max_stars_repo_path": path, "lang": ""}
        for path, text in SKIPPED_BY_BOTH.items()
    ]
    (tmp_path / "rows").mkdir()
    write_rows(tmp_path / "rows" / "r.jsonl", rows)
    reader = StackRowsReader(str(tmp_path / "rows"))
    joined = ConcatRepos(file_order="dependency")
    (from_rows,) = list(joined.run(reader.run(None, 0, 1), 0, 1))
    assert from_rows.text == from_folder.text
    assert from_folder.text.startswith("# File: proj/src/util.py\nx = 1\n\n# File: proj/src/main.py\n")
    counts = {
        step: {k: v.total for k, v in s.stats.stats.items() if k.startswith("skipped_")}
        for step, s in (("folders", folders), ("rows", reader))
    }
    expected = {
        "skipped_vendored_files": 2,
        "skipped_tooling_files": 1,
        "skipped_generated_files": 3,
        "skipped_minified_files": 2,
        "skipped_lock_files": 2,
        "skipped_binary_files": 1,
    }
    assert counts["folders"] == expected and counts["rows"] == expected
    assert {k: v.total for k, v in joined.stats.stats.items()}["import_edges"] == 1


def test_repo_folders_include_order(tmp_path):
    for name in ("one", "two", "three"):
        make_repo(tmp_path, name, {"a.py": "a\n", "b.py": "b\n"})
    docs = docs_of(RepoFolderReader([str(tmp_path)], include=["two", "one", "absent"]))
    assert [d.id for d in docs] == ["two", "one"]


def test_stack_rows_grouped_by_repo_over_many_files_and_tasks(tmp_path):
    rows = [
        {
            "content": f"{repo} {path}\n",
            "max_stars_repo_name": repo,
            "max_stars_repo_path": path,
            "lang": "Python",
        }
        for repo in ("org/a", "org/b", "org/c", "org/d")
        for path in ("z.py", "m/x.py", "a.py")
    ]
    src = tmp_path / "rows"
    src.mkdir()
    for i in range(4):  # every repository's files spread over several input files
        write_rows(src / f"{i}.jsonl", rows[i::4] + ([{"content": "x"}] if i == 0 else []))
    parts = tmp_path / "parts"
    read_tasks, partitions = 3, 2
    bad = 0
    for rank in range(read_tasks):
        reader = StackRowsReader(str(src))
        HashPartitionWriter(str(parts), partitions, key="repo").run(
            reader.run(None, rank, read_tasks), rank, read_tasks
        )
        bad += reader.bad.counts["missing_field"]
    assert bad == 1
    out = []
    for p in range(partitions):
        out += list(ConcatRepos().run(PartitionReader(str(parts)).run(None, p, partitions), p, partitions))
    assert sorted(d.id for d in out) == ["org/a", "org/b", "org/c", "org/d"]
    for doc in out:
        headers = [line for line in doc.text.splitlines() if line.startswith("# File: ")]
        assert headers == [f"# File: {doc.id}/{p}" for p in ("a.py", "m/x.py", "z.py")]
        assert doc.metadata["languages"] == ["Python"]  # The Stack's `lang`, carried through the join


def test_partition_rerun_truncates(tmp_path):
    from datatrove.data import Document

    docs = [Document(text=f"t{i}", id=str(i)) for i in range(20)]
    HashPartitionWriter(str(tmp_path), 3).run(iter(docs), 0, 1)
    HashPartitionWriter(str(tmp_path), 3).run(iter(docs[:5]), 0, 1)  # a rerun with less data
    back = [d.id for p in range(3) for d in PartitionReader(str(tmp_path)).run(None, p, 3)]
    assert sorted(back) == sorted(str(i) for i in range(5))


def test_merge_bad_input(tmp_path):
    for i in range(2):
        (tmp_path / f"{i}.json").write_text(
            json.dumps(
                {"counts": {"malformed_json": 2}, "examples": {"malformed_json": [{"file": "f", "line": i}]}}
            )
        )
    merged = merge_bad_input(sorted(tmp_path.glob("*.json")))
    assert merged["counts"] == {"malformed_json": 4}
    assert [e["line"] for e in merged["examples"]["malformed_json"]] == [0, 1]
