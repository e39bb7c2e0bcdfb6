"""`--executor ray`: the tasks run as Ray workers, on a cluster or a Ray started here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml
from datatrove.executor import RayPipelineExecutor

from pipelines.executors.base import Executor, key_value, local_workers, register_executor
from pipelines.resources import RaySettings, time_seconds


@register_executor
class Ray(Executor):
    """Ray workers, `--workers` at once (default: one per CPU here), each with the CPUs, memory
    and time of its pass and `executor.ray`'s runtime environment and worker options."""

    name = "ray"
    help = "a Ray cluster (needs the ray extra)"

    def add_arguments(self, parser):
        group = parser.add_argument_group("ray (--executor ray)")
        group.add_argument(
            "--ray-address", default=None, help="Ray cluster address (default: start a local Ray)"
        )
        group.add_argument(
            "--ray-runtime-env",
            default=None,
            help="Ray runtime_env: a YAML/JSON mapping or a file holding one",
        )
        group.add_argument(
            "--ray-remote",
            type=key_value("--ray-remote", "max_restarts=2"),
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="an option of each Ray worker, VALUE read as YAML (repeatable)",
        )

    def settings_overrides(self, args):
        ray: dict = {} if args.ray_address is None else {"address": args.ray_address}
        if args.ray_runtime_env is not None:
            ray["runtime_env"] = _yaml_mapping("--ray-runtime-env", args.ray_runtime_env)
        if args.ray_remote:
            ray["remote"] = {key: yaml.safe_load(value) for key, value in args.ray_remote}
        return {"ray": ray} if ray else {}

    def check(self, options, settings):
        if importlib.util.find_spec("ray") is None:
            raise ValueError("--executor ray needs ray: pip install 'prolong-data[ray]'")
        check_ray(settings.ray)

    def make(self, options, pipeline, tasks, logging_dir, name, *, depends, log_file, resources, settings):
        _init_ray(settings.ray)
        return RayPipelineExecutor(
            pipeline,
            tasks=tasks,
            workers=local_workers(options, tasks),
            logging_dir=str(logging_dir),
            cpus_per_task=resources.cpus,
            mem_per_cpu_gb=resources.mem_gb / resources.cpus,
            ray_remote_kwargs=dict(settings.ray.remote) or None,
            time=None if resources.time is None else time_seconds(resources.time),
        )


def _init_ray(ray_settings: RaySettings) -> None:
    import ray  # present: the executor's check ran before the build started

    if not ray.is_initialized():
        ray.init(
            address=ray_settings.address,
            runtime_env=dict(ray_settings.runtime_env) or None,
            include_dashboard=False,
            log_to_driver=False,
        )


def _yaml_mapping(flag: str, text: str) -> dict:
    """A mapping given inline (`{pip: [x]}`) or as a file holding one."""
    path = Path(text).expanduser()
    try:
        data = yaml.safe_load(path.read_text() if path.is_file() else text)
    except yaml.YAMLError as err:
        raise ValueError(f"{flag}: not YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{flag} takes a mapping, e.g. '{{env_vars: {{HF_HOME: /shared/hf}}}}', got {text!r}"
        )
    return data


def check_ray(ray_settings: RaySettings) -> None:
    """ValueError for a runtime_env or remote option that Ray would refuse (needs ray)."""
    from ray._common import ray_option_utils
    from ray.runtime_env import RuntimeEnv

    if ray_settings.runtime_env:
        try:
            RuntimeEnv(**ray_settings.runtime_env)
        except (TypeError, ValueError) as err:
            raise ValueError(f"executor.ray.runtime_env: {err}") from None
    owned = sorted(set(ray_settings.remote) & {"placement_group", "placement_group_bundle_index"})
    if owned:
        raise ValueError(f"executor.ray.remote: datatrove places each task itself; remove {', '.join(owned)}")
    unknown = sorted(set(ray_settings.remote) - set(ray_option_utils.actor_options))
    if unknown:
        raise ValueError(
            f"executor.ray.remote: {', '.join(unknown)}: not an option of Ray's remote workers; use "
            "num_cpus, memory, resources, scheduling_strategy, runtime_env, max_restarts, ..."
        )
    try:
        ray_option_utils.validate_actor_options(ray_settings.remote, in_options=True)
    except (TypeError, ValueError) as err:
        raise ValueError(f"executor.ray.remote: {err}") from None
