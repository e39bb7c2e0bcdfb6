"""Readers, one per source kind: each turns raw input into datatrove `Document`s.

| kind | reader |
|---|---|
| code repositories in folders | `RepoFolderReader` |
| code files as The Stack rows | `StackRowsReader` + partition by repo + `ConcatRepos` |
| books as `.txt` files | `BookFolderReader` |
| rows of text (jsonl / parquet): textbooks, ShortMix, book dumps, Tulu chats as text | `TextRowsReader` |
| a Hugging Face dataset by name | `hub_reader` |
"""

from prolong_data.sources.bad_input import BadInputLog, merge_bad_input
from prolong_data.sources.base import SourceReader
from prolong_data.sources.books import BookFolderReader, clean_book_text, strip_gutenberg
from prolong_data.sources.code import ConcatRepos, RepoFolderReader, StackRowsReader, repo_document
from prolong_data.sources.files import SourcePathError
from prolong_data.sources.hub import hub_reader
from prolong_data.sources.partitions import HashPartitionWriter, PartitionReader
from prolong_data.sources.text_rows import TextRowsReader

__all__ = [
    "BadInputLog",
    "BookFolderReader",
    "ConcatRepos",
    "HashPartitionWriter",
    "PartitionReader",
    "RepoFolderReader",
    "SourcePathError",
    "SourceReader",
    "StackRowsReader",
    "TextRowsReader",
    "clean_book_text",
    "hub_reader",
    "merge_bad_input",
    "repo_document",
    "strip_gutenberg",
]
