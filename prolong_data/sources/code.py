"""Code repositories as documents, one per repository (ProLong's `thestackv1_concat_by_repo`).

A repository document is its files in sorted path order, or with `file_order="dependency"` each
file after the files it imports (`code_order`), each after a one-line path header (`REPO_HEADER`),
so a model sees which file it is in. Two inputs give the same documents:

* `RepoFolderReader`: folders whose sub-folders are repositories (a checkout of many repos,
  or the Python standard library and site-packages, each top-level package a repository).
  Binary, vendored, generated, lock, minified and oversized files are skipped and counted
  (`code_files`).
* The Stack-style rows (`content`, `max_stars_repo_name`, `max_stars_repo_path`, `lang`),
  where one repository's files are spread over many input files: `StackRowsReader` yields one
  document per file (skipping files by the same rules), a hash partition by repository
  (`sources.partitions`, key `repo`) brings each repository's files to one task, and
  `ConcatRepos` joins them there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from prolong_data.sources.base import SourceReader, document
from prolong_data.sources.code_files import (
    SNIFF_BYTES,
    content_skip_reason,
    folder_skip_reason,
    name_skip_reason,
    path_skip_reason,
)
from prolong_data.sources.code_order import FILE_ORDERS, OrderCounts, order_files
from prolong_data.sources.files import (
    OversizedFileError,
    SourcePathError,
    SpecialFileError,
    inside,
    read_regular_file,
)
from prolong_data.sources.registry import FileSourceConfig, ReaderContext, register_source
from prolong_data.sources.text_rows import TextRowsReader
from prolong_data.text import normalize_newlines

REPO_HEADER = "# File: {path}\n"
"""Put before each file of a repository document; `{path}` is `repo/relative/path`."""


def repo_document(repo: str, files: Sequence[tuple[str, str]], header: str = REPO_HEADER) -> str:
    """The text of a repository: each (relative path, content), in the given order, after its header."""
    parts = []
    for rel, content in files:
        parts.append(header.format(path=f"{repo}/{rel}"))
        parts.append(content if content.endswith("\n") else content + "\n")
        parts.append("\n")
    return "".join(parts)


class RepoOrdering:
    """Mixin of the steps that assemble repository documents: orders their files by
    `file_order` and counts what a dependency order found (`code_order.ORDER_STATS`)."""

    file_order: str = "path"
    order_counts: OrderCounts | None = None
    """The dependency counts gathered since the last report (None: nothing ordered by dependency)."""

    def ordered(self, repo: str, files, languages=None, left_out=()) -> list[tuple[str, str]]:
        """`files` in this step's file order, the dependency counts gathered."""
        files, counts = order_files(repo, files, self.file_order, languages, left_out)
        if counts is not None:
            self.order_counts = (self.order_counts or OrderCounts()) + counts
        return files

    def report_order_counts(self) -> None:
        """Add the counts gathered since the last report to the step's statistics."""
        if self.order_counts is not None:
            for key, value in self.order_counts.stats().items():
                self.stat_update(key, value=value)
            self.order_counts = None


def check_file_order(file_order: str) -> str:
    """`file_order` if it is one of `FILE_ORDERS`, else `ValueError` naming them."""
    if file_order not in FILE_ORDERS:
        raise ValueError(f"file_order must be one of {FILE_ORDERS}, got {file_order!r}")
    return file_order


class RepoFolderReader(RepoOrdering, SourceReader):
    """Sub-folders of `paths` as repositories, one document each.

    `include` names the repositories to take (missing ones are logged and counted); without it,
    every sub-folder is one. Repositories with fewer than `min_files` kept files are dropped
    and counted, so every document is a real multi-file repository. `file_order` is `path` or
    `dependency` (imported files first, `code_order`).
    """

    name = "code repositories (folders)"
    default_max_file_bytes = 1_000_000  # larger files are data or generated, skipped (counted)

    def __init__(
        self,
        paths: str | Sequence[str],
        *,
        include: Sequence[str] | None = None,
        min_files: int = 2,
        header: str = REPO_HEADER,
        file_order: str = "path",
        **kwargs,
    ):
        super().__init__(paths, **kwargs)
        self.include = list(include) if include else None
        self.min_files, self.header = min_files, header
        self.file_order = check_file_order(file_order)

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        try:
            yield from super().run(data, rank, world_size)
        finally:
            self.report_order_counts()

    def list_units(self) -> list[str]:
        repos: dict[str, str] = {}
        for root in self.paths:
            if not Path(root).is_dir():
                raise SourcePathError(f"repository folder {root} does not exist: fix the recipe or --corpus")
            for child in sorted(Path(root).iterdir()):
                if child.is_dir() and _is_repo_name(child.name) and child.name not in repos:
                    repos[child.name] = str(child)
        if self.include is None:
            return [repos[name] for name in sorted(repos)]
        missing = [name for name in self.include if name not in repos]
        if missing:
            logger.warning(f"{self.name}: repositories not found under {self.paths}: {missing}")
        return [repos[name] for name in self.include if name in repos]

    def unit_problem(self, unit: str) -> tuple[str, str] | None:
        """A repository folder must lie inside the folder that holds it (no symlink out)."""
        if not inside(unit, Path(unit).parent):
            return "outside_root", f"links to {os.path.realpath(unit)}, outside {Path(unit).parent}"
        return None

    def read_unit(self, unit: str) -> Iterator[Document]:
        root = Path(unit)
        files, left_out = [], []
        for rel in self.repo_files(root):
            content = self.read_file(root, rel)
            if content is not None:
                files.append((rel, content))
            elif rel.endswith("__init__.py"):
                left_out.append(rel)  # an empty one still makes its folder a package
        if len(files) < max(self.min_files, 1):
            self.stat_update("repos_too_few_files")
            return
        self.stat_update("repo_files", value=len(files))
        files = self.ordered(root.name, files, left_out=left_out)
        yield document(repo_document(root.name, files, self.header), root.name, root.name, files=len(files))

    def repo_files(self, root: Path) -> list[str]:
        """Relative paths (posix) of the candidate files of a repository, sorted. Files skipped
        by their path (`code_files`) are counted as `skipped_<reason>_files`: a skipped folder is
        walked only to count its files."""
        found = []
        for folder, dirs, names in os.walk(root):  # symlinked folders are listed, never entered
            for d in dirs:
                if os.path.islink(os.path.join(folder, d)) and not inside(os.path.join(folder, d), root):
                    self.bad.add(
                        "outside_root", os.path.join(folder, d), None, "a folder link out of the repository"
                    )
            kept = []
            for d in sorted(dirs):
                reason = folder_skip_reason(d)
                if reason is None:
                    kept.append(d)
                else:
                    self.count_skipped(reason, _count_files(os.path.join(folder, d)))
            dirs[:] = kept
            for name in sorted(names):
                reason = name_skip_reason(name)
                if reason is None:
                    found.append(Path(folder, name).relative_to(root).as_posix())
                else:
                    self.count_skipped(reason)
        return sorted(found)

    def count_skipped(self, reason: str, files: int = 1) -> None:
        """Count `files` files skipped for `reason` (`skipped_<reason>_files`)."""
        if files:
            self.stat_update(f"skipped_{reason}_files", value=files)

    def read_file(self, root: Path, rel: str) -> str | None:
        """The text of one repository file, or None (counted) when it is not source text."""
        path = root / rel
        if not inside(path, root):
            self.bad.add("outside_root", str(path), None, f"links to {os.path.realpath(path)}")
            return None
        try:
            raw = read_regular_file(path, self.max_file_bytes)
        except OversizedFileError:
            self.stat_update("skipped_oversized_files")
            return None
        except SpecialFileError as err:
            self.bad.add("special_file", str(path), None, str(err))
            return None
        except OSError as err:
            self.bad.add("unreadable_file", str(path), None, str(err))
            return None
        if not raw.strip():
            self.count_skipped("empty")
            return None
        if b"\0" in raw[:SNIFF_BYTES]:
            self.count_skipped("binary")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.count_skipped("binary")
            return None
        reason = content_skip_reason(text)
        if reason is not None:
            self.count_skipped(reason)
            return None
        return normalize_newlines(text)


def _count_files(folder: str) -> int:
    """How many files lie under `folder` (links not followed)."""
    return sum(len(names) for _, _, names in os.walk(folder))


def _is_repo_name(name: str) -> bool:
    return not name.startswith((".", "_")) and not name.endswith((".dist-info", ".egg-info", ".data"))


class StackRowsReader(TextRowsReader):
    """The Stack-style rows, one `Document` per file, with `repo`, `path` and `lang` metadata.

    A row whose path or content the repository rules skip (`code_files`: vendored, tooling,
    generated, lock, minified, binary) is counted as `skipped_<reason>_files`, as in folders."""

    name = "code files (The Stack rows)"

    def __init__(
        self,
        paths: str | Sequence[str],
        *,
        content_key: str = "content",
        repo_key: str = "max_stars_repo_name",
        path_key: str = "max_stars_repo_path",
        lang_key: str = "lang",
        **kwargs,
    ):
        super().__init__(paths, text_key=content_key, **kwargs)
        self.repo_key, self.path_key, self.lang_key = repo_key, path_key, lang_key

    def row_document(self, row: dict, unit: str, line: int):
        repo, path = row.get(self.repo_key), row.get(self.path_key)
        if not isinstance(repo, str) or not isinstance(path, str) or not repo or not path:
            self.bad.add("missing_field", unit, line, f"needs {self.repo_key!r} and {self.path_key!r}")
            return None
        reason = path_skip_reason(path.strip("/"))
        if reason is not None:
            self.stat_update(f"skipped_{reason}_files")
            return None
        text = self.row_text(row, unit, line)
        if text is None:
            return None
        reason = content_skip_reason(text)
        if reason is not None:
            self.stat_update(f"skipped_{reason}_files")
            return None
        return Document(
            text=text,
            id=f"{repo}/{path}",
            metadata={"source": repo, "repo": repo, "path": path, "lang": str(row.get(self.lang_key) or "")},
        )


class ConcatRepos(RepoOrdering, PipelineStep):
    """File documents of whole repositories in, one document per repository out.

    Runs after a partition by repository, so this task holds every file of its repositories;
    they are gathered in memory (one partition at a time: choose enough tasks), put in
    `file_order` (a path seen twice is kept once, its first content), and emitted in
    repository-name order. The files' languages (The Stack's `lang`) go into the document's
    `languages` metadata and help find the import parser of a file whose extension names none.
    """

    name = "concatenate repositories"
    type = "🔗 - GROUP"

    def __init__(self, min_files: int = 2, header: str = REPO_HEADER, file_order: str = "path"):
        super().__init__()
        self.min_files, self.header = min_files, header
        self.file_order = check_file_order(file_order)

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        repos: dict[str, dict[str, tuple[str, str]]] = {}
        for doc in data:
            files = repos.setdefault(doc.metadata["repo"], {})
            if doc.metadata["path"] in files:
                self.stat_update("duplicate_paths")
                continue
            files[doc.metadata["path"]] = (doc.text, str(doc.metadata.get("lang") or ""))
        try:
            for repo in sorted(repos):
                found = repos.pop(repo)
                if len(found) < max(self.min_files, 1):
                    self.stat_update("repos_too_few_files")
                    continue
                self.stat_update("repos")
                self.stat_update("repo_files", value=len(found))
                languages = {path: lang for path, (_, lang) in found.items() if lang}
                files = self.ordered(repo, [(path, text) for path, (text, _) in found.items()], languages)
                yield document(
                    repo_document(repo, files, self.header),
                    repo,
                    repo,
                    files=len(files),
                    languages=sorted(set(languages.values())),
                )
        finally:
            self.report_order_counts()


@register_source
@dataclass(kw_only=True)
class CodeFoldersSource(FileSourceConfig):
    """`code_folders`: folders whose sub-folders are repositories, one document per repository."""

    kind: str = "code_folders"
    include: list[str] = field(default_factory=list)
    """The repositories (sub-folder names) to take, in this order; empty = all."""
    min_files: int = 2
    """Repositories with fewer kept files are dropped (counted)."""
    file_order: Literal["path", "dependency"] = "path"
    """`path`: a repository's files in sorted path order. `dependency`: each file after the files
    of the repository it imports, import cycles kept together in path order (`code_order`)."""

    def reader(self, context: ReaderContext) -> RepoFolderReader:
        return RepoFolderReader(
            self.paths,
            glob=self.glob,
            include=self.include or None,
            max_file_bytes=self.max_file_bytes,
            min_files=self.min_files,
            file_order=self.file_order,
            **context.reader_options(),
        )


@register_source
@dataclass(kw_only=True)
class CodeRowsSource(FileSourceConfig):
    """`code_rows`: The Stack-style rows (one file each), joined into one document per repository
    after a partition by repository."""

    kind: str = "code_rows"
    min_files: int = 2
    """Repositories with fewer files are dropped (counted)."""
    file_order: Literal["path", "dependency"] = "path"
    """As `code_folders`' `file_order`; a domain's `code_rows` sources must agree on it."""

    group_key: ClassVar[str | None] = "repo"

    def reader(self, context: ReaderContext) -> StackRowsReader:
        return StackRowsReader(
            self.paths, glob=self.glob, max_file_bytes=self.max_file_bytes, **context.reader_options()
        )

    @classmethod
    def grouping_steps(cls, sources) -> list[PipelineStep]:
        orders = {s.file_order for s in sources}
        if len(orders) > 1:
            raise ValueError(
                f"the code_rows sources of one domain must share one file_order, got {sorted(orders)}"
            )
        return [ConcatRepos(min_files=min(s.min_files for s in sources), file_order=orders.pop())]
