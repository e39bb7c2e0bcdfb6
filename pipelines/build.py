"""Turn a recipe into datatrove pipelines and run them: read, build, finalize.

    out/
      mixture.json  manifest.json  recipe.yaml       what training reads, and how it was made
      <domain>/                                      MDS shards of one domain (GUIDE.md section 2)
      report/   report.md  budget.json  bad_input.json  document_lengths.png  mixture_shares.png
      .build/   partitions/  logs/{read,build,finalize}/  stats/  bad_input/  options.json

Pass `read` (every domain's sources -> filters -> hash partition), pass `build` (partition ->
dedup -> tokenize -> pack -> MDS), then `finalize` (merge indexes, manifests, mixture.json,
reports). A domain built by one task needs no shuffle: its build pass reads its sources itself
and it has no read task. Each pass is one executor over all domains (`dispatch.DomainTasks`), so a killed
build resumes task by task: completed tasks are skipped through datatrove's completion
markers, a half-done task is redone from scratch (it truncates its partition files or empties
its `rank-NNNNN` folder first), and every output is a pure function of the recipe, the input
and the task counts: the same command gives the same bytes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datatrove.pipeline.base import PipelineStep
from datatrove.utils.logging import logger

from pipelines.dispatch import CountTokenized, DomainJob, DomainTasks
from pipelines.recipe import DomainConfig, Recipe, SourceConfig, recipe_to_yaml
from prolong_data.chat import TokenizeChats
from prolong_data.filters import (
    ExactDedupFilter,
    HashSplitFilter,
    MinTokensFilter,
    NonEmptyFilter,
    ValidUtf8Filter,
    quality_filters,
)
from prolong_data.mds import MDSShardWriter
from prolong_data.packing.steps import PackBestFit, PackConcat, PackLengthBinned
from prolong_data.sources import (
    BookFolderReader,
    ConcatRepos,
    HashPartitionWriter,
    PartitionReader,
    RepoFolderReader,
    StackRowsReader,
    TextRowsReader,
    hub_reader,
)
from prolong_data.sources.chat import ChatRowsReader
from prolong_data.tokenize import TokenizeDocuments, load_tokenizer, warm_tokenizer

WORK = ".build"
LOG_FILE = "shards.log"
"""The command's own log lines (executors, warnings) in `.build/logs/`, beside each pass's task logs."""
PASSES = ("read", "build", "finalize")


class BuildError(RuntimeError):
    """A build that cannot go on; the message says what to do."""


@dataclass(kw_only=True)
class BuildOptions:
    """How to run a recipe (everything that is not the recipe itself)."""

    out: Path
    """The output folder (domain folders, mixture.json, report/, .build/)."""
    tasks: int | None = None
    """Tasks per domain (default: the recipe's `tasks`), capped by a domain's `max_tasks`."""
    workers: int = 1
    """Tasks run at the same time (local executor: processes; ray: concurrent tasks)."""
    executor: str = "local"
    """`local`, `slurm` or `ray`."""
    slurm: dict = field(default_factory=dict)
    """SlurmPipelineExecutor arguments: partition, time, cpus_per_task, mem_per_cpu_gb, venv_path, ..."""
    ray: dict = field(default_factory=dict)
    """RayPipelineExecutor arguments: cpus_per_task, mem_per_cpu_gb; `address` for ray.init."""
    report: bool = True
    """Write the report (tables and PNG plots) after finalizing."""
    verbose: bool = False
    """Show datatrove's INFO lines and per-task stats on the terminal (they always go to the log
    files under `.build/logs/`), and progress as plain lines."""

    def __post_init__(self):
        self.out = Path(self.out)
        if self.executor not in ("local", "slurm", "ray"):
            raise ValueError(f"executor must be local, slurm or ray, got {self.executor!r}")
        if self.tasks is not None and self.tasks <= 0:
            raise ValueError(f"--tasks must be positive, got {self.tasks}")
        if self.workers <= 0:
            raise ValueError(f"--workers must be positive, got {self.workers}")


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
    no shuffle (one task and no repository rows to group), whose build pass then reads itself."""
    build_steps: list
    """Pass `build`: partition reader (or the source steps), dedup, tokenize, pack, MDS."""


def domain_tasks(recipe: Recipe, domain: DomainConfig, tasks: int | None) -> int:
    wanted = tasks or recipe.tasks
    return min(wanted, domain.max_tasks) if domain.max_tasks else wanted


def source_reader(source: SourceConfig, bad_input_file: str, utf8: str) -> PipelineStep:
    """The reader step of one source."""
    common = {"glob": source.glob, "bad_input_file": bad_input_file}
    if source.kind == "code_folders":
        return RepoFolderReader(
            source.paths,
            include=source.include or None,
            max_file_bytes=source.max_file_bytes,
            min_files=source.min_files,
            **common,
        )
    if source.kind == "code_rows":
        return StackRowsReader(source.paths, utf8=utf8, **common)
    if source.kind == "book_files":
        return BookFolderReader(source.paths, utf8=utf8, **common)
    if source.kind == "rows":
        return TextRowsReader(
            source.paths,
            text_key=source.text_key,
            id_key=source.id_key,
            keep_where=source.keep_where,
            render=source.render,
            clean=source.clean,
            utf8=utf8,
            **common,
        )
    if source.kind == "hub":
        return hub_reader(
            source.dataset,
            split=source.split,
            config=source.config,
            data_files=source.data_files,
            text_key=source.text_key,
            id_key=source.id_key,
        )
    if source.kind == "chat":
        return ChatRowsReader(
            source.paths,
            chat_format=source.chat_format,
            text_key=source.text_key,
            id_key=source.id_key,
            utf8=utf8,
            **common,
        )
    raise BuildError(f"source kind {source.kind!r} has no reader")


def plan_domain(recipe: Recipe, domain: DomainConfig, out: Path, tasks: int | None) -> DomainPlan:
    work = out / WORK
    n = domain_tasks(recipe, domain, tasks)
    folder, partitions = out / domain.name, work / "partitions" / domain.name
    is_repo_rows = any(s.kind == "code_rows" for s in domain.sources)
    source_steps: list = []
    for i, source in enumerate(domain.sources):
        bad_file = str(work / "bad_input" / domain.name / f"source{i}.{{rank:05d}}.json")
        source_steps.append(source_reader(source, bad_file, recipe.utf8))
        if source.hash_split is not None:
            bucket, buckets = source.hash_split
            if len(domain.sources) > 1:
                raise ValueError(f"domain {domain.name}: hash_split works on a domain with one source")
            source_steps.append(HashSplitFilter(buckets, [bucket]))
    source_steps += [ValidUtf8Filter(recipe.utf8), NonEmptyFilter(), *quality_filters(domain.quality_filters)]
    # One task sees every document of the domain anyway: no shuffle needed, the same documents in
    # the same order (so the same bytes) as through one partition, one pass fewer.
    shuffle = n > 1 or is_repo_rows
    read_steps: list = []
    if shuffle:
        key = "repo" if is_repo_rows else "text"
        read_steps = [*source_steps, HashPartitionWriter(str(partitions), n, key=key)]

    build_steps: list = [PartitionReader(str(partitions))] if shuffle else list(source_steps)
    if is_repo_rows:
        build_steps.append(ConcatRepos(min_files=min(s.min_files for s in domain.sources)))
    if domain.dedup:
        build_steps.append(ExactDedupFilter())
    is_chat = any(s.kind == "chat" for s in domain.sources)
    if is_chat and domain.pack.mode != "best_fit":
        raise ValueError(
            f"domain {domain.name}: chat sources need `pack: {{mode: best_fit}}` (whole conversations)"
        )
    build_steps.append(TokenizeChats(recipe.tokenizer) if is_chat else TokenizeDocuments(recipe.tokenizer))
    pack = domain.pack
    min_tokens = pack.min_tokens
    if pack.mode == "length_binned" and min_tokens is None:
        min_tokens = min(pack.bins or [pack.chunk_len])
    if min_tokens:
        build_steps.append(MinTokensFilter(min_tokens))
    build_steps.append(CountTokenized())
    if pack.mode == "concat":
        build_steps.append(PackConcat(recipe.seq_len, report_folder=str(folder)))
    elif pack.mode == "length_binned":
        build_steps.append(
            PackLengthBinned(
                recipe.seq_len, pack.chunk_len, bins=pack.bins or None, report_folder=str(folder)
            )
        )
    else:
        pad_id = load_tokenizer(recipe.tokenizer).eos_id  # the padding span is EOS tokens with mask 0
        build_steps.append(
            PackBestFit(recipe.seq_len, pad_id=pad_id, too_long=pack.too_long, report_folder=str(folder))
        )
    build_steps.append(
        MDSShardWriter(
            str(folder),
            domain.name,
            recipe.seq_len,
            with_mask=pack.mode == "best_fit",
            compression=recipe.compression,
        )
    )
    return DomainPlan(domain, n, folder, partitions, source_steps, read_steps, build_steps)


def plan_build(recipe: Recipe, options: BuildOptions) -> list[DomainPlan]:
    """One plan per domain that has sources; checks every source path now (fails fast)."""
    plans = [plan_domain(recipe, d, options.out, options.tasks) for d in recipe.present_domains()]
    for plan in plans:
        for step in plan.source_steps:
            if hasattr(step, "check"):
                step.check()
    return plans


def pass_step(plans: list[DomainPlan], which: str, out: Path) -> DomainTasks | None:
    """The dispatcher of pass `which` over the domains that have steps in it (None: no domain has)."""
    steps = {p.config.name: p.read_steps if which == "read" else p.build_steps for p in plans}
    jobs = [DomainJob(p.config.name, steps[p.config.name], p.tasks) for p in plans if steps[p.config.name]]
    return DomainTasks(jobs, str(out / WORK / "stats" / which)) if jobs else None


# ----------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------


MIXTURE_ONLY_FIELDS = ("description", "long_share", "token_budget", "max_repeat")
"""Recipe fields that change mixture.json and the reports but not a single shard byte."""


def shard_inputs(recipe: Recipe, plans: list[DomainPlan]) -> dict:
    """What the shards of a build depend on: the recipe without its mixture-only fields and
    proportions, and the task count of every domain."""
    data = recipe.to_dict()
    for key in MIXTURE_ONLY_FIELDS:
        data.pop(key)
    for domain in data["domains"]:
        domain.pop("proportion")
    return {"recipe": data, "tasks": {p.config.name: p.tasks for p in plans}}


def check_options_file(recipe: Recipe, options: BuildOptions, plans: list[DomainPlan]) -> None:
    """Record what this output folder is built from; refuse to resume a different build (a new
    mixture or budget alone is fine: finalize rewrites mixture.json and the reports)."""
    work = options.out / WORK
    current = json.loads(json.dumps(shard_inputs(recipe, plans)))
    path = work / "options.json"
    if path.is_file() and json.loads(path.read_text()) != current:
        raise BuildError(
            f"{options.out} holds a build with another recipe, corpus or task count; resume it with the same "
            "command, or pass --fresh to start over (or choose a new --out)"
        )
    work.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")


def clear_output(out: Path) -> None:
    """Remove a previous build in `out` (its domain folders, reports and work folder)."""
    if not out.exists():
        return
    for child in out.iterdir():
        if (
            child.name in (WORK, "report")
            or (child / "index.json").is_file()
            or child.name.startswith("rank-")
        ):
            shutil.rmtree(child)
        elif child.is_dir() and any(child.glob("rank-*")):
            shutil.rmtree(child)
        elif child.name in ("mixture.json", "manifest.json", "recipe.yaml"):
            child.unlink()


def run_build(recipe: Recipe, options: BuildOptions, fresh: bool = False) -> dict | None:
    """Build all domains of `recipe` into `options.out`; returns the finalize summary (None for
    slurm, whose jobs finish later)."""
    from pipelines.executors import make_executor, require_complete, restore_logs, route_logs
    from pipelines.progress import PassProgress

    if fresh:
        clear_output(options.out)
    plans = plan_build(recipe, options)
    check_options_file(recipe, options, plans)
    logs = options.out / WORK / "logs"
    read, build = pass_step(plans, "read", options.out), pass_step(plans, "build", options.out)
    passes = [(name, step) for name, step in (("read", read), ("build", build)) if step is not None]
    finalize = FinalizeBuild(
        recipe, [(p.config.name, p.tasks) for p in plans], str(options.out), options.report
    )
    if options.executor == "slurm":
        previous = None
        for name, step in passes:
            previous = make_executor(options, [step], step.world_size, logs / name, name, depends=previous)
        last = make_executor(options, [finalize], 1, logs / "finalize", "finalize", depends=previous)
        last.run()
        logger.info(
            f"submitted {' -> '.join(n for n, _ in passes)} -> finalize Slurm jobs; logs under {logs}"
        )
        return None
    if options.executor == "local":
        warm_tokenizer(recipe.tokenizer)  # the local executor forks its workers: they inherit it
    log_file = logs / LOG_FILE
    print(
        f"building recipe {recipe.name} into {options.out}: "
        + ", ".join(f"{name} {step.world_size} tasks" for name, step in passes)
        + f", then finalize; logs in {logs}",
        flush=True,
    )
    if not options.verbose:
        route_logs(log_file)
    try:
        for name, step in passes:
            executor = make_executor(options, [step], step.world_size, logs / name, name, log_file=log_file)
            display = PassProgress(
                name,
                step.jobs,
                options.out / WORK / "stats" / name,
                logs / name / "completions",
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

    def __init__(self, recipe: Recipe, domains: list[tuple[str, int]], out: str, report: bool = True):
        super().__init__()
        self.recipe, self.domains, self.out, self.report = recipe, domains, str(out), report

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        self.finalize()
        return iter(())

    def finalize(self) -> dict:
        from pipelines.report import finalize_build

        return finalize_build(self.recipe, self.domains, Path(self.out), report=self.report)


def options_dict(options: BuildOptions) -> dict:
    data = asdict(options)
    data["out"] = str(options.out)
    return data


__all__ = ["BuildError", "BuildOptions", "run_build", "plan_build", "recipe_to_yaml"]
