"""Turn a recipe into datatrove pipelines and run them: read, build, finalize.

The output folder is drawn, and every path in it named, in `prolong_data.layout`; one
`BuildLayout` (`BuildOptions.layout`) is handed to every step that writes there.

Pass `read` (every domain's sources -> filters -> near-dedup signatures -> hash partition), pass
`signatures` (near-dedup signatures of repositories joined from `code_rows` partitions), pass
`near_dedup` (one task per domain with `near_dedup:`: clusters of the signatures, the ids to
remove), pass `build` (partition -> near-dedup and exact dedup -> tokenize -> pack -> MDS), then
`finalize` (merge indexes, manifests, mixture.json, reports). A domain built by one task needs no shuffle: its build pass reads its sources itself
and it has no read task. Each pass is one executor over all domains (`dispatch.DomainTasks`), so a killed
build resumes task by task: completed tasks are skipped through datatrove's completion
markers, a half-done task is redone from scratch (it truncates its partition files or empties
its `rank-NNNNN` folder first), and every output is a pure function of the recipe, the input
and the task counts: the same command gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from pipelines.dispatch import CountTokenized, DomainJob, DomainTasks
from pipelines.executors import (
    DEFAULT_EXECUTOR,
    check_executor_options,
    executor_kind,
    make_executor,
    require_complete,
    restore_logs,
    route_logs,
)
from pipelines.finalize import finalize_build
from pipelines.progress import PassProgress
from pipelines.recipe import DomainConfig, Recipe
from pipelines.repair import reopen_damaged_tasks
from prolong_data.atomic_write import write_json_atomic
from prolong_data.build_files import clear_build
from prolong_data.build_lock import hold_lock
from prolong_data.decontaminate import Decontaminate, build_index
from prolong_data.decontaminate import index_file as eval_index_file
from prolong_data.filters import (
    ExactDedupFilter,
    HashSplitFilter,
    MinTokensFilter,
    NonEmptyFilter,
    ValidUtf8Filter,
    quality_filters,
)
from prolong_data.layout import BuildLayout
from prolong_data.mds import MDSShardWriter
from prolong_data.near_dedup import DropRemovedIds, ResolveNearDuplicates, SignatureWriter
from prolong_data.path_safety import check_output_apart
from prolong_data.sources import HashPartitionWriter, PartitionReader
from prolong_data.sources.registry import ReaderContext
from prolong_data.tokenization import load_tokenizer, warm_tokenizer


class BuildError(RuntimeError):
    """A build that cannot go on; the message says what to do."""


@dataclass(kw_only=True)
class BuildOptions:
    """How to run a recipe (everything that is not the recipe itself)."""

    out: Path
    """The output folder (domain folders, mixture.json, report/, .build/)."""
    tasks: int | None = None
    """Tasks per domain (default: the recipe's `tasks`), capped by a domain's `max_tasks`."""
    workers: int | None = None
    """Tasks run at the same time (local executor: processes; ray: concurrent tasks; slurm: the
    array's `%N` limit). None: the CPUs of this machine (local, ray), no limit (slurm)."""
    executor: str = DEFAULT_EXECUTOR
    """The name of a registered executor (`pipelines/executors/`: `local`, `slurm`, `ray`)."""
    report: bool = True
    """Write the report (tables and PNG plots) after finalizing."""
    verbose: bool = False
    """Show datatrove's INFO lines and per-task stats on the terminal (they always go to the log
    files under `.build/logs/`), and progress as plain lines."""
    layout: BuildLayout = field(init=False, repr=False, compare=False)
    """The paths of `out`: the one layout object every step of the build is given."""

    def __post_init__(self):
        self.out = Path(self.out)
        self.layout = BuildLayout(self.out)
        executor_kind(self.executor)  # ValueError naming the executors
        if self.tasks is not None and self.tasks <= 0:
            raise ValueError(f"--tasks must be at least 1, got {self.tasks}")
        if self.workers is not None and self.workers <= 0:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")


# ----------------------------------------------------------------------------------------------
# Planning: recipe -> per-domain pipelines
# ----------------------------------------------------------------------------------------------


@dataclass
class DomainPlan:
    """Everything about one domain of a build."""

    config: DomainConfig
    tasks: int
    folder: Path
    partitions: Path
    source_steps: list
    """Reader(s) and filters: the documents of the domain, before any shuffle."""
    read_steps: list
    """Pass `read`: the source steps, then the hash partition writer; empty when the domain needs
    no shuffle (one task and nothing to group, or tokenized sources), whose build pass then reads
    its sources itself."""
    build_steps: list
    """Pass `build`: partition reader (or the source steps), dedup, tokenize, pack, MDS."""
    signature_steps: list = field(default_factory=list)
    """Pass `signatures`: near-dedup signatures of documents that are whole only after the shuffle
    (repositories of `code_rows`); other domains write theirs in the read pass."""
    near_dedup_steps: list = field(default_factory=list)
    """Pass `near_dedup` (one task): the clusters of the signatures the read pass wrote; empty
    for a domain without `near_dedup:`."""


def domain_task_count(recipe: Recipe, domain: DomainConfig, tasks: int | None) -> int:
    """How many tasks build `domain`: `tasks` (else the recipe's), capped by its `max_tasks`."""
    wanted = tasks or recipe.tasks
    return min(wanted, domain.max_tasks) if domain.max_tasks else wanted


def source_steps(recipe: Recipe, domain: DomainConfig, layout: BuildLayout | None) -> list[PipelineStep]:
    """The domain's readers, then the filters that work on text: its documents before any shuffle.
    With `layout` None (a preview) nothing is written: no bad-input log, no removed documents."""
    steps: list[PipelineStep] = []
    for i, source in enumerate(domain.sources):
        bad_file = layout.bad_input_pattern(domain.name, i) if layout is not None else None
        context = ReaderContext(bad_input_file=bad_file, utf8=recipe.utf8, tokenizer=recipe.tokenizer)
        steps.append(source.reader(context))
        if source.hash_split is not None:
            bucket, buckets = source.hash_split
            steps.append(HashSplitFilter(buckets, [bucket]))
    if domain.produces != "tokens":
        removed = removed_writers(domain, layout)
        steps += [
            ValidUtf8Filter(recipe.utf8, exclusion_writer=removed("valid_utf8")),
            NonEmptyFilter(exclusion_writer=removed("non_empty")),
            *quality_filters(domain.quality_filters, exclusion_writer=removed),
        ]
    return steps


def dedup_steps(domain: DomainConfig, layout: BuildLayout | None) -> list[PipelineStep]:
    """The domain's deduplication of whole documents (the build and `preview` both run these);
    with `layout` None the removed documents are not kept."""
    if not domain.deduplicates:
        return []
    return [ExactDedupFilter(exclusion_writer=removed_writers(domain, layout)("exact_dedup"))]


def document_steps(recipe: Recipe, domain: DomainConfig, layout: BuildLayout) -> list[PipelineStep]:
    """From whole documents to MDS shards: dedup, tokenize, length filter, pack, write."""
    folder = str(layout.domain(domain.name))
    steps: list[PipelineStep] = []
    if domain.near_dedup is not None:  # before exact dedup, which then keeps the copy near-dedup kept
        near = str(layout.near_dedup(domain.name))
        steps.append(DropRemovedIds(near, exclusion_writer=removed_writers(domain, layout)("near_dedup")))
    steps += dedup_steps(domain, layout)
    if domain.decontaminate is not None:
        steps.append(
            Decontaminate(
                str(layout.decontaminate(domain.name)),
                domain.decontaminate,
                domain.name,
                exclusion_writer=removed_writers(domain, layout)("decontaminate"),
            )
        )
    tokenize = domain.sources[0].tokenize_step(recipe.tokenizer)
    if tokenize is not None:
        steps.append(tokenize)
    if domain.pack.min_document_tokens:
        steps.append(MinTokensFilter(domain.pack.min_document_tokens))
    steps.append(CountTokenized())
    steps.append(domain.pack.step(recipe.seq_len, recipe.tokenizer, folder))
    steps.append(
        MDSShardWriter(
            folder,
            domain.name,
            recipe.seq_len,
            with_mask=domain.pack.writes_mask,
            compression=recipe.compression,
        )
    )
    return steps


def plan_domain(recipe: Recipe, domain: DomainConfig, layout: BuildLayout, tasks: int | None) -> DomainPlan:
    """The steps of one domain: read its sources, group them when they must meet (a shuffle by
    hash), then make shards. One task sees every document of the domain anyway, so it needs no
    shuffle: the same documents in the same order (so the same bytes) as through one partition,
    one pass fewer. Tokenized sources need none either: each task reads its own share."""
    n = domain_task_count(recipe, domain, tasks)
    folder, partitions = layout.domain(domain.name), layout.partitions(domain.name)
    sources = source_steps(recipe, domain, layout)
    group_key = domain.sources[0].group_key
    shuffle = group_key is not None or (n > 1 and domain.produces != "tokens")
    read_steps = (
        [*sources, HashPartitionWriter(str(partitions), n, key=group_key or "text")] if shuffle else []
    )
    grouping = type(domain.sources[0]).grouping_steps(domain.sources)
    signature_steps, near_steps = [], []
    if domain.near_dedup is not None:  # signatures of whole documents, clusters in their own pass
        near = str(layout.near_dedup(domain.name))
        tokenizer = recipe.tokenizer if domain.produces == "tokens" else None
        whole_when_read = group_key is None
        signatures = SignatureWriter(
            near, domain.near_dedup, passthrough=shuffle and whole_when_read, tokenizer=tokenizer
        )
        if whole_when_read:  # in the read pass, beside the shuffle
            read_steps = [*sources, signatures, *read_steps[len(sources) :]]
        else:  # repositories are whole once their files met: a pass over the partitions
            signature_steps = [PartitionReader(str(partitions), sources=n), *grouping, signatures]
        unit = "tokens" if domain.produces == "tokens" else "characters"
        near_steps = [ResolveNearDuplicates(near, n, domain.near_dedup, domain.name, unit)]
    build_steps = [PartitionReader(str(partitions), sources=n)] if shuffle else list(sources)
    build_steps += grouping
    build_steps += document_steps(recipe, domain, layout)
    return DomainPlan(
        domain, n, folder, partitions, sources, read_steps, build_steps, signature_steps, near_steps
    )


def removed_writers(domain: DomainConfig, layout: BuildLayout | None):
    """`writer(filter_name)`: where a filter of `domain` writes the documents it removes
    (`removed/<domain>/<filter>/NNNNN.jsonl.gz`), or None when the domain does not keep them
    (or `layout` is None)."""

    def writer(filter_name: str):
        if not domain.keep_removed or layout is None:
            return None
        from datatrove.pipeline.writers import JsonlWriter

        return JsonlWriter(str(layout.removed(domain.name, filter_name)), output_filename="${rank}.jsonl.gz")

    return writer


def plan_build(recipe: Recipe, options: BuildOptions) -> list[DomainPlan]:
    """One plan per domain that has sources; checks every source path now (fails fast)."""
    plans = [plan_domain(recipe, d, options.layout, options.tasks) for d in recipe.present_domains()]
    for plan in plans:
        for step in plan.source_steps:
            if hasattr(step, "check"):
                step.check()
    return plans


BUILD_PASSES = ("read", "signatures", "near_dedup", "build")
"""The passes before finalize, in run order; a pass no domain has steps in is skipped."""


def pass_step(plans: list[DomainPlan], which: str, layout: BuildLayout) -> DomainTasks | None:
    """The dispatcher of pass `which` over the domains that have steps in it (None: no domain has)."""
    chosen = {
        "read": "read_steps",
        "signatures": "signature_steps",
        "near_dedup": "near_dedup_steps",
        "build": "build_steps",
    }[which]
    steps = {p.config.name: getattr(p, chosen) for p in plans}
    tasks = {p.config.name: 1 if which == "near_dedup" else p.tasks for p in plans}
    jobs = [DomainJob(name, steps[name], tasks[name]) for name in steps if steps[name]]
    return DomainTasks(jobs, str(layout.stats(which))) if jobs else None


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------


MIXTURE_ONLY_FIELDS = ("description", "long_share", "token_budget", "max_repeat")
"""Recipe fields that change mixture.json and the reports but not a single shard byte."""


def shard_inputs(recipe: Recipe, plans: list[DomainPlan], tokenizer: dict) -> dict:
    """What the shards of a build depend on: the recipe without its mixture-only fields,
    proportions, `corpus` default (the source paths it expands to are there) and `executor` block
    (resources change no byte), the tokenizer by
    content (vocabulary hash and boundary ids, not by the path it was loaded from), and the task
    count of every domain. Nothing in it depends on the working folder, so the same command
    resumes from anywhere."""
    data = recipe.to_dict()
    for key in (*MIXTURE_ONLY_FIELDS, "corpus", "executor"):
        data.pop(key, None)
    for domain in data["domains"]:
        domain.pop("proportion")
    data["tokenizer"] = {k: v for k, v in tokenizer.items() if k != "name"}
    return json.loads(json.dumps({"recipe": data, "tasks": {p.config.name: p.tasks for p in plans}}))


def check_out_folder(out: Path) -> None:
    """`out` is a folder (or nothing yet), not a file."""
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out} is a file; give a folder for the build (it is created if missing)")


def check_options_file(layout: BuildLayout, inputs: dict) -> None:
    """Refuse to resume a different build in the same folder (a new mixture or budget alone is
    fine: finalize rewrites mixture.json and the reports)."""
    path = layout.options
    if not path.is_file():
        return
    try:
        recorded = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        recorded = None  # a torn options file (a kill while writing it): rewritten below
    if recorded is not None and recorded != inputs:
        raise BuildError(
            f"{layout.root} holds a different build ({describe_differences(recorded, inputs)}); resume it "
            "with the same command, or pass --fresh to start over (or choose a new --out)"
        )


def describe_differences(recorded: dict, inputs: dict, most: int = 3) -> str:
    """What differs between the build recorded in a folder and this command's, e.g.
    `tasks of book-65536: 4 in the folder, 3 now`; at most `most` items, then how many more."""
    found = _differences(recorded, inputs, "")
    shown = "; ".join(found[:most])
    return shown + (f"; and {len(found) - most} more" if len(found) > most else "")


def _differences(old, new, where: str) -> list[str]:
    """Each leaf where `old` and `new` differ, named by its path (list items of dicts with a `name`
    by that name)."""
    if isinstance(old, list) and isinstance(new, list) and _named(old) and _named(new):
        old, new = {d["name"]: d for d in old}, {d["name"]: d for d in new}
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in [*old, *(k for k in new if k not in old)]:
            inner = _label(where, key)
            if key not in new:
                found.append(f"{inner}: only in the folder")
            elif key not in old:
                found.append(f"{inner}: only now")
            else:
                found += _differences(old[key], new[key], inner)
        return found
    return [] if old == new else [f"{where}: {_short(old)} in the folder, {_short(new)} now"]


def _named(items: list) -> bool:
    return all(isinstance(i, dict) and "name" in i for i in items)


def _label(where: str, key) -> str:
    """`tasks` + `book-65536` -> `tasks of book-65536`; `recipe` + `seq_len` -> `seq_len`."""
    if where in ("", "recipe"):
        return str(key)
    if where == "tasks":
        return f"tasks of {key}"
    return f"{where}.{key}"


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."


def write_options_file(layout: BuildLayout, inputs: dict) -> None:
    write_json_atomic(layout.options, inputs, indent=1, sort_keys=True)


def check_build(recipe: Recipe, options: BuildOptions) -> tuple[list[DomainPlan], dict, dict]:
    """Validate everything that can be validated without writing a byte: `--out` (a folder apart
    from every input), the executor options, every source path, the tokenizer. Returns the plans,
    what the shards depend on (`shard_inputs`) and the decontamination index of each domain
    that has one (built from its evaluation sets, saved once the folder is claimed)."""
    check_out_folder(options.out)
    check_output_apart(options.out, recipe.input_paths())
    check_executor_options(options, recipe.executor)
    plans = plan_build(recipe, options)  # checks every source path
    tokenizer = load_tokenizer(recipe.tokenizer).describe()  # a wrong tokenizer fails here
    indexes = {d.name: build_index(d.decontaminate) for d in recipe.present_domains() if d.decontaminate}
    inputs = shard_inputs(recipe, plans, tokenizer)
    if indexes:  # a changed evaluation set is another build
        inputs["decontamination_index"] = {name: index.digest() for name, index in indexes.items()}
    return plans, inputs, indexes


def claim_folder(
    layout: BuildLayout, plans: list[DomainPlan], inputs: dict, indexes: dict, fresh: bool
) -> None:
    """With the folder's lock held: refuse another build's folder (unless `fresh`), clear the
    previous build for `fresh` (only what a build wrote), record the build's inputs and its
    decontamination indexes."""
    if not fresh:
        check_options_file(layout, inputs)
    else:
        clear_build(layout.root, [p.config.name for p in plans])
    write_options_file(layout, inputs)
    for name, index in indexes.items():
        index.save(eval_index_file(layout.decontaminate(name)))


def run_build(recipe: Recipe, options: BuildOptions, fresh: bool = False) -> dict | None:
    """Build all domains of `recipe` into `options.out`; returns the finalize summary (None for
    slurm, whose jobs finish later).

    Nothing is written (nor, with `fresh`, deleted) before the recipe, its sources, the tokenizer
    and the options are checked, and before this process holds the folder's lock (a second build
    into the same folder is refused). On a rerun, finished tasks whose outputs were since damaged
    (a deleted or truncated shard or index, a missing partition or stats file) are found and run
    again; the others are skipped.
    """
    plans, inputs, indexes = check_build(recipe, options)
    with hold_lock(options.layout.lock, log=logger.warning):
        claim_folder(options.layout, plans, inputs, indexes, fresh)
        return run_passes(recipe, options, plans)


def run_passes(recipe: Recipe, options: BuildOptions, plans: list[DomainPlan]) -> dict | None:
    """Run the passes of a claimed build folder (see `run_build`)."""
    layout = options.layout
    steps = {name: pass_step(plans, name, layout) for name in BUILD_PASSES}
    passes = [(name, step) for name, step in steps.items() if step is not None]
    reopen_damaged_tasks(layout, plans, passes)
    finalize = FinalizeBuild(recipe, [(p.config.name, p.tasks) for p in plans], layout, options.report)
    engine = {"settings": recipe.executor, "seq_len": recipe.seq_len}
    kind = executor_kind(options.executor)
    if kind.submits_all_passes:
        previous = None
        for name, step in passes:
            previous = make_executor(
                options, [step], step.world_size, layout.logs(name), name, depends=previous, **engine
            )
        last = make_executor(
            options, [finalize], 1, layout.logs("finalize"), "finalize", depends=previous, **engine
        )
        last.run()
        logger.info(
            f"submitted {' -> '.join(n for n, _ in passes)} -> finalize Slurm jobs; logs under {layout.work / 'logs'}"
        )
        return None
    if kind.forks_workers:
        warm_tokenizer(recipe.tokenizer)  # the workers start from this process: they inherit it
    print(
        f"building recipe {recipe.name} into {options.out}: "
        + ", ".join(f"{name} {step.world_size} tasks" for name, step in passes)
        + f", then finalize; logs in {layout.work / 'logs'}",
        flush=True,
    )
    if not options.verbose:
        route_logs(layout.log_file)
    try:
        for name, step in passes:
            executor = make_executor(
                options, [step], step.world_size, layout.logs(name), name, log_file=layout.log_file, **engine
            )
            display = PassProgress(
                name,
                step.jobs,
                layout.stats(name),
                layout.logs(name) / "completions",
                tty=False if options.verbose else None,
            )
            with display:
                executor.run()
            require_complete(executor, name)
        return finalize.finalize()
    finally:
        if not options.verbose:
            restore_logs()


class FinalizeBuild(PipelineStep):
    """The last pass (one task): merge indexes, write manifests, mixture.json and the reports."""

    name = "finalize build"
    type = "🏁 - FINALIZE"

    def __init__(
        self, recipe: Recipe, domains: list[tuple[str, int]], layout: BuildLayout, report: bool = True
    ):
        super().__init__()
        self.recipe, self.domains, self.layout, self.report = recipe, domains, layout, report

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        self.finalize()
        return iter(())

    def finalize(self) -> dict:
        return finalize_build(self.recipe, self.domains, self.layout, report=self.report)


__all__ = ["BuildError", "BuildOptions", "run_build", "plan_build"]
