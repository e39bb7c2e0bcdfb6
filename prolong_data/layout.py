"""Where everything of a build lives: every file and folder name of a build is spelled here and
only here (a test checks it), and one `BuildLayout` object is passed around a build. This is the
one drawing of the output tree (docs/building.md says what each file holds)::

    out/
      mixture.json  manifest.json  recipe.yaml       what training reads, and how it was made
      <domain>/                                      MDS shards of one domain (`prolong_data.mds`)
        index.json  manifest.json  packing.NNNNN.json  rank-NNNNN/{index.json, shard.*.mds[.zstd]}
      report/   report.md  budget.json  bad_input.json  document_lengths.png  mixture_shares.png
                near_dedup.jsonl  decontamination.jsonl   (domains with near_dedup / decontaminate)
      removed/  <domain>/<filter>/NNNNN.jsonl.gz     what filters removed (domains with keep_removed)
      .lock                                          the build lock (while a build runs)
      .build/   options.json  partitions/<domain>/  logs/shards.log  logs/<pass>/
                near_dedup/<domain>/{sig-NNNNN.bin, sig-NNNNN.jsonl, removed.jsonl}
                decontaminate/<domain>/{index.npz, touched-NNNNN.jsonl}
                stats/<pass>/<domain>/NNNNN.json (a finished task)  NNNNN.progress (a running task)
                bad_input/<domain>/sourceI.NNNNN.json

Passes are `read`, then `signatures` and `near_dedup` (domains with `near_dedup:`), then `build`
(each one datatrove executor over all domains; `logs/<pass>/completions/` holds datatrove's
per-task completion markers) and `finalize` (one task).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WORK = ".build"
"""The build's work folder inside the output folder."""
REPORT = "report"
REMOVED = "removed"
MANIFEST = "manifest.json"
MIXTURE = "mixture.json"
RECIPE = "recipe.yaml"
OPTIONS = "options.json"
LOG_FILE = "shards.log"
LOCK = ".lock"
"""The build lock (`prolong_data.build_lock`): the holder's pid and host while a build runs."""
RANK_FOLDERS = "rank-[0-9][0-9][0-9][0-9][0-9]"
"""The per-task folders of a domain folder (glob pattern)."""
OUTPUT_FILES = (MIXTURE, MANIFEST, RECIPE)
"""Files a build writes at the top of its output folder."""
INDEX = "index.json"
"""The index of an MDS folder: a rank folder's, and the domain folder's merged one."""
RANK_PREFIX = "rank-"
RANK_GLOB = RANK_PREFIX + "*"
"""The rank folders of a domain folder."""
PACKING_GLOB = "packing.*.json"
"""The packers' reports of a domain folder (`packing_report`)."""
REPORT_TEXT = "report.md"
BUDGET_REPORT = "budget.json"
BUDGET_GLOB = "budget*.json"
"""Every budget report of the report folder: the build's, and one per `--mixture-file` variant."""
BAD_INPUT_REPORT = "bad_input.json"
LENGTHS_PLOT = "document_lengths.png"
SHARES_PLOT = "mixture_shares.png"
NEAR_DEDUP_REPORT = "near_dedup.jsonl"
"""Every near-duplicate removed, one JSON line each (under `report/`)."""
DECONTAMINATION_REPORT = "decontamination.jsonl"
"""Every document that held evaluation text, one JSON line each (under `report/`)."""
NEAR_DEDUP_REMOVED = "removed.jsonl"
"""A domain's near-dedup removals (in its `.build/near_dedup/<domain>/`)."""
EVAL_INDEX = "index.npz"
"""A domain's evaluation n-gram index (in its `.build/decontaminate/<domain>/`)."""


def signature_files(folder: str | Path, rank: int) -> tuple[Path, Path]:
    """(the MinHash signatures, the ids and lengths) that task `rank` of a signature pass writes."""
    return Path(folder) / f"sig-{rank:05d}.bin", Path(folder) / f"sig-{rank:05d}.jsonl"


def touched_file(folder: str | Path, rank: int) -> Path:
    """What build task `rank` of a domain removed as evaluation text."""
    return Path(folder) / f"touched-{rank:05d}.jsonl"


def index_file(folder: str | Path) -> Path:
    """The `index.json` of an MDS folder (a domain folder or a rank folder)."""
    return Path(folder) / INDEX


def rank_folder(domain_folder: str | Path, rank: int) -> Path:
    """Where build task `rank` writes its shards inside a domain folder."""
    return Path(domain_folder) / f"{RANK_PREFIX}{rank:05d}"


def packing_report(domain_folder: str | Path, rank: int) -> Path:
    """What the packer of build task `rank` kept, dropped and padded."""
    return Path(domain_folder) / f"packing.{rank:05d}.json"


def budget_report_name(mixture_file: str = MIXTURE) -> str:
    """The budget report of a mixture file: `budget.json` for `mixture.json`, `budget-<stem>.json`
    for a sweep's variant."""
    stem = Path(mixture_file).stem
    return BUDGET_REPORT if mixture_file == MIXTURE else f"budget-{stem}.json"


@dataclass(frozen=True)
class BuildLayout:
    """The paths of one build folder `root` (see the module docstring)."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # -- what training and users read ----------------------------------------------------------

    @property
    def mixture(self) -> Path:
        return self.root / MIXTURE

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def recipe(self) -> Path:
        return self.root / RECIPE

    @property
    def report(self) -> Path:
        return self.root / REPORT

    def report_file(self, name: str) -> Path:
        """A file of the report folder (`REPORT_TEXT`, `BAD_INPUT_REPORT`, the plots, a budget)."""
        return self.report / name

    def domain(self, name: str) -> Path:
        """The MDS folder of a domain."""
        return self.root / name

    def removed(self, domain: str, filter_name: str) -> Path:
        """What a filter of a domain removed (written when the domain keeps it)."""
        return self.root / REMOVED / domain / filter_name

    # -- the work folder -----------------------------------------------------------------------

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def work(self) -> Path:
        return self.root / WORK

    @property
    def options(self) -> Path:
        """What the shards depend on (recipe, tokenizer, task counts); a rerun must match it."""
        return self.work / OPTIONS

    def partitions(self, domain: str) -> Path:
        """The hash partitions of a domain (pass `read` writes them, pass `build` reads them)."""
        return self.work / "partitions" / domain

    def near_dedup(self, domain: str) -> Path:
        """A domain's near-dedup records: signatures (pass `read` or `signatures`), `removed.jsonl`
        (pass `near_dedup`)."""
        return self.work / "near_dedup" / domain

    def decontaminate(self, domain: str) -> Path:
        """A domain's evaluation index (`index.npz`) and what each build task removed from it."""
        return self.work / "decontaminate" / domain

    def logs(self, pass_name: str) -> Path:
        """datatrove's logging folder of a pass."""
        return self.work / "logs" / pass_name

    def completion(self, pass_name: str, rank: int) -> Path:
        """datatrove's completion marker of global task `rank` of a pass."""
        return self.logs(pass_name) / "completions" / f"{rank:05d}"

    @property
    def log_file(self) -> Path:
        """The `shards` command's own log lines (executors, warnings), beside the passes' task logs."""
        return self.work / "logs" / LOG_FILE

    def stats(self, pass_name: str) -> Path:
        """Per-task stats of a pass: `<domain>/<local rank>.json` below it."""
        return self.work / "stats" / pass_name

    def stats_file(self, pass_name: str, domain: str, rank: int) -> Path:
        return task_stats_file(self.stats(pass_name), domain, rank)

    @property
    def bad_input(self) -> Path:
        """Bad-input logs: `<domain>/sourceI.NNNNN.json` below it, one per source and task."""
        return self.work / "bad_input"

    def bad_input_pattern(self, domain: str, source: int) -> str:
        """The bad-input log of source `source` of a domain, `{rank:05d}` left to fill in."""
        return str(self.bad_input / domain / f"source{source}.{{rank:05d}}.json")


def task_stats_file(stats_folder: str | Path, domain: str, rank: int) -> Path:
    """The stats file of local task `rank` of a domain in a pass's stats folder."""
    return Path(stats_folder) / domain / f"{rank:05d}.json"


def task_progress_file(stats_folder: str | Path, domain: str, rank: int) -> Path:
    """The live counts of running local task `rank` of a domain (removed when it finishes)."""
    return Path(stats_folder) / domain / f"{rank:05d}.progress"
