"""The output/input overlap check: equal, inside, holding, through links and globs; URLs apart."""

from __future__ import annotations

import pytest

from prolong_data.path_safety import UnsafeOutputError, check_output_apart, local_root


def test_overlaps_in_every_direction_are_refused(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "books").mkdir(parents=True)
    (tmp_path / "link").symlink_to(corpus / "books")
    for out, how in (
        (corpus, "holds"),
        (corpus / "books", "is"),
        (corpus / "books" / "out", "is inside"),
        (tmp_path / "link", "is"),
        (tmp_path / "link" / "deeper", "is inside"),
    ):
        with pytest.raises(UnsafeOutputError, match=f"--out {out} {how} the input"):
            check_output_apart(out, [str(corpus / "books")])


def test_apart_paths_urls_and_siblings_with_a_common_prefix_pass(tmp_path):
    (tmp_path / "books").mkdir()
    check_output_apart(tmp_path / "books-out", [str(tmp_path / "books")])  # a prefix, not a parent
    check_output_apart(tmp_path / "out", [str(tmp_path / "books"), "s3://bucket/books", "hf://org/data"])


def test_a_glob_names_the_folder_before_its_first_pattern(tmp_path):
    assert local_root(str(tmp_path / "books" / "*.txt")) == tmp_path / "books"
    assert local_root("s3://bucket/*.jsonl") is None
    with pytest.raises(UnsafeOutputError, match="is inside"):
        check_output_apart(tmp_path / "books" / "out", [str(tmp_path / "books" / "**" / "*.txt")])
