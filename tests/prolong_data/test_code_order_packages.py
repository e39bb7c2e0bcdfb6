"""Dependency order on the real packages the demo recipe reads (standard library and
site-packages): the documents are parsed again here, with an import finder written for the test
(not the ordering code's), and every module-level import between files that are not in one
import cycle must point backward in the document."""

from __future__ import annotations

import ast
import re
from pathlib import PurePosixPath

import pytest

from pipelines.recipe import load_recipe
from prolong_data.sources.code import RepoFolderReader

DOMAIN = "thestackv1_concat_by_repo-65536"


def demo_code_source():
    recipe = load_recipe("demo").resolved(None)
    (source,) = next(d for d in recipe.domains if d.name == DOMAIN).sources
    return source


def read_repos(world_size: int = 1) -> dict[str, object]:
    source = demo_code_source()
    docs = {}
    for rank in range(world_size):
        reader = RepoFolderReader(source.paths, include=source.include, file_order="dependency")
        docs.update({d.id: d for d in reader.run(None, rank, world_size)})
    return docs


@pytest.fixture(scope="module")
def repos():
    docs = read_repos()
    assert len(docs) >= 4, f"the demo's packages are missing here: {sorted(docs)}"
    return docs


def split_document(repo: str, text: str) -> list[tuple[str, str]]:
    """(path, content) of each file of a repository document, in document order."""
    parts = re.split(rf"^# File: {re.escape(repo)}/(.+)\n", text, flags=re.M)
    assert parts[0] == ""
    return [(parts[i], parts[i + 1]) for i in range(1, len(parts), 2)]


class ModuleLevelImports(ast.NodeVisitor):
    """(level, module, names) of every import that runs when the module is imported."""

    def __init__(self):
        self.found = []

    def visit_FunctionDef(self, node):  # a function's body runs when it is called
        return None

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_Import(self, node):
        self.found += [(0, alias.name, []) for alias in node.names]

    def visit_ImportFrom(self, node):
        self.found.append((node.level, node.module or "", [alias.name for alias in node.names]))


def module_name(repo: str, path: str) -> str:
    parts = [repo, *PurePosixPath(path).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_edges(repo: str, files: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """(importer, imported) paths of the repository, found by this test's own reading."""
    modules = {module_name(repo, path): path for path, _ in files if path.endswith(".py")}
    edges = set()
    for path, text in files:
        if not path.endswith(".py"):
            continue
        finder = ModuleLevelImports()
        finder.visit(ast.parse(text))
        me = module_name(repo, path)
        package = me if path.endswith("__init__.py") else me.rpartition(".")[0]
        for level, module, names in finder.found:
            if level:
                base = package.rsplit(".", level - 1)[0] if level > 1 else package
                module = f"{base}.{module}" if module else base
            targets = [modules.get(f"{module}.{n}") for n in names if n != "*"]
            if not names or None in targets or "*" in names:
                targets.append(modules.get(module))
            edges |= {(path, t) for t in targets if t is not None and t != path}
    return edges


def mutually_reachable(edges: set[tuple[str, str]]) -> set[frozenset]:
    """Pairs of files that import each other, directly or round a loop."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    reach = {}
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[start] = seen
    return {frozenset((a, b)) for a in reach for b in reach[a] if a in reach.get(b, ())}


def test_every_import_outside_a_cycle_points_backward(repos):
    total = satisfied = 0
    for repo, doc in repos.items():
        files = split_document(repo, doc.text)
        assert len(files) == doc.metadata["files"]
        place = {path: i for i, (path, _) in enumerate(files)}
        edges = import_edges(repo, files)
        cycles = mutually_reachable(edges)
        forward = [(a, b) for a, b in edges if place[b] > place[a] and frozenset((a, b)) not in cycles]
        assert not forward, f"{repo}: imported after their importer: {sorted(forward)[:5]}"
        total += len(edges)
        satisfied += sum(place[b] < place[a] for a, b in edges)
    # the imports are many, and most of them are satisfied even counting the ones in cycles
    assert total > 500 and satisfied / total > 0.8


def test_the_readers_counts_match_this_tests_reading(repos):
    """The reader counts the same edges as this test finds (asserted per repository)."""
    source = demo_code_source()
    for repo, doc in repos.items():
        reader = RepoFolderReader(source.paths, include=[repo], file_order="dependency")
        (again,) = reader.run(None, 0, 1)
        assert again.text == doc.text  # the same document on every run
        stats = {k: v.total for k, v in reader.stats.stats.items()}
        edges = import_edges(repo, split_document(repo, doc.text))
        assert stats["import_edges"] == len(edges), repo


def test_order_is_the_same_for_any_task_count(repos):
    two = read_repos(world_size=2)
    assert {k: d.text for k, d in two.items()} == {k: d.text for k, d in repos.items()}
