"""Which files of a repository each file imports: per-language import extraction and resolution.

`repository_imports(files)` gives, for every file, the set of other files of the same repository
it imports. Only imports that resolve to a file of the repository count; standard-library and
third-party imports, and imports of files that are not there, give no edge. The language comes
from the file extension (`language_of`):

* Python: module-level `import a.b`, `from a.b import c`, `from .a import b` (imports inside a
  function or lambda do not count: they are how Python code breaks import cycles). Parsed with
  `ast`; a file that does not parse (Python 2, a syntax error) falls back to a regex over lines
  that start in column 0. Absolute names resolve against the repository root, the folders that
  hold its top-level packages, the importing script's own folder when it is not a package, and,
  when the repository root is itself a package (`asyncio/`), the repository's name.
* C/C++: `#include "x.h"`, against the including file's folder, then the repository root.
* JavaScript/TypeScript: relative `import ... from './x'`, `export ... from './x'`, `import './x'`
  and `require('./x')`, with the usual extensions and `index.*` files.
* Go: imports under a module path declared by a `go.mod` of the repository; an edge to every
  non-test `.go` file of the imported package's folder.
* Java/Kotlin: `import a.b.C` (and `import a.b.*`, `import static a.b.C.m`) of a class declared by
  a file of the repository (`package a.b;` and file `C.java` / `C.kt`, one class per file).
"""

from __future__ import annotations

import ast
import posixpath
import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence

EXTENSION_LANGUAGES = {
    ".py": "python", ".pyi": "python",
    ".c": "c", ".h": "c", ".cc": "c", ".cpp": "c", ".cxx": "c", ".hpp": "c", ".hh": "c", ".hxx": "c",
    ".inl": "c", ".ipp": "c",
    ".js": "js", ".jsx": "js", ".mjs": "js", ".cjs": "js", ".ts": "js", ".tsx": "js", ".mts": "js",
    ".cts": "js",
    ".go": "go",
    ".java": "java", ".kt": "java", ".kts": "java",
}  # fmt: skip
"""File extension -> the import parser that reads it (`c` covers C and C++, `js` JavaScript and
TypeScript, `java` Java and Kotlin)."""
STACK_LANGUAGES = {
    "python": "python", "c": "c", "c++": "c", "cpp": "c", "javascript": "js", "typescript": "js",
    "go": "go", "java": "java", "kotlin": "java",
}  # fmt: skip
"""The Stack's `lang` values -> parser, used when the extension names none."""
JS_EXTENSIONS = (".js", ".ts", ".tsx", ".jsx", ".mjs", ".cjs", ".mts", ".cts", ".d.ts")


def language_of(path: str, lang: str = "") -> str | None:
    """The import parser for a file: by its extension, else by The Stack's `lang`; None if none."""
    ext = posixpath.splitext(path)[1].lower()
    return EXTENSION_LANGUAGES.get(ext) or STACK_LANGUAGES.get(lang.strip().lower())


class RepoIndex:
    """The file paths of one repository, indexed for resolving imports."""

    def __init__(self, paths: Iterable[str], repo: str = "", left_out: Iterable[str] = ()):
        self.paths = set(paths)
        self.packages = {
            posixpath.dirname(p) for p in (*self.paths, *left_out) if posixpath.basename(p) == "__init__.py"
        }
        self.repo = repo.rsplit("/", 1)[-1]
        self.folders: dict[str, list[str]] = defaultdict(list)
        for path in sorted(self.paths):
            self.folders[posixpath.dirname(path)].append(path)
        self.python_roots = self._python_roots()
        self.root_is_named_package = bool(self.repo) and self.is_package("")
        """The repository root is the package named like the repository (`asyncio/`)."""

    def is_package(self, folder: str) -> bool:
        """True when `folder` holds an `__init__.py` (in the document or left out of it, e.g. empty)."""
        return folder in self.packages

    def _python_roots(self) -> list[str]:
        """Folders absolute Python imports resolve from: the root, then each folder holding a
        top-level package (a package whose parent is not one), sorted."""
        roots = {
            posixpath.dirname(folder)
            for folder in self.folders
            if folder and self.is_package(folder) and not self.is_package(posixpath.dirname(folder))
        }
        return ["", *sorted(roots - {""})]

    def python_module(self, folder: str, dotted: str) -> str | None:
        """The file of module `dotted` under `folder` (`a/b.py` or `a/b/__init__.py`), or None."""
        if not dotted:
            candidates: tuple[str, ...] = (posixpath.join(folder, "__init__.py"),)
        else:
            base = posixpath.join(folder, *dotted.split("."))
            candidates = (base + ".py", base + ".pyi", posixpath.join(base, "__init__.py"))
        for candidate in candidates:
            if candidate in self.paths:
                return candidate
        return None


# -- Python -------------------------------------------------------------------------------------

PY_IMPORT_LINE = re.compile(r"^import\s+([\w.]+(?:\s+as\s+\w+)?(?:\s*,\s*[\w.]+(?:\s+as\s+\w+)?)*)", re.M)
PY_FROM_LINE = re.compile(r"^from\s+(\.*)([\w.]*)\s+import\s+\(?\s*([\w\s,*]+)", re.M)


def python_imports(text: str) -> list[tuple[int, str, list[str]]]:
    """Module-level imports of a Python file as (level, module, names): `import a.b` is
    (0, "a.b", []), `from ..a import b, c` is (2, "a", ["b", "c"])."""
    try:
        with warnings.catch_warnings():  # invalid escapes in other people's code: not our news
            warnings.simplefilter("ignore")
            tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return _python_imports_by_regex(text)
    found: list[tuple[int, str, list[str]]] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue  # runs when called, not when the module is imported
            if isinstance(child, ast.Import):
                found += [(0, alias.name, []) for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                found.append((child.level or 0, child.module or "", [a.name for a in child.names]))
            else:
                stack.append(child)
    return found


def _python_imports_by_regex(text: str) -> list[tuple[int, str, list[str]]]:
    """Imports on lines starting in column 0, for a file `ast` cannot parse."""
    found = []
    for match in PY_IMPORT_LINE.finditer(text):
        for part in match.group(1).split(","):
            found.append((0, part.split()[0], []))
    for match in PY_FROM_LINE.finditer(text):
        names = [n.split()[0] for n in match.group(3).split(",") if n.split()]
        found.append((len(match.group(1)), match.group(2), names))
    return found


def resolve_python(path: str, imports: list[tuple[int, str, list[str]]], index: RepoIndex) -> set[str]:
    """The repository files a Python file imports at module level (`imports` from `python_imports`)."""
    folder = posixpath.dirname(path)
    targets: set[str] = set()
    for level, module, names in imports:
        if level:
            base = folder
            for _ in range(level - 1):
                base = posixpath.dirname(base)
            bases = [base]
        elif module.split(".")[0] == "__main__":
            continue  # the running program, never a file by that name
        else:
            bases = _absolute_bases(folder, module, index)
            if module.split(".")[0] == index.repo and index.root_is_named_package:
                module = module.partition(".")[2]  # `import asyncio.events` inside asyncio/
        for base in bases:
            found = _python_target(base, module, names, index)
            if found:
                targets |= found
                break
    targets.discard(path)
    return targets


def _absolute_bases(folder: str, module: str, index: RepoIndex) -> list[str]:
    """Where an absolute import is looked up, first match wins. Inside a repository that is a
    package (`idlelib/`), only names under the package's own name are its files (`import
    __main__` is not `idlelib/__main__.py`)."""
    named = index.root_is_named_package
    if named and module.split(".")[0] == index.repo:
        return [""]
    own = [] if index.is_package(folder) else [folder]  # a script's folder is on its path
    return own + [root for root in index.python_roots if root != folder and not (named and root == "")]


def _python_target(base: str, module: str, names: list[str], index: RepoIndex) -> set[str]:
    """Files of `from module import names` (or `import module`) looked up under `base`: each name
    that is a submodule, else the module itself."""
    found, needs_module = set(), not names
    for name in names:
        sub = index.python_module(base, f"{module}.{name}" if module else name) if name != "*" else None
        if sub is not None:
            found.add(sub)
        else:
            needs_module = True  # a name defined in the module (or `*`): the module itself
    if needs_module:
        target = index.python_module(base, module)
        if target is not None:
            found.add(target)
    return found


# -- C / C++ ------------------------------------------------------------------------------------

C_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+)"', re.M)


def resolve_c(path: str, text: str, index: RepoIndex) -> set[str]:
    """Quoted includes, against the including file's folder, then the repository root."""
    folder = posixpath.dirname(path)
    targets = set()
    for name in C_INCLUDE.findall(text):
        for base in (folder, ""):
            candidate = _normal(posixpath.join(base, name))
            if candidate in index.paths:
                targets.add(candidate)
                break
    return targets - {path}


# -- JavaScript / TypeScript --------------------------------------------------------------------

JS_IMPORT = re.compile(
    r"""(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)(['"])(\.{1,2}/[^'"\n]*)\1""",
)


def resolve_js(path: str, text: str, index: RepoIndex) -> set[str]:
    """Relative `import`/`export ... from`/`require` specifiers that name a repository file."""
    folder = posixpath.dirname(path)
    targets = set()
    for _, spec in JS_IMPORT.findall(text):
        base = _normal(posixpath.join(folder, spec))
        candidates = [base] + [base + ext for ext in JS_EXTENSIONS]
        candidates += [posixpath.join(base, "index" + ext) for ext in JS_EXTENSIONS]
        found = next((c for c in candidates if c in index.paths), None)
        if found is not None:
            targets.add(found)
    return targets - {path}


# -- Go -----------------------------------------------------------------------------------------

GO_MODULE = re.compile(r"^module\s+(\S+)", re.M)
GO_IMPORT_BLOCK = re.compile(r"^import\s*\(([^)]*)\)", re.M)
GO_IMPORT_ONE = re.compile(r'^import\s+(?:[\w.]+\s+)?"([^"]+)"', re.M)
GO_QUOTED = re.compile(r'"([^"]+)"')


def go_modules(files: dict[str, str]) -> list[tuple[str, str]]:
    """(module path, folder) of every `go.mod` of the repository, longest module path first."""
    modules = []
    for path, text in files.items():
        if posixpath.basename(path) == "go.mod":
            match = GO_MODULE.search(text)
            if match:
                modules.append((match.group(1).strip('"'), posixpath.dirname(path)))
    return sorted(modules, key=lambda m: (-len(m[0]), m))


def resolve_go(path: str, text: str, index: RepoIndex, modules: list[tuple[str, str]]) -> set[str]:
    """Every non-test `.go` file of each imported package that lies under one of the modules."""
    imported = GO_IMPORT_ONE.findall(text)
    for block in GO_IMPORT_BLOCK.findall(text):
        imported += GO_QUOTED.findall(block)
    targets = set()
    for name in imported:
        for module, folder in modules:
            if name == module or name.startswith(module + "/"):
                package = posixpath.join(folder, name[len(module) :].lstrip("/")).rstrip("/")
                package = "" if package == "." else package
                targets |= {
                    f
                    for f in index.folders.get(package, [])
                    if f.endswith(".go") and not f.endswith("_test.go")
                }
                break
    return targets - {path}


# -- Java / Kotlin ------------------------------------------------------------------------------

JAVA_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)", re.M)
JAVA_IMPORT = re.compile(r"^\s*import\s+(?:static\s+)?(\w+(?:\.\w+)*)(\.\*)?", re.M)


def java_classes(files: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(class name -> file, package -> files) for the Java/Kotlin files: a file declares the class
    named after it in the package it states."""
    classes: dict[str, str] = {}
    packages: dict[str, list[str]] = defaultdict(list)
    for path in sorted(files):
        if language_of(path) != "java":
            continue
        match = JAVA_PACKAGE.search(files[path])
        package = match.group(1) if match else ""
        stem = posixpath.splitext(posixpath.basename(path))[0]
        classes.setdefault(f"{package}.{stem}" if package else stem, path)
        packages[package].append(path)
    return classes, packages


def resolve_java(path: str, text: str, classes: dict[str, str], packages: dict[str, list[str]]) -> set[str]:
    """Files of the imported classes (`a.b.C`, `a.b.C.member`) and packages (`a.b.*`)."""
    targets = set()
    for name, star in JAVA_IMPORT.findall(text):
        if star and name in packages:
            targets |= set(packages[name])
            continue
        while name:
            if name in classes:
                targets.add(classes[name])
                break
            name = name.rpartition(".")[0]  # a nested class or a static member: its outer class
    return targets - {path}


# -- one repository -----------------------------------------------------------------------------


def repository_imports(
    files: Sequence[tuple[str, str]],
    repo: str = "",
    languages: dict[str, str] | None = None,
    left_out: Iterable[str] = (),
) -> dict[str, set[str]]:
    """For each (relative posix path, text) of a repository, the other files of it that the file
    imports. `repo` is the repository's name (for a root that is itself a Python package);
    `languages` maps a path to The Stack's `lang` for files whose extension names no parser;
    `left_out` names files of the repository that are not in `files` (an empty `__init__.py`
    still makes its folder a package). A folder whose Python files import relatively is a
    package too (a relative import works only there), so an empty `__init__.py` dropped
    before the join of The Stack rows does not hide one below the root."""
    texts = dict(files)
    languages = languages or {}
    python = {
        path: python_imports(text)
        for path, text in texts.items()
        if language_of(path, languages.get(path, "")) == "python"
    }
    implied = [
        posixpath.join(posixpath.dirname(p), "__init__.py")
        for p, found in python.items()
        if posixpath.dirname(p) and any(f[0] for f in found)
    ]  # not the root: whether the root is a package named like the repository is for `left_out` to say
    index = RepoIndex(texts, repo, [*left_out, *implied])
    go = java = None
    imports: dict[str, set[str]] = {}
    for path, text in texts.items():
        language = language_of(path, languages.get(path, ""))
        if path in python:
            imports[path] = resolve_python(path, python[path], index)
        elif language == "c":
            imports[path] = resolve_c(path, text, index)
        elif language == "js":
            imports[path] = resolve_js(path, text, index)
        elif language == "go":
            go = go if go is not None else go_modules(texts)
            imports[path] = resolve_go(path, text, index, go)
        elif language == "java":
            java = java or java_classes(texts)
            imports[path] = resolve_java(path, text, *java)
        else:
            imports[path] = set()
    return imports


def _normal(path: str) -> str:
    """`a/./b/../c` -> `a/c`; a path that climbs out of the repository stays unresolvable."""
    normal = posixpath.normpath(path)
    return "" if normal.startswith("..") else normal.removeprefix("./")
