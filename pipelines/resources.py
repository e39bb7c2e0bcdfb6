"""What each pass of a build asks of a cluster, and the engines' own options.

A recipe's `executor:` block (and the command line over it) says, per pass (`read`, `build`,
`finalize`), how many CPUs, how much memory and how much time one task gets, and gives the Slurm
and Ray settings::

    executor:
      build: {cpus: 2, mem_gb: 24, time: "12:00:00"}
      slurm: {partition: cpu, qos: high, account: myproj, venv: /shared/prolong/.venv,
              sbatch: {constraint: avx2}}
      ray: {runtime_env: {pip: [prolong-data]}, remote: {resources: {highmem: 1}}}

A field left unset takes a default derived from the recipe (`default_resources`). The shape of
everything here is checked when the recipe loads; the chosen executor's own checks
(`pipelines/executors/`, e.g. Ray's worker options) run before a single job is submitted or a byte
written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

PASSES = ("read", "build", "finalize")
"""The passes whose resources a recipe or the command line sets, in order."""

RESOURCE_GROUP = {"signatures": "read", "near_dedup": "finalize"}
"""The passes of near-dedup domains run with the resources of the pass they resemble: `signatures`
reads documents task by task like `read`; `near_dedup` gathers a domain's small signature records
in one task like `finalize`."""


def resource_pass(name: str) -> str:
    """The pass among PASSES whose resources pass `name` runs with."""
    return RESOURCE_GROUP.get(name, name)


SLURM_OWNED = ("array", "job-name", "output", "error", "dependency", "export", "wrap", "parsable")
"""sbatch options the Slurm executor sets itself (the array, its logs, the pass order): giving one
would break the build, so it is refused."""

_TIME = re.compile(r"^(\d+-\d+(:\d\d){0,2}|\d+(:\d\d){0,2})$")
_OPTION_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


@dataclass(kw_only=True)
class PassResources:
    """What one task of a pass gets; None: the recipe's default (`default_resources`)."""

    cpus: int | None = None
    """CPUs per task (Slurm `--cpus-per-task`, Ray `num_cpus`)."""
    mem_gb: float | None = None
    """Memory per task in GB (Slurm `--mem-per-cpu` = this / cpus, Ray `memory`)."""
    time: str | None = None
    """Time limit per task, Slurm's format (`MM`, `HH:MM:SS`, `D-HH:MM:SS`); Slurm's array jobs
    get it as `--time`, Ray kills a task that runs longer. None: `slurm.time`, else no limit on Ray."""


@dataclass(kw_only=True)
class SlurmSettings:
    """Options of `--executor slurm` (datatrove's `SlurmPipelineExecutor`)."""

    partition: str | None = None
    """The partition every job goes to (required)."""
    time: str | None = None
    """Time limit of every pass whose own `time` is unset."""
    qos: str | None = None
    """Quality of service (`--qos`); None: the cluster's default."""
    account: str | None = None
    """The account the jobs are charged to (`--account`)."""
    venv: str | None = None
    """A virtualenv folder (or its `bin/activate`) the jobs activate."""
    condaenv: str | None = None
    """A conda environment the jobs activate."""
    env_command: str | None = None
    """A shell command the jobs run first (e.g. `module load python/3.11 && source env/bin/activate`)."""
    sbatch: dict[str, str] = field(default_factory=dict)
    """Any other sbatch option, `{constraint: avx2, exclusive: ""}`; applied last, so it wins over
    every value the executor sets (`qos`, `mem-per-cpu`, ...), except those it owns (SLURM_OWNED)."""
    srun: dict[str, str] = field(default_factory=dict)
    """Options of the `srun` that starts each task (`{cpu-bind: cores}`)."""
    max_array_size: int = 1001
    """The cluster's MaxArraySize: a pass with more tasks is submitted as several arrays."""


@dataclass(kw_only=True)
class RaySettings:
    """Options of `--executor ray` (datatrove's `RayPipelineExecutor`)."""

    address: str | None = None
    """The cluster (`auto`, `ray://head:10001`); None starts a local Ray."""
    runtime_env: dict[str, Any] = field(default_factory=dict)
    """Ray's runtime environment for every worker (`pip`, `env_vars`, `working_dir`, ...)."""
    remote: dict[str, Any] = field(default_factory=dict)
    """Extra options of the Ray worker (an actor) that runs each task (`resources`,
    `max_restarts`, `label_selector`, ...); they win over the CPUs and memory of the pass."""


@dataclass(kw_only=True)
class ExecutorConfig:
    """The recipe's `executor:` block: resources per pass and the engines' settings."""

    read: PassResources = field(default_factory=PassResources)
    build: PassResources = field(default_factory=PassResources)
    finalize: PassResources = field(default_factory=PassResources)
    slurm: SlurmSettings = field(default_factory=SlurmSettings)
    ray: RaySettings = field(default_factory=RaySettings)

    def __post_init__(self):
        for name in PASSES:
            check_pass(name, getattr(self, name))
        check_slurm_shape(self.slurm)

    def resources(self, name: str, defaults: PassResources) -> PassResources:
        """Pass `name`'s resources: its own fields, else `defaults`, else `slurm.time`."""
        mine = getattr(self, resource_pass(name))
        return PassResources(
            cpus=mine.cpus or defaults.cpus,
            mem_gb=mine.mem_gb or defaults.mem_gb,
            time=mine.time or defaults.time or self.slurm.time,
        )


BUILD_MEM_BASE_GB = 2.0
"""Memory of a build task apart from its sequences: the interpreter, datatrove, the tokenizer
(measured on the demo: docs/scale-out.md)."""
BUILD_MEM_PER_SEQUENCE_TOKEN = 4 * 1024
"""Bytes of build-task memory per token of `seq_len`: the packer holds a partial sequence per bin
and the MDS writer a shard of them (int32 tokens, spans, documents' token lists while packing);
2 GB more at 512K (docs/scale-out.md)."""


def default_resources(name: str, seq_len: int) -> PassResources:
    """A pass's resources when neither the recipe nor the command line sets them: 1 CPU each;
    2 GB for read and finalize; a build task's memory grows with `seq_len` (a 512K task holds
    sequences of 512K tokens while it packs)."""
    if resource_pass(name) != "build":
        return PassResources(cpus=1, mem_gb=2.0)
    mem = BUILD_MEM_BASE_GB + seq_len * BUILD_MEM_PER_SEQUENCE_TOKEN / 2**30
    return PassResources(cpus=1, mem_gb=float(math.ceil(mem)))


def check_time(where: str, text: str | None) -> None:
    if text is not None and not _TIME.match(str(text)):
        raise ValueError(f"{where}: {text!r} is not a time limit; use MM, HH:MM:SS or D-HH:MM:SS")


def time_seconds(text: str) -> int:
    """Seconds of a Slurm time limit (`90`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`)."""
    days, _, rest = text.rpartition("-")
    parts = [int(p) for p in rest.split(":")]
    if days:  # D-HH[:MM[:SS]]
        parts += [0] * (3 - len(parts))
        return int(days) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]
    if len(parts) == 1:  # minutes
        return parts[0] * 60
    if len(parts) == 2:  # MM:SS
        return parts[0] * 60 + parts[1]
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def check_pass(name: str, res: PassResources) -> None:
    """ValueError, naming the field, for a CPU count, memory or time that cannot be asked for."""
    if res.cpus is not None and res.cpus <= 0:
        raise ValueError(f"executor.{name}.cpus must be at least 1, got {res.cpus}")
    if res.mem_gb is not None and res.mem_gb <= 0:
        raise ValueError(f"executor.{name}.mem_gb must be positive, got {res.mem_gb}")
    check_time(f"executor.{name}.time", res.time)


def check_slurm_shape(slurm: SlurmSettings) -> None:
    """ValueError for Slurm settings that cannot make a valid sbatch script."""
    check_time("executor.slurm.time", slurm.time)
    if sum(x is not None for x in (slurm.venv, slurm.condaenv, slurm.env_command)) > 1:
        raise ValueError(
            "executor.slurm: give one of venv, condaenv and env_command (env_command can do both)"
        )
    for table, options in (("sbatch", slurm.sbatch), ("srun", slurm.srun)):
        for key, value in options.items():
            if not _OPTION_NAME.match(str(key)):
                raise ValueError(
                    f"executor.slurm.{table}: {key!r} is not an option name; give it without dashes, "
                    "e.g. constraint=avx2"
                )
            if "\n" in str(value) or "\r" in str(value):
                raise ValueError(f"executor.slurm.{table}.{key}: a value cannot span lines")
            if table == "sbatch" and key in SLURM_OWNED:
                raise ValueError(
                    f"executor.slurm.sbatch.{key}: the Slurm executor sets --{key} itself (job arrays, "
                    "logs and pass order); remove it"
                )
    if slurm.max_array_size == 0 or slurm.max_array_size < -1:
        raise ValueError(
            f"executor.slurm.max_array_size must be positive (or -1), got {slurm.max_array_size}"
        )
