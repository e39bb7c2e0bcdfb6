"""The order of a repository's files in its document: by path, or imported files first.

`dependency_order(paths, imports)` places a file after every file it imports. Files that import
each other (directly or round a longer loop) form a strongly connected component; each component
is placed as one block, its files in path order, and the blocks follow a topological order of the
component graph in which, among the blocks whose imports are all placed, the one holding the
smallest path comes next. The same files and imports always give the same order, and files with
no imports between them keep their path order.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prolong_data.sources.code_imports import repository_imports

FILE_ORDERS = ("path", "dependency")
"""`path`: sorted path order. `dependency`: imported files first (`dependency_order`)."""


@dataclass
class OrderCounts:
    """What ordering one or more repositories found; summed over repositories with `+`."""

    import_edges: int = 0
    """(importer, imported) pairs of distinct files of one repository."""
    satisfied_edges: int = 0
    """Edges whose imported file comes before its importer in the document."""
    files_in_cycles: int = 0
    """Files in an import cycle (a strongly connected component of two or more files)."""

    def __add__(self, other: OrderCounts) -> OrderCounts:
        return OrderCounts(
            self.import_edges + other.import_edges,
            self.satisfied_edges + other.satisfied_edges,
            self.files_in_cycles + other.files_in_cycles,
        )

    def stats(self) -> dict[str, int]:
        """The counts under the step-statistic names the manifest sums (`ORDER_STATS`)."""
        return dict(zip(ORDER_STATS, (self.import_edges, self.satisfied_edges, self.files_in_cycles)))


ORDER_STATS = ("import_edges", "import_edges_satisfied", "files_in_cycles")
"""Step statistics of a code reader or join with `file_order: dependency`."""


def strongly_connected_components(nodes: int, edges: Sequence[Sequence[int]]) -> list[int]:
    """Tarjan's algorithm without recursion (a 2,000-file chain must not overflow the stack):
    the component id of every node 0..nodes-1 under the adjacency lists `edges`."""
    index = [-1] * nodes
    low = [0] * nodes
    component = [-1] * nodes
    on_stack = [False] * nodes
    stack: list[int] = []
    counter = components = 0
    for root in range(nodes):
        if index[root] >= 0:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            recursed = False
            for i in range(child, len(edges[node])):
                nxt = edges[node][i]
                if index[nxt] < 0:
                    work.append((node, i + 1))
                    work.append((nxt, 0))
                    recursed = True
                    break
                if on_stack[nxt]:
                    low[node] = min(low[node], index[nxt])
            if recursed:
                continue
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component[member] = components
                    if member == node:
                        break
                components += 1
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return component


def dependency_order(paths: Sequence[str], imports: Mapping[str, set[str]]) -> tuple[list[str], OrderCounts]:
    """`paths` with every file after the files it imports (cycles kept together in path order),
    and the counts of that order (see the module docstring)."""
    names = sorted(set(paths))
    position = {name: i for i, name in enumerate(names)}
    edges = [
        sorted(position[t] for t in imports.get(name, ()) if t in position and t != name) for name in names
    ]
    component = strongly_connected_components(len(names), edges)
    members: dict[int, list[int]] = {}
    for node in range(len(names)):  # ascending, so each member list is in path order
        members.setdefault(component[node], []).append(node)
    waiting = {c: 0 for c in members}  # imported components not yet placed
    importers: dict[int, set[int]] = {c: set() for c in members}
    for node, targets in enumerate(edges):
        for target in targets:
            if component[target] != component[node] and component[node] not in importers[component[target]]:
                importers[component[target]].add(component[node])
                waiting[component[node]] += 1
    ready = [(members[c][0], c) for c, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, c = heapq.heappop(ready)
        order += members[c]
        for importer in importers[c]:
            waiting[importer] -= 1
            if waiting[importer] == 0:
                heapq.heappush(ready, (members[importer][0], importer))
    placed = {node: i for i, node in enumerate(order)}
    counts = OrderCounts(
        import_edges=sum(len(t) for t in edges),
        satisfied_edges=sum(placed[t] < placed[n] for n, targets in enumerate(edges) for t in targets),
        files_in_cycles=sum(len(m) for m in members.values() if len(m) > 1),
    )
    return [names[i] for i in order], counts


def order_files(
    repo: str,
    files: Sequence[tuple[str, str]],
    file_order: str,
    languages: Mapping[str, str] | None = None,
    left_out: Sequence[str] = (),
) -> tuple[list[tuple[str, str]], OrderCounts | None]:
    """A repository's (path, text) files in `file_order` (one of `FILE_ORDERS`), and the counts
    of a dependency order (None for path order). `languages` maps paths to The Stack's `lang`;
    `left_out` names files of the repository not in `files` (see `repository_imports`)."""
    if file_order not in FILE_ORDERS:
        raise ValueError(f"file_order must be one of {FILE_ORDERS}, got {file_order!r}")
    if file_order == "path":
        return sorted(files), None
    texts = dict(files)
    order, counts = dependency_order(
        list(texts), repository_imports(files, repo, dict(languages or {}), left_out)
    )
    return [(path, texts[path]) for path in order], counts
