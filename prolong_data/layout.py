"""Where everything of a build lives: one object, so no module spells a path of another.

    out/
      mixture.json  manifest.json  recipe.yaml       what training reads, and how it was made
      <domain>/                                      MDS shards of one domain (`prolong_data.mds`)
        index.json  manifest.json  packing.NNNNN.json  rank-NNNNN/{index.json, shard.*.mds[.zstd]}
      report/   report.md  budget.json  bad_input.json  document_lengths.png  mixture_shares.png
      removed/  <domain>/<filter>/NNNNN.jsonl.gz     what filters removed (domains with keep_removed)
      .lock                                          the build lock (while a build runs)
      .build/   options.json  partitions/<domain>/  logs/shards.log  logs/<pass>/
                stats/<pass>/<domain>/NNNNN.json (a finished task)  NNNNN.progress (a running task)
                bad_input/<domain>/sourceI.NNNNN.json

Passes are `read` and `build` (each one datatrove executor over all domains; `logs/<pass>/completions/`
holds datatrove's per-task completion markers) and `finalize` (one task).
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
PASSES = ("read", "build", "finalize")
OUTPUT_FILES = (MIXTURE, MANIFEST, RECIPE)
"""Files a build writes at the top of its output folder."""


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
