"""Recipes: which sources feed which domain folder, how each is packed, and the mixture.

A recipe is a YAML file in `pipelines/recipes/` (or any path) loaded into the dataclasses
below by `prolong_data.config` (types checked, unknown keys refused); command-line flags only
override it (`load_recipe(name, overrides)`, `with_proportions`). A domain's sources are the
source kinds of `prolong_data.sources`, each with its own fields. Paths in sources may use
`{corpus}` (the `--corpus` folder, else the recipe's `corpus`), `{sample_corpus}` (the sample
corpus installed with the package, `examples/corpus` of the repository), `{stdlib}` and `{purelib}`
(this Python's standard library and site-packages, whose packages serve as real code repositories).
"""

from __future__ import annotations

import dataclasses
import os
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from pipelines.resources import ExecutorConfig
from prolong_data.assets import SAMPLE_CORPUS
from prolong_data.config import ConfigError, load, read_yaml, to_dict
from prolong_data.decontaminate import DecontaminateConfig
from prolong_data.mixture import PROPORTION_TOLERANCE
from prolong_data.near_dedup import NearDedupConfig
from prolong_data.packing.registry import PackConfig, default_pack
from prolong_data.sources.registry import SourceConfig, Utf8Policy

RECIPES_DIR = Path(__file__).parent / "recipes"
GROUPS = ("long", "short")


@dataclass(kw_only=True)
class DomainConfig:
    """One domain folder of the mixture."""

    name: str
    """The folder name (docs/prolong-recipe.md), also the `domain` column of its samples."""
    group: str
    """`long` or `short`: `--long-share` rescales the two groups, keeping ratios inside each."""
    proportion: float
    """Its share of training sequences; the proportions of a recipe sum to 1."""
    sources: list[SourceConfig] = field(default_factory=list)
    """Its inputs, each a mapping with a `kind` and that kind's fields (see
    `prolong_data.sources`); several are read one after the other. An empty list marks a domain
    this corpus lacks: its share is spread over the other domains (in proportion) and the budget
    report says so."""
    pack: PackConfig = field(default_factory=default_pack)
    """How its documents are packed."""
    dedup: bool | None = None
    """Remove exact duplicate documents within the domain; None (default) means yes for text and
    chat sources, no for `tokenized` ones (deduplicated when they were first built)."""
    quality_filters: list[str] = field(default_factory=list)
    """datatrove quality filters for short domains (`gopher_quality`, `gopher_repetition`, `c4`,
    `fineweb`; they need spaCy)."""
    max_tasks: int | None = None
    """At most this many tasks for the domain (small domains lose a partial sequence per task)."""
    keep_removed: bool = False
    """Write the documents that the domain's filters remove (empty, invalid UTF-8, duplicates,
    quality) to `removed/<domain>/<filter>/NNNNN.jsonl.gz` in the output folder, to audit them;
    each carries its `filter_reason`."""
    near_dedup: NearDedupConfig | None = None
    """Remove near-duplicate documents (MinHash-LSH over word n-grams; `{}` for the defaults
    `{threshold: 0.8, ngram: 5, bands: 14, rows: 8, keep: longest}`; docs/dedup.md). Each removal
    is a line of `report/near_dedup.jsonl`."""
    decontaminate: DecontaminateConfig | None = None
    """Remove the text of evaluation sets from the domain's documents (`paths` of JSONL, parquet
    or text files, `fields`, `ngram: 13`, `action: excise|drop`, `margin_words: 12`,
    `max_matched_fraction: 0.5`; docs/dedup.md). Each touched document is a line of
    `report/decontamination.jsonl`."""

    def __post_init__(self):
        if self.group not in GROUPS:
            raise ValueError(f"domain {self.name}: group {self.group!r} must be one of {GROUPS}")
        if not 0 <= self.proportion <= 1:
            raise ValueError(f"domain {self.name}: proportion {self.proportion} must be in [0, 1]")
        if self.max_tasks is not None and self.max_tasks <= 0:
            raise ValueError(f"domain {self.name}: max_tasks must be positive")
        if not self.sources:
            return
        kinds = sorted({s.kind for s in self.sources})
        if len({s.produces for s in self.sources}) > 1 or len({s.group_key for s in self.sources}) > 1:
            raise ValueError(
                f"domain {self.name}: sources of kinds {kinds} cannot share a domain (their documents "
                "are made differently); give each its own domain"
            )
        if any(s.hash_split is not None for s in self.sources) and len(self.sources) > 1:
            raise ValueError(f"domain {self.name}: hash_split works on a domain with one source")
        for source in self.sources:
            if source.pack_modes is not None and self.pack.mode not in source.pack_modes:
                raise ValueError(
                    f"domain {self.name}: {source.kind} sources need `pack: {{mode: {source.pack_modes[0]}}}`"
                    + (" (whole conversations)" if source.produces == "chat" else "")
                )
        if self.decontaminate is not None and self.produces != "text":
            raise ValueError(
                f"domain {self.name}: decontaminate works on text documents; {kinds} sources give "
                f"{self.produces} (decontaminate the text they were made from)"
            )
        if self.produces == "tokens":
            if self.dedup:
                raise ValueError(
                    f"domain {self.name}: `dedup: true` needs text; tokenized sources were deduplicated "
                    "when first built (leave dedup unset)"
                )
            if self.quality_filters:
                raise ValueError(f"domain {self.name}: quality filters need text, tokenized sources have ids")

    @property
    def present(self) -> bool:
        return bool(self.sources)

    @property
    def produces(self) -> str | None:
        """What the domain's readers yield (`text`, `chat` or `tokens`; None without sources)."""
        return self.sources[0].produces if self.sources else None

    @property
    def deduplicates(self) -> bool:
        """Whether exact duplicates are removed (`dedup`, or its default for the sources)."""
        return self.dedup if self.dedup is not None else self.produces != "tokens"


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
    """`llama3` (the Llama-3 tokenizer packaged with prolong_data), a tokenizer.json path, an HF
    folder or a hub id (`{corpus}` is expanded); see docs/tokenizers.md."""
    token_budget: int
    """Training tokens of the stage; each domain's target is `token_budget * proportion`."""
    max_repeat: float = 4.0
    """The budget report warns when a domain would be repeated more than this many times."""
    long_share: float | None = None
    """If set, the long group's share of the mixture (short gets the rest), inner ratios kept."""
    corpus: str = "data/raw"
    """Default for `{corpus}` when `--corpus` is not given (relative to the working folder; the demo
    recipes say `{sample_corpus}`, the sample corpus installed with the package)."""
    tasks: int = 2
    """Tasks per domain (the `--tasks` default); each task writes one `rank-NNNNN` folder."""
    compression: Literal["zstd"] | None = None
    """MDS shard compression: none or `zstd`."""
    utf8: Utf8Policy = "repair"
    """Invalid UTF-8 in the input: `repair` (U+FFFD, counted) or `drop` the document (counted)."""
    domains: list[DomainConfig]
    """The domain folders, in the order of mixture.json."""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    """CPUs, memory and time per task of each pass, and the Slurm and Ray settings
    (`pipelines/resources.py`, docs/scale-out.md); they change no byte of the output."""

    def __post_init__(self):
        if self.seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {self.seq_len}")
        if self.token_budget <= 0:
            raise ValueError(f"token_budget must be positive, got {self.token_budget}")
        if self.max_repeat < 1:
            raise ValueError(f"max_repeat must be >= 1, got {self.max_repeat}")
        if self.tasks <= 0:
            raise ValueError(f"tasks must be positive, got {self.tasks}")
        if self.long_share is not None and not 0 < self.long_share < 1:
            raise ValueError(f"long_share must be between 0 and 1, got {self.long_share}")
        names = [d.name for d in self.domains]
        if len(set(names)) != len(names):
            raise ValueError(f"a domain appears twice in recipe {self.name}: {names}")
        total = sum(d.proportion for d in self.domains)
        if abs(total - 1) > PROPORTION_TOLERANCE:
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
            if left < -PROPORTION_TOLERANCE or (rest and rest_total <= 0 and left > PROPORTION_TOLERANCE):
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
            "sample_corpus": str(SAMPLE_CORPUS.resolve()),
            "stdlib": sysconfig.get_paths()["stdlib"],
            "purelib": sysconfig.get_paths()["purelib"],
        }

        def expand(text: str) -> str:
            try:
                return text.format_map(places)
            except KeyError as err:
                raise ValueError(
                    f"unknown placeholder {err} in {text!r}; use {{corpus}}, {{sample_corpus}}, {{stdlib}} "
                    "or {purelib}"
                ) from None

        places["corpus"] = str(Path(expand(corpus or self.corpus)).expanduser().resolve())

        def local(path: str) -> str:  # relative to the working folder once: a resume reads the same files
            return path if "://" in path else os.path.abspath(os.path.expanduser(path))

        domains = [
            dataclasses.replace(
                d,
                sources=[s.expand_paths(lambda t: local(expand(t))) for s in d.sources],
                decontaminate=d.decontaminate
                and dataclasses.replace(
                    d.decontaminate, paths=[local(expand(p)) for p in d.decontaminate.paths]
                ),
            )
            for d in self.domains
        ]
        tokenizer = expand(self.tokenizer)
        if tokenizer != "llama3" and Path(tokenizer).expanduser().exists():  # a local file or folder
            tokenizer = local(tokenizer)
        texts = [self.tokenizer] + [t for d in self.domains for s in d.sources for t in _path_texts(s)]
        texts += [p for d in self.domains if d.decontaminate for p in d.decontaminate.paths]
        used = any("{corpus}" in t for t in texts)  # else the default stays as written: it changes nothing
        return dataclasses.replace(
            self,
            tokenizer=tokenizer,
            domains=domains,
            corpus=places["corpus"] if used or corpus else self.corpus,
        )

    def input_paths(self) -> list[str]:
        """Every path the recipe reads: its sources' path fields, the evaluation sets it
        decontaminates against, and a local tokenizer file or folder (call on a `resolved` recipe; remote URLs included as written)."""
        paths = [t for d in self.domains for s in d.sources for t in _path_texts(s)]
        paths += [p for d in self.domains if d.decontaminate for p in d.decontaminate.paths]
        if self.tokenizer != "llama3" and Path(self.tokenizer).expanduser().exists():
            paths.append(self.tokenizer)
        return paths

    def to_dict(self) -> dict:
        return to_dict(self)


# ----------------------------------------------------------------------------------------------
# YAML
# ----------------------------------------------------------------------------------------------


def _path_texts(source) -> list[str]:
    """The texts of a source's path fields (where `{corpus}` may appear)."""
    texts = []
    for name in source.path_fields:
        value = getattr(source, name)
        texts += value if isinstance(value, list) else [value] if value else []
    return texts


def recipe_names() -> list[str]:
    """The recipes shipped in `pipelines/recipes/`."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | Path, overrides: Mapping | Sequence[str] | None = None) -> Recipe:
    """A shipped recipe by name (`demo`, `stage1-64k`, ...) or a recipe YAML file, with dotted
    overrides (`{"token_budget": 1e9}`, or flags like `--domains.fineweb-edu.proportion=0.1`)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(f"no recipe {name_or_path!r}: give a YAML file or one of {recipe_names()}")
    data = read_yaml(path)
    try:
        return load(Recipe, data, overrides)
    except ConfigError as err:
        raise ConfigError(f"{path.name}: {err}") from None


def recipe_to_yaml(recipe: Recipe) -> str:
    """The recipe as YAML (a build's `recipe.yaml`), without its `executor:` block: how a build
    ran changes none of its bytes, so a Slurm build writes the same file as a local one."""
    data = recipe.to_dict()
    data.pop("executor", None)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
