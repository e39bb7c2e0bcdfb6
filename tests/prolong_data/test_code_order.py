"""Repository files in dependency order: import extraction per language, the component order,
and the counts, on small repositories written for the test."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from prolong_data.sources.code_imports import language_of, repository_imports
from prolong_data.sources.code_order import OrderCounts, dependency_order, order_files


def ordered_paths(files: dict[str, str], repo: str = "repo", languages=None) -> list[str]:
    order, _ = order_files(repo, list(files.items()), "dependency", languages)
    return [path for path, _ in order]


def test_python_absolute_relative_and_package_imports():
    files = {
        "a.py": "from pkg.util import helper\nimport pkg.core\n",
        "pkg/__init__.py": "from .core import Thing\n",
        "pkg/core.py": "from . import util\nfrom .util import helper as h\n",
        "pkg/util.py": "import os\nimport json\n",
        "setup.py": "import setuptools\n",
    }
    imports = repository_imports(list(files.items()), "repo")
    assert imports == {
        "a.py": {"pkg/util.py", "pkg/core.py"},
        "pkg/__init__.py": {"pkg/core.py"},
        "pkg/core.py": {"pkg/util.py"},
        "pkg/util.py": set(),  # standard library: no edge
        "setup.py": set(),
    }
    assert ordered_paths(files) == ["pkg/util.py", "pkg/core.py", "a.py", "pkg/__init__.py", "setup.py"]


def test_python_repository_that_is_a_package_imports_itself_by_name():
    """`asyncio/` is the repository and the package: `import asyncio.events` names its own file."""
    files = {
        "__init__.py": "from .base import *\n",
        "base.py": "import asyncio.events\nfrom asyncio import log\n",
        "events.py": "x = 1\n",
        "log.py": "y = 2\n",
    }
    assert repository_imports(list(files.items()), "asyncio")["base.py"] == {"events.py", "log.py"}
    assert ordered_paths(files, "asyncio") == ["events.py", "log.py", "base.py", "__init__.py"]


def test_imports_inside_functions_do_not_count_but_module_level_blocks_do():
    files = {
        "a.py": "def f():\n    import b\n    return b\nlam = lambda: __import__('b')\n",
        "b.py": "try:\n    import c\nexcept ImportError:\n    c = None\nclass K:\n    import d\n",
        "c.py": "",
        "d.py": "",
    }
    imports = repository_imports(list(files.items()), "r")
    assert imports["a.py"] == set() and imports["b.py"] == {"c.py", "d.py"}


def test_cycle_stays_together_in_path_order_after_its_imports():
    files = {
        "a.py": "import z\n",
        "m.py": "import b\n",  # m <-> b: a cycle that imports c
        "b.py": "import m\nimport c\n",
        "c.py": "",
        "z.py": "import m\n",
    }
    order, counts = order_files("r", list(files.items()), "dependency")
    assert [p for p, _ in order] == ["c.py", "b.py", "m.py", "z.py", "a.py"]
    assert counts == OrderCounts(import_edges=5, satisfied_edges=4, files_in_cycles=2)


def test_unparsable_self_importing_and_missing_imports():
    files = {
        "py2.py": 'import helper\nprint "python 2"\nfrom lib import thing\n    import indented\n',
        "helper.py": "import helper\nimport does_not_exist\nfrom . import nothing_here\n",
        "lib.py": "from missing.module import x\n",
        "broken.py": "def (:\n",
    }
    imports = repository_imports(list(files.items()), "r")
    assert imports == {
        "py2.py": {"helper.py", "lib.py"},
        "helper.py": set(),
        "lib.py": set(),
        "broken.py": set(),
    }
    order, counts = order_files("r", list(files.items()), "dependency")
    assert [p for p, _ in order] == ["broken.py", "helper.py", "lib.py", "py2.py"]
    assert counts == OrderCounts(import_edges=2, satisfied_edges=2, files_in_cycles=0)


def test_c_and_cpp_quoted_includes():
    files = {
        "src/main.c": '#include <stdio.h>\n#include "util.h"\n#include "include/api.h"\n',
        "src/util.h": '#include "../include/api.h"\n',
        "include/api.h": "int api(void);\n",
        "src/util.cpp": '  #  include "util.h"\n#include "missing.h"\n',
    }
    assert ordered_paths(files) == ["include/api.h", "src/util.h", "src/main.c", "src/util.cpp"]


def test_javascript_and_typescript_relative_imports():
    files = {
        "index.js": "const b = require('./lib/b');\nimport x from 'react';\n",
        "lib/b.js": "import { a } from './a';\nexport * from \"../util\";\n",
        "lib/a.ts": "import './side-effect.css';\n",
        "util/index.ts": "export const u = 1;\n",
        "z.mjs": "const m = await import('./index.js');\n",
    }
    assert ordered_paths(files) == ["lib/a.ts", "util/index.ts", "lib/b.js", "index.js", "z.mjs"]


def test_go_imports_of_the_module_path():
    files = {
        "go.mod": "module github.com/me/tool\n\ngo 1.21\n",
        "main.go": 'package main\n\nimport (\n\t"fmt"\n\tst "github.com/me/tool/store"\n)\n',
        "store/store.go": 'package store\n\nimport "github.com/me/tool/util"\n',
        "store/store_test.go": "package store\n",
        "util/util.go": "package util\n",
    }
    # the test file imports nothing: placed by path among the files that are ready
    assert ordered_paths(files) == [
        "go.mod",
        "store/store_test.go",
        "util/util.go",
        "store/store.go",
        "main.go",
    ]


def test_java_and_kotlin_imports_of_own_packages():
    files = {
        "src/com/x/App.java": "package com.x;\nimport com.x.model.User;\nimport static com.x.util.Strings.trim;\n",
        "src/com/x/model/User.java": "package com.x.model;\nimport java.util.List;\nimport com.x.util.*;\n",
        "src/com/x/util/Strings.kt": "package com.x.util\n\nfun trim(s: String) = s\n",
    }
    assert ordered_paths(files) == [
        "src/com/x/util/Strings.kt",
        "src/com/x/model/User.java",
        "src/com/x/App.java",
    ]


def test_language_from_extension_else_the_stack_lang():
    assert language_of("a/b.PY") == "python" and language_of("x.hpp") == "c" and language_of("x.tsx") == "js"
    assert language_of("README.md") is None and language_of("script", "Python") == "python"
    files = {"run": "import lib\n", "lib.py": ""}  # an extension-less script: The Stack says Python
    assert ordered_paths(files) == ["lib.py", "run"]
    assert ordered_paths(files, languages={"run": "Python"}) == ["lib.py", "run"]
    files = {"a_run": "import lib\n", "lib.py": ""}
    assert ordered_paths(files) == ["a_run", "lib.py"]  # no parser: path order
    assert ordered_paths(files, languages={"a_run": "Python"}) == ["lib.py", "a_run"]


def test_two_thousand_files_every_edge_backward_and_deterministic():
    rng = random.Random(7)
    files = {}
    for i in range(2000):  # a random DAG (each file imports up to 3 earlier-numbered ones) + a long chain
        deps = {rng.randrange(i) for _ in range(min(i, 3))}
        files[f"pkg/m{i:04d}.py"] = "".join(f"from pkg import m{d:04d}\n" for d in sorted(deps))
    files["pkg/__init__.py"] = ""
    items = list(files.items())
    order, counts = order_files("r", items, "dependency")
    assert counts.files_in_cycles == 0 and counts.satisfied_edges == counts.import_edges > 2000
    rng.shuffle(items)
    assert order_files("r", items, "dependency")[0] == order  # input order does not matter


def test_path_order_is_sorted_and_counts_nothing():
    files = [("b.py", "import a\n"), ("a.py", "")]
    assert order_files("r", files, "path") == (sorted(files), None)


def reachable(n: int, edges: list[set[int]]) -> list[set[int]]:
    """Nodes reachable from each node (a simple reference for the components)."""
    out = []
    for start in range(n):
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        out.append(seen)
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda n: st.tuples(
            st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=30)
        )
    )
)
def test_dependency_order_against_reachability(graph):
    """Files in one cycle are adjacent in path order; every other edge points backward; a file
    with no import relation to an earlier-placed block keeps path order (ties by path)."""
    n, pairs = graph
    names = [f"f{i:02d}" for i in range(n)]
    edges = [set() for _ in range(n)]
    for a, b in pairs:
        if a != b:
            edges[a].add(b)
    order, counts = dependency_order(names, {names[a]: {names[b] for b in edges[a]} for a in range(n)})
    reach = reachable(n, edges)
    place = {int(name[1:]): i for i, name in enumerate(order)}
    same = [[a in reach[b] and b in reach[a] for b in range(n)] for a in range(n)]
    for a in range(n):
        for b in edges[a]:
            assert same[a][b] or place[b] < place[a]
        block = sorted((b for b in range(n) if same[a][b] or a == b), key=place.get)
        assert [place[b] for b in block] == list(range(place[block[0]], place[block[0]] + len(block)))
        assert block == sorted(block)  # a cycle's files in path order
    assert counts.import_edges == sum(map(len, edges))
    assert counts.files_in_cycles == sum(1 for a in range(n) if any(same[a][b] for b in range(n) if b != a))
    assert counts.satisfied_edges == sum(place[b] < place[a] for a in range(n) for b in edges[a])


def test_empty_init_left_out_of_the_document_still_makes_a_package():
    """The reader drops empty files; the `__init__.py` it left out still names the root package."""
    files = [("core.py", "from lib.util import x\nimport __main__\n"), ("util.py", ""), ("__main__.py", "")]
    assert repository_imports(files, "lib")["core.py"] == set()
    imports = repository_imports(files, "lib", left_out=["__init__.py"])
    assert imports["core.py"] == {"util.py"}  # `import __main__` is the running script, not lib's


def test_scripts_and_tests_outside_the_packages_import_them():
    files = {
        "setup.py": "import pkg\n",
        "pkg/__init__.py": "from pkg.core import run\n",
        "pkg/core.py": "",
        "tests/test_core.py": "import pkg.core\nimport helpers\n",
        "tests/helpers.py": "",
        "src/other/__init__.py": "",
        "src/other/mod.py": "from other import thing\n",
    }
    imports = repository_imports(list(files.items()), "org/repo")
    assert imports["setup.py"] == {"pkg/__init__.py"}
    assert imports["tests/test_core.py"] == {"pkg/core.py", "tests/helpers.py"}
    assert imports["src/other/mod.py"] == {"src/other/__init__.py"}


def test_parsing_other_peoples_code_warns_nothing(recwarn):
    repository_imports([("a.py", 'import b\nPATTERN = "\\d+"\n'), ("b.py", "")], "r")
    assert not recwarn.list


def test_relative_imports_make_a_package_when_its_empty_init_was_dropped():
    """The Stack rows of an empty `__init__.py` are dropped before the join: `src/pkg/` still
    counts as a package (its files import relatively), so `src` is where `pkg` is imported from."""
    files = [
        ("src/pkg/core.py", "from .util import x\n"),
        ("src/pkg/util.py", "x = 1\n"),
        ("src/pkg/types.py", "T = int\n"),
        ("src/pkg/cli.py", "import types\nfrom pkg.core import run\n"),
    ]
    imports = repository_imports(files, "org/pkg")
    assert imports["src/pkg/cli.py"] == {"src/pkg/core.py"}  # `import types` is the standard library's
    assert imports["src/pkg/core.py"] == {"src/pkg/util.py"}
