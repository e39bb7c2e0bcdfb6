"""A real Slurm on this machine: munged, slurmctld and slurmd on localhost (`make test-slurm`).

The fixture installs Debian's `slurm-wlm` and `munge` when they are missing (root and apt-get;
otherwise the test is skipped, saying why), writes a minimal slurm.conf for this machine's cores
(`slurmd -C`) into a temporary folder, starts the three daemons in the foreground on free ports
and stops every one of them afterwards, also when the test fails. Then, through the real
`sbatch`, `srun`, `squeue` and `scancel`:

* the demo recipe built with `--executor slurm`, its build array cancelled mid-way (`scancel`) and
  the same command run again, gives the bytes of a local build;
* `examples/slurm/train.sbatch` runs the trainer's CPU smoke run (srun + torchrun, rendezvous
  from the Slurm environment, 1 node x 2 processes) to its HF export.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_helpers import shards_command, tree_bytes

pytestmark = [pytest.mark.slurm, pytest.mark.slow]  # slow too: `make test` (-m "not slow") skips it
REPO = Path(__file__).resolve().parents[2]
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _install_slurm() -> None:
    """apt-get the packages, or skip the test saying what is missing."""
    if all(shutil.which(d) or Path("/usr/sbin", d).exists() for d in DAEMONS):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip("a real Slurm needs slurm-wlm and munge: install them, or run as root where apt-get is")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "slurm-wlm", "munge"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.skip(f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}")


def _node_line() -> str:
    """This machine as slurmd sees it (`NodeName=... CPUs=... RealMemory=...`)."""
    line = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return " ".join(word for word in line.split() if not word.startswith("UpTime"))


def _slurm_conf(root: Path, node: str, munge_socket: Path) -> str:
    host = node.split()[0].split("=", 1)[1]
    return "\n".join(
        [
            "ClusterName=prolongtest",
            f"SlurmctldHost={host}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "SwitchType=switch/none",
            f"{node} NodeAddr=127.0.0.1 State=UNKNOWN",
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _wait(condition, what: str, timeout: float, logs_folder: Path) -> None:
    """Poll `condition` once a second; fail with the daemons' log tails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            logs = "\n".join(p.read_text()[-1500:] for p in sorted(logs_folder.glob("*.log")))
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s; daemon logs:\n{logs}")
        time.sleep(1)


@pytest.fixture
def slurm_cluster(tmp_path, monkeypatch):
    """A running one-node Slurm; yields its environment (SLURM_CONF set, this Python first on
    PATH, the repository on PYTHONPATH); its folder is `SLURM_CONF`'s. Stops every daemon."""
    _install_slurm()
    root = tmp_path / "cluster"
    munge = root / "munge"
    for folder in (root / "state", root / "spool", munge):
        folder.mkdir(parents=True)
    munge.chmod(0o755)  # munged wants the socket's folder searchable by everyone
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, _node_line(), munge / "socket"))
    env = dict(os.environ, SLURM_CONF=str(conf), PYTHONPATH=str(REPO))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for key_, value in env.items():
        monkeypatch.setenv(key_, value)
    started: list[subprocess.Popen] = []
    munged = [
        "munged", "-F", "-f", f"--key-file={key}", f"--socket={munge / 'socket'}",
        f"--pid-file={munge / 'pid'}", f"--log-file={root / 'munged.log'}", f"--seed-file={munge / 'seed'}",
    ]  # fmt: skip
    try:
        for cmd in (munged, ["slurmctld", "-D", "-f", str(conf)], ["slurmd", "-D", "-f", str(conf)]):
            log = open(root / f"{cmd[0]}.out", "w")  # noqa: SIM115 (closed with the process)
            started.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
            if cmd[0] == "munged":
                _wait((munge / "socket").exists, "munged's socket", 30, root)

        def idle() -> bool:
            done = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            return done.stdout.strip() == "idle"

        _wait(idle, "the node to become idle", 60, root)
        yield env
    finally:
        for process in reversed(started):
            process.terminate()
        for process in reversed(started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _logs(env) -> Path:
    return Path(env["SLURM_CONF"]).parent


def _queue(env) -> list[str]:
    done = subprocess.run(
        ["squeue", "-h", "-o", "%i %j %T"], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()


def _run(cmd: list[str], env, cwd=REPO) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{cmd}: {done.stderr[-3000:]}"
    return done


def test_demo_on_slurm_killed_mid_array_resumes_to_the_local_bytes(slurm_cluster, tmp_path, corpus):
    env = slurm_cluster
    common = ["--corpus", str(corpus), "--tasks", "2", "--no-report"]
    local, slurm = tmp_path / "local", tmp_path / "slurm"
    _run(shards_command("demo", local, *common, "--workers", "2"), env)
    submit = shards_command(
        "demo",
        slurm,
        *common,
        "--executor",
        "slurm",
        "--slurm-partition",
        "debug",
        "--slurm-time",
        "20",
        "--mem-gb",
        "1",
        "--workers",
        "1",
        "--slurm-venv",
        sys.prefix,
    )  # fmt: skip  (--workers 1: one build task at a time, so the array is surely cancelled mid-way)
    _run(submit, env)
    completions = slurm / ".build" / "logs" / "build" / "completions"
    _wait(
        lambda: completions.is_dir() and any(completions.iterdir()), "a finished build task", 300, _logs(env)
    )
    assert any("prolong-build" in line for line in _queue(env)), _queue(env)
    # the build array mid-way, and what waits on it (finalize, the stats merges): this cluster is ours
    subprocess.run(["scancel", f"--user={getpass.getuser()}"], env=env, check=True)
    _wait(lambda: not _queue(env), "the cancelled jobs to leave the queue", 120, _logs(env))
    finished = len(list(completions.iterdir()))
    assert 0 < finished < 11 and not (slurm / "mixture.json").exists()  # 11 build tasks in all
    _run(submit, env)  # the same command: the finished tasks are skipped, the rest run
    _wait(lambda: not _queue(env), "the resumed build", 400, _logs(env))
    assert (slurm / "mixture.json").is_file(), list((slurm / ".build" / "logs").rglob("*.out"))[:3]
    assert tree_bytes(slurm) == tree_bytes(local) != {}


def test_trainer_smoke_run_through_train_sbatch(slurm_cluster, tmp_path, tiny_recipe_file):
    env = slurm_cluster
    shards = tmp_path / "shards"
    _run(shards_command(tiny_recipe_file, shards, "--tasks", "1", "--no-report"), env)
    run = tmp_path / "run"
    log = tmp_path / "train.out"
    args = [
        "--config",
        "trainer/configs/stage1-64k.yaml",
        "--smoke",
        f"--data.mixture={shards / 'mixture.json'}",
        "--data.seq_len=1024",
        "--train.tokens_per_step=2048",
        "--train.steps=2",
        f"--out={run}",
    ]  # fmt: skip  (1024-token sequences: two ranks x one sequence per step)
    sbatch = ["sbatch", "--parsable", f"--output={log}", "--nodes=1", "--time=20"]
    job = _run([*sbatch, str(REPO / "examples" / "slurm" / "train.sbatch"), *args], env).stdout.strip()
    _wait(lambda: not _queue(env), f"training job {job}", 500, _logs(env))
    text = log.read_text()
    assert "1 node(s) x 2 process(es)" in text, text[-3000:]
    metrics = (run / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2 and (run / "hf" / "config.json").is_file(), text[-3000:]
