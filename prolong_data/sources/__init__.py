"""Source kinds: readers that turn raw input into datatrove `Document`s, and their configs.

Each kind is one module holding its reader and a config class registered under the kind's
name (`registry.register_source`); a recipe's source names its `kind` and that kind's fields.

| kind | config | reader |
|---|---|---|
| `code_folders`: code repositories in folders | `CodeFoldersSource` | `RepoFolderReader` |
| `code_rows`: code files as The Stack rows | `CodeRowsSource` | `StackRowsReader` + partition by repo + `ConcatRepos` |
| `book_files`: books as `.txt` files | `BookFilesSource` | `BookFolderReader` |
| `rows`: rows of text (jsonl / parquet) | `RowsSource` | `TextRowsReader` |
| `chat`: SFT conversations (jsonl / parquet) | `ChatSource` | `ChatRowsReader` |
| `hub`: a Hugging Face dataset by name | `HubSource` | `hub_reader` |
| `tokenized`: MDS shards of token ids (ours or ProLong's) | `TokenizedSource` | `TokenizedShardsReader` |
"""

from prolong_data.sources.bad_input import BadInputLog, merge_bad_input
from prolong_data.sources.base import SourceReader
from prolong_data.sources.books import BookFolderReader, clean_book_text, strip_gutenberg
from prolong_data.sources.code import ConcatRepos, RepoFolderReader, StackRowsReader, repo_document
from prolong_data.sources.files import SourcePathError
from prolong_data.sources.hub import hub_reader
from prolong_data.sources.partitions import HashPartitionWriter, PartitionReader
from prolong_data.sources.registry import (
    ReaderContext,
    SourceConfig,
    register_source,
    source_class,
    source_kinds,
)
from prolong_data.sources.text_rows import TextRowsReader
from prolong_data.sources.tokenized import TokenizedShardsReader

__all__ = [
    "BadInputLog",
    "BookFolderReader",
    "ConcatRepos",
    "HashPartitionWriter",
    "PartitionReader",
    "ReaderContext",
    "RepoFolderReader",
    "SourceConfig",
    "SourcePathError",
    "SourceReader",
    "StackRowsReader",
    "TextRowsReader",
    "TokenizedShardsReader",
    "clean_book_text",
    "hub_reader",
    "merge_bad_input",
    "register_source",
    "repo_document",
    "source_class",
    "source_kinds",
    "strip_gutenberg",
]
