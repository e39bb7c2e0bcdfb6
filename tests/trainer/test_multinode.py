"""Two "nodes" on localhost: two `torchrun --nnodes 2 --nproc-per-node 1` launches that meet through
c10d rendezvous train exactly as one `torchrun --nproc-per-node 2` does, data parallel and with a
sequence-parallel group spread over the two nodes (the launch lines of docs/training.md)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import free_port, tiny_overrides

from trainer.metrics import read_metrics

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
STAGE1 = str(ROOT / "trainer" / "configs" / "stage1-64k.yaml")
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def _train_args(toy_shards: Path, out: Path, extra: dict) -> list[str]:
    extra = {"train.steps": 3, **extra}
    return ["-m", "trainer.train", "--config", STAGE1, *tiny_overrides(toy_shards, out, 64, **extra)]


def one_node(toy_shards: Path, out: Path, extra: dict) -> None:
    cmd = [*TORCHRUN, "--standalone", "--nproc-per-node", "2", *_train_args(toy_shards, out, extra)]
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


OWN_SHM = 'mount -t tmpfs tmpfs /dev/shm && exec "$@"'
"""Gives a launch its own /dev/shm, as a machine of its own has: the data loader (MosaicML
streaming) keeps per-node state in shared memory under fixed names, which two nodes on one
machine would both claim."""


def own_machine() -> list[str]:
    """The command prefix that runs a launch in its own mount namespace with an empty /dev/shm;
    the test is skipped where this machine allows no mount namespace."""
    prefix = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix.insert(1, "--map-root-user")  # an unprivileged user namespace
    probe = subprocess.run([*prefix, "sh", "-c", OWN_SHM, "probe", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"two nodes on one machine need their own /dev/shm (unshare): {probe.stderr.strip()}")
    return [*prefix, "sh", "-c", OWN_SHM, "node"]


def two_nodes(toy_shards: Path, out: Path, extra: dict) -> None:
    """Two launches of the same multi-node command, as two machines would run it."""
    endpoint = f"127.0.0.1:{free_port()}"
    node = [*TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d"]
    node += ["--rdzv-endpoint", endpoint, "--rdzv-id", "multinode-test"]
    nodes = [
        subprocess.Popen(
            [*own_machine(), *node, *_train_args(toy_shards, out, extra)],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        errors = [process.communicate(timeout=600)[1] for process in nodes]
    finally:
        for process in nodes:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(e[-2000:] for e in errors)


def weights(run: Path) -> dict:
    from safetensors.torch import load_file

    (path,) = sorted((run / "hf").glob("*.safetensors"))
    return load_file(str(path))


@pytest.mark.parametrize(
    "label, extra",
    [
        ("data parallel", {}),
        ("sequence parallel over the two nodes", {"parallel.sp": 2, "tiny.num_kv_heads": 1}),
    ],
)
def test_two_nodes_train_like_one_node_of_two(toy_shards, tmp_path, label, extra):
    one, two = tmp_path / "one-node", tmp_path / "two-nodes"
    one_node(toy_shards, one, extra)
    two_nodes(toy_shards, two, extra)
    a, b = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    assert [r["step"] for r in b] == [1, 2, 3]
    # The same ranks do the same arithmetic; every reduction sums two operands, which commute
    # exactly in floating point, so losses and weights agree to the last bit. rel 1e-6 (and the
    # weights' 1e-6) only allows for a different order inside gloo's ring on another machine.
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], rel=1e-6)
    wa, wb = weights(one), weights(two)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert (wa[name] - wb[name]).abs().max().item() <= 1e-6 * max(1.0, wa[name].abs().max().item()), name
