"""Recipes: which sources feed which domain folder, how each is packed, and the mixture.

A recipe is a YAML file in `pipelines/recipes/` (or any path) loaded into the dataclasses
below; command-line flags only override it (`with_overrides`). Paths in sources may use
`{corpus}` (the `--corpus` folder, else the recipe's `corpus`), `{stdlib}` and `{purelib}` (this
Python's standard library and site-packages, whose packages serve as real code repositories).
"""

from __future__ import annotations

import dataclasses
import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import yaml

RECIPES_DIR = Path(__file__).parent / "recipes"
SOURCE_KINDS = ("code_folders", "code_rows", "book_files", "rows", "hub", "chat")
PACK_MODES = ("concat", "length_binned", "best_fit")
GROUPS = ("long", "short")
TOLERANCE = 1e-6


@dataclass(kw_only=True)
class SourceConfig:
    """One input of a domain; several sources of a domain are read one after the other."""

    kind: str
    """`code_folders` (sub-folders are repositories), `code_rows` (The Stack rows), `book_files`
    (`.txt` books), `rows` (jsonl/parquet text rows), `hub` (HF dataset by name), `chat` (SFT
    conversations: rendered with the tokenizer's chat template, with assistant-token masks)."""
    paths: list[str] = field(default_factory=list)
    """Files or folders (searched recursively); `{corpus}`, `{stdlib}`, `{purelib}` are expanded."""
    glob: str | None = None
    """Only files whose name matches this pattern (default: the reader's usual endings)."""
    include: list[str] = field(default_factory=list)
    """`code_folders`: the repositories (sub-folder names) to take, in this order; empty = all."""
    text_key: str = "text"
    """`rows`: the field holding the text."""
    id_key: str = "id"
    """`rows`: the field holding a document id (file and line when absent)."""
    keep_where: dict[str, str] = field(default_factory=dict)
    """`rows`: keep only rows whose dotted field equals the value, e.g.
    `{meta.redpajama_set_name: RedPajamaBook}` for SlimPajama's books."""
    render: str | None = None
    """`rows`: `tulu` renders a `messages` list as Tulu-v2 text (`<|user|>` / `<|assistant|>`)."""
    clean: str | None = None
    """`rows`: `book` strips Project Gutenberg headers and normalises BOM and CRLF."""
    hash_split: list[int] | None = None
    """`[bucket, buckets]`: keep documents whose id hashes into `bucket` of `buckets`, to split
    one source between domains deterministically."""
    dataset: str | None = None
    """`hub`: the dataset name on the Hugging Face hub."""
    split: str = "train"
    """`hub`: the dataset split."""
    config: str | None = None
    """`hub`: the dataset configuration name."""
    data_files: list[str] = field(default_factory=list)
    """`hub`: the files of a file-format dataset (`dataset: json` or `parquet`), local paths or
    URLs; `{corpus}` is expanded. Empty for a dataset named on the hub."""
    chat_format: str = "messages"
    """`chat`: `messages` (UltraChat-style `messages` lists) or `tulu-text` (Tulu-v2 text chats)."""
    max_file_bytes: int | None = None
    """Input files larger than this many bytes are skipped (counted); default: 1,000,000 for a
    `code_folders` file, 256 MiB for a book (read whole), no bound for a rows file (read one row
    at a time, each row at most 256 MiB)."""
    min_files: int = 2
    """`code_folders` / `code_rows`: repositories with fewer kept files are dropped (counted)."""

    def __post_init__(self):
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"source kind {self.kind!r} is not one of {SOURCE_KINDS}")
        if self.kind == "hub" and not self.dataset:
            raise ValueError("a `hub` source needs `dataset: <name on the hub>`")
        if self.kind not in ("hub",) and not self.paths:
            raise ValueError(f"a {self.kind!r} source needs `paths: [...]`")
        if self.hash_split is not None:
            bucket, buckets = self.hash_split if len(self.hash_split) == 2 else (-1, 0)
            if not 0 <= bucket < buckets:
                raise ValueError(
                    f"hash_split {self.hash_split} must be [bucket, buckets] with 0 <= bucket < buckets"
                )


@dataclass(kw_only=True)
class PackConfig:
    """How a domain's documents become sequences."""

    mode: str = "concat"
    """`concat` (short domains: whole documents end to end, cut every seq_len), `length_binned`
    (long domains: documents of at least `chunk_len` tokens cut into chunks), `best_fit` (SFT)."""
    chunk_len: int | None = None
    """`length_binned`: the chunk length, the `-65536` / `-524288` of the folder name."""
    bins: list[int] = field(default_factory=list)
    """`length_binned`: every bin of the recipe when several long domains share a source
    (stage 2: `[65536, 524288]`); a document goes to the longest bin it fills first."""
    min_tokens: int | None = None
    """Documents with fewer tokens (BOS/EOS included) are dropped before packing; `length_binned`
    defaults to the smallest bin."""
    too_long: str = "truncate"
    """`best_fit`: a conversation longer than seq_len is `truncate`d to it or `drop`ped (counted)."""

    def __post_init__(self):
        if self.mode not in PACK_MODES:
            raise ValueError(f"pack mode {self.mode!r} is not one of {PACK_MODES}")
        if self.too_long not in ("truncate", "drop"):
            raise ValueError(f"pack too_long {self.too_long!r} must be `truncate` or `drop`")
        if self.mode == "length_binned" and not self.chunk_len:
            raise ValueError("pack mode length_binned needs `chunk_len` (e.g. 65536)")
        if self.chunk_len is not None and self.chunk_len <= 0:
            raise ValueError(f"pack chunk_len must be positive (e.g. 65536), got {self.chunk_len}")
        if any(b <= 0 for b in self.bins):
            raise ValueError(f"pack bins must be positive token counts, got {self.bins}")
        if self.min_tokens is not None and self.min_tokens < 0:
            raise ValueError(f"pack min_tokens must be >= 0, got {self.min_tokens}")


@dataclass(kw_only=True)
class DomainConfig:
    """One domain folder of the mixture."""

    name: str
    """The folder name (GUIDE.md section 3), also the `domain` column of its samples."""
    group: str
    """`long` or `short`: `--long-share` rescales the two groups, keeping ratios inside each."""
    proportion: float
    """Its share of training sequences; the proportions of a recipe sum to 1."""
    sources: list[SourceConfig] = field(default_factory=list)
    """Its inputs; an empty list marks a domain this corpus lacks: its share is spread over the
    other domains (in proportion) and the budget report says so."""
    pack: PackConfig = field(default_factory=PackConfig)
    """How its documents are packed."""
    dedup: bool = True
    """Remove exact duplicate documents within the domain."""
    quality_filters: list[str] = field(default_factory=list)
    """datatrove quality filters for short domains (`gopher_quality`, `gopher_repetition`, `c4`,
    `fineweb`; they need spaCy)."""
    max_tasks: int | None = None
    """At most this many tasks for the domain (small domains lose a partial sequence per task)."""

    def __post_init__(self):
        if self.group not in GROUPS:
            raise ValueError(f"domain {self.name}: group {self.group!r} must be one of {GROUPS}")
        if not 0 <= self.proportion <= 1:
            raise ValueError(f"domain {self.name}: proportion {self.proportion} must be in [0, 1]")
        if self.max_tasks is not None and self.max_tasks <= 0:
            raise ValueError(f"domain {self.name}: max_tasks must be positive")

    @property
    def present(self) -> bool:
        return bool(self.sources)


@dataclass(kw_only=True)
class Recipe:
    """A whole stage: tokenizer, sequence length, domains, mixture and budget."""

    name: str
    """Recipe name, recorded in every manifest."""
    description: str = ""
    """One line about what the recipe is for."""
    seq_len: int
    """Tokens per training sequence."""
    tokenizer: str
    """`llama3`, a tokenizer.json path, an HF folder or a hub id (`{corpus}` is expanded)."""
    token_budget: int
    """Training tokens of the stage; each domain's target is `token_budget * proportion`."""
    max_repeat: float = 4.0
    """The budget report warns when a domain would be repeated more than this many times."""
    long_share: float | None = None
    """If set, the long group's share of the mixture (short gets the rest), inner ratios kept."""
    corpus: str = "data/raw"
    """Default for `{corpus}` when `--corpus` is not given (relative to the working folder)."""
    tasks: int = 2
    """Tasks per domain (the `--tasks` default); each task writes one `rank-NNNNN` folder."""
    compression: str | None = None
    """MDS shard compression: none or `zstd`."""
    utf8: str = "repair"
    """Invalid UTF-8 in the input: `repair` (U+FFFD, counted) or `drop` the document (counted)."""
    domains: list[DomainConfig]
    """The domain folders, in the order of mixture.json."""

    def __post_init__(self):
        if self.seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {self.seq_len}")
        if self.token_budget <= 0:
            raise ValueError(f"token_budget must be positive, got {self.token_budget}")
        if self.max_repeat < 1:
            raise ValueError(f"max_repeat must be >= 1, got {self.max_repeat}")
        if self.tasks <= 0:
            raise ValueError(f"tasks must be positive, got {self.tasks}")
        if self.utf8 not in ("repair", "drop"):
            raise ValueError(f"utf8 must be 'repair' or 'drop', got {self.utf8!r}")
        if self.compression not in (None, "zstd"):
            raise ValueError(f"compression must be null or zstd, got {self.compression!r}")
        if self.long_share is not None and not 0 < self.long_share < 1:
            raise ValueError(f"long_share must be between 0 and 1, got {self.long_share}")
        names = [d.name for d in self.domains]
        if len(set(names)) != len(names):
            raise ValueError(f"a domain appears twice in recipe {self.name}: {names}")
        total = sum(d.proportion for d in self.domains)
        if abs(total - 1) > TOLERANCE:
            shares = ", ".join(f"{d.name}={d.proportion:g}" for d in self.domains)
            raise ValueError(
                f"recipe {self.name}: domain proportions sum to {total:.6f}, not 1 ({shares}); fix them so they "
                "sum to 1 (list a domain the corpus lacks with `sources: []` to keep its share in the sum)"
            )
        for d in self.domains:
            if d.pack.mode == "length_binned" and self.seq_len % d.pack.chunk_len:
                raise ValueError(
                    f"domain {d.name}: seq_len {self.seq_len} is not a multiple of chunk_len {d.pack.chunk_len}"
                )
        if not any(d.present for d in self.domains):
            raise ValueError(f"recipe {self.name} has no domain with sources")
        if self.long_share is not None:
            for group in GROUPS:
                if not any(d.present and d.group == group for d in self.domains):
                    raise ValueError(
                        f"long_share needs domains of both groups; recipe {self.name} has no {group} domain"
                    )

    # -- mixture -------------------------------------------------------------------------------

    def present_domains(self) -> list[DomainConfig]:
        return [d for d in self.domains if d.present]

    def mixture_proportions(self) -> dict[str, float]:
        """Shares of the domains that have sources: recipe proportions, renormalised over them,
        then the two groups rescaled to `long_share` if it is set."""
        present = self.present_domains()
        total = sum(d.proportion for d in present)
        if total <= 0:
            raise ValueError(f"recipe {self.name}: the domains with sources all have proportion 0")
        shares = {d.name: d.proportion / total for d in present}
        if self.long_share is not None:
            group_of = {d.name: d.group for d in present}
            sums = {g: sum(p for n, p in shares.items() if group_of[n] == g) for g in GROUPS}
            if min(sums.values()) <= 0:
                raise ValueError(
                    "long_share needs a positive proportion in both the long and the short group"
                )
            want = {"long": self.long_share, "short": 1 - self.long_share}
            shares = {n: p * want[group_of[n]] / sums[group_of[n]] for n, p in shares.items()}
        return shares

    def with_overrides(self, **changes) -> Recipe:
        """A copy with top-level fields replaced (validated again)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes)

    def with_proportions(self, overrides: dict[str, float]) -> Recipe:
        """A copy where each named domain gets a new proportion and the other domains of its group
        are scaled so the group keeps its total (an inner-weight sweep without touching the rest)."""
        domains = {d.name: d for d in self.domains}
        unknown = [n for n in overrides if n not in domains]
        if unknown:
            raise ValueError(
                f"--proportion names unknown domains {unknown}; recipe {self.name} has {list(domains)}"
            )
        new = {d.name: d.proportion for d in self.domains}
        for group in GROUPS:
            members = [d.name for d in self.domains if d.group == group]
            fixed = {n: overrides[n] for n in members if n in overrides}
            if not fixed:
                continue
            group_total = sum(new[n] for n in members)
            rest = [n for n in members if n not in fixed]
            rest_total = sum(new[n] for n in rest)
            left = group_total - sum(fixed.values())
            if left < -TOLERANCE or (rest and rest_total <= 0 and left > TOLERANCE):
                raise ValueError(
                    f"--proportion for {sorted(fixed)} exceeds the {group} group's total {group_total:g}; lower it"
                )
            new.update(fixed)
            for n in rest:
                new[n] = max(left, 0) * new[n] / rest_total if rest_total else 0.0
        return dataclasses.replace(
            self, domains=[dataclasses.replace(d, proportion=new[d.name]) for d in self.domains]
        )

    # -- paths ---------------------------------------------------------------------------------

    def resolved(self, corpus: str | None = None) -> Recipe:
        """A copy with `{corpus}`, `{stdlib}`, `{purelib}` expanded in tokenizer and source paths."""
        places = {
            "corpus": str(Path(corpus or self.corpus).expanduser().resolve()),
            "stdlib": sysconfig.get_paths()["stdlib"],
            "purelib": sysconfig.get_paths()["purelib"],
        }

        def expand(text: str) -> str:
            try:
                return text.format_map(places)
            except KeyError as err:
                raise ValueError(
                    f"unknown placeholder {err} in {text!r}; use {{corpus}}, {{stdlib}} or {{purelib}}"
                ) from None

        def local(
            path: str,
        ) -> str:  # relative to the working folder, once: a resumed build reads the same files
            return path if "://" in path else os.path.abspath(os.path.expanduser(path))

        domains = [
            dataclasses.replace(
                d,
                sources=[
                    dataclasses.replace(
                        s,
                        paths=[local(expand(p)) for p in s.paths],
                        data_files=[local(expand(f)) for f in s.data_files],
                    )
                    for s in d.sources
                ],
            )
            for d in self.domains
        ]
        tokenizer = expand(self.tokenizer)
        if tokenizer != "llama3" and Path(tokenizer).expanduser().exists():  # a local file or folder
            tokenizer = local(tokenizer)
        texts = [self.tokenizer] + [
            p for d in self.domains for s in d.sources for p in (*s.paths, *s.data_files)
        ]
        used = any("{corpus}" in t for t in texts)  # else the default stays as written: it changes nothing
        return dataclasses.replace(
            self,
            tokenizer=tokenizer,
            domains=domains,
            corpus=places["corpus"] if used or corpus else self.corpus,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------
# YAML
# ----------------------------------------------------------------------------------------------


def recipe_names() -> list[str]:
    """The recipes shipped in `pipelines/recipes/`."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def _typed(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; allowed: {sorted(fields)}")
    data = dict(data)
    if cls is DomainConfig:
        name = data.get("name", "?")
        data["sources"] = [
            _typed(SourceConfig, s, f"{where}.{name}.sources") for s in data.get("sources") or []
        ]
        data["pack"] = _typed(PackConfig, data.get("pack") or {}, f"{where}.{name}.pack")
    if cls is Recipe:
        data["domains"] = [_typed(DomainConfig, d, f"{where}.domains") for d in data.get("domains") or []]
    try:
        return cls(**data)
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A shipped recipe by name (`demo`, `stage1-64k`, ...) or a recipe YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(f"no recipe {name_or_path!r}: give a YAML file or one of {recipe_names()}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}, line {mark.line + 1} column {mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise ValueError(f"recipe {where}: YAML syntax error ({problem}); fix the file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"recipe {path} cannot be read ({err})") from None
    return recipe_from_dict(data, where=path.name)


def recipe_from_dict(data: dict, where: str = "recipe") -> Recipe:
    return _typed(Recipe, data, where)


def recipe_to_yaml(recipe: Recipe) -> str:
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True)
