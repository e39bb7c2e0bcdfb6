"""The Slurm executor, end to end, against a fake Slurm: the same shards as the local executor.

`sbatch`, `srun` and `scontrol` are small scripts put first on PATH. The fake `sbatch` records
each submission (job name, array, dependency) and runs the job at once, every array index as
its own `bash` process with `SLURM_ARRAY_TASK_ID` set, the way Slurm would, so datatrove's real
launch scripts, pickled executors and `launch_pickled_pipeline` run. Jobs are submitted in
dependency order (read, build, finalize), so running them at submission honours `afterok`.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from pipeline_helpers import tree_bytes

from pipelines.cli import main

pytestmark = pytest.mark.slow

FAKE_SBATCH = r"""#!/usr/bin/env python3
import json, os, re, subprocess, sys
args, script = sys.argv[1:-1], sys.argv[-1]
text = open(script).read()
directives = dict(re.findall(r"^#SBATCH --([\w-]+)=?(.*)$", text, re.M))
log = os.environ["FAKE_SLURM_LOG"]
with open(log) as f:
    job_id = 1000 + sum(1 for _ in f)
env = dict(os.environ, SLURM_JOB_ID=str(job_id), SLURM_NODELIST="localhost")
for arg in args:
    if arg.startswith("--export=ALL,"):
        env.update(kv.split("=", 1) for kv in arg[len("--export=ALL,"):].split(","))
dependency = next((a.split("=", 1)[1] for a in args if a.startswith("--dependency=")), "")
first, last = (int(x) for x in re.match(r"(\d+)-(\d+)", directives.get("array", "0-0")).groups())
codes = [subprocess.run(["bash", script], env=dict(env, SLURM_ARRAY_TASK_ID=str(i))).returncode
         for i in range(first, last + 1)]
with open(log, "a") as f:
    f.write(json.dumps({"id": job_id, "name": directives.get("job-name"), "array": [first, last],
                        "dependency": dependency, "codes": codes, "merge_stats": "merge_stats " in text,
                        "directives": directives}) + "\n")
print(f"Submitted batch job {job_id}")
"""
FAKE_SRUN = r"""#!/usr/bin/env bash
# drop srun's own options (-l, -n N, --key=value), run the command
while [[ "$1" == -* ]]; do
  if [[ "$1" == "-n" || "$1" == "-N" ]]; then shift; fi
  shift
done
exec "$@"
"""
FAKE_SCONTROL = """#!/usr/bin/env bash
echo localhost
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch) -> Path:
    bin_dir = tmp_path / "fake-slurm-bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        path = bin_dir / name
        path.write_text(body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "submitted.jsonl"
    log.write_text("")
    venv_bin = Path(sys.executable).parent  # launch_pickled_pipeline and merge_stats live here
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{venv_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    return log


def test_slurm_build_equals_local_build(tmp_path, tiny_recipe_file, fake_slurm):
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    common = ["shards", "--recipe", str(tiny_recipe_file), "--tasks", "2", "--no-report"]
    assert main([*common, "--out", str(local), "--workers", "2"]) == 0
    slurm_flags = ["--executor", "slurm", "--slurm-partition", "cpu", "--slurm-time", "00:10:00"]
    slurm_flags += ["--cpus", "build=2", "--mem-gb", "build=3", "--time", "finalize=5"]
    slurm_flags += ["--slurm-sbatch", "qos=high", "--slurm-account", "proj"]  # no --workers: no cap
    assert main([*common, "--out", str(slurm), *slurm_flags]) == 0
    jobs = [json.loads(line) for line in fake_slurm.read_text().splitlines()]
    passes = [j for j in jobs if not j["merge_stats"]]  # datatrove adds a stats-merging job to each
    assert [j["name"] for j in passes] == ["prolong-read", "prolong-build", "prolong-finalize"]
    by_name = {j["name"]: j for j in passes}
    assert by_name["prolong-build"]["dependency"] == f"afterok:{by_name['prolong-read']['id']}"
    assert by_name["prolong-finalize"]["dependency"] == f"afterok:{by_name['prolong-build']['id']}"
    assert all(code == 0 for j in jobs for code in j["codes"]), jobs
    assert by_name["prolong-build"]["array"] == [0, 6]  # 7 build tasks (qa has max_tasks 1)
    sbatch = {name: job["directives"] for name, job in by_name.items()}
    assert sbatch["prolong-build"]["array"] == "0-6"  # no `%N`: as many at once as the cluster runs
    build, read = sbatch["prolong-build"], sbatch["prolong-read"]
    assert (build["cpus-per-task"], build["mem-per-cpu"]) == ("2", "1536M")  # 3 GB over 2 CPUs
    assert (read["cpus-per-task"], read["mem-per-cpu"]) == ("1", "2048M")  # the default
    assert [sbatch[n]["time"] for n in by_name] == ["00:10:00", "00:10:00", "5"]
    assert {(s["qos"], s["account"]) for s in sbatch.values()} == {("high", "proj")}
    assert tree_bytes(slurm) == tree_bytes(local) != {}
