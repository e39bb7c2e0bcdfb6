"""``prolong-data eval`` end to end on a tiny saved model; usage errors; import guards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main

HERE = Path(__file__).parent
"""A folder that exists, as held-out documents (the command ends before it reads them)."""
TASKS = "json_kv,niah_single,niah_multikey,niah_multivalue,doc_loss"


def test_eval_cli_writes_every_output(tiny_model_dir, heldout_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["eval", "--model", str(tiny_model_dir), "--tasks", TASKS, "--lengths", "512", "--samples", "1",
            "--depths", "1", "--window", "256", "--documents", "1", "--heldout", str(heldout_dir),
            "--out", str(out), "--seed", "7", "--chat", "off", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    for name in (
        "settings.json",
        "prompts.jsonl",
        "results.jsonl",
        "doc_loss.jsonl",
        "results.json",
        "results.md",
    ):
        assert (out / name).stat().st_size > 0, name
    for name in ("needle_depth.png", "loss_by_position.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    prompts = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    assert len(prompts) == 4
    for row in prompts:
        assert {"task", "target_length", "depth", "prompt", "answers"} <= set(row)
        assert row["target_length"] == 512 and row["depth"] == 0.5
    results = json.loads((out / "results.json").read_text())
    assert set(results["tasks"]) == set(TASKS.split(",")) - {"doc_loss"}
    assert results["doc_loss"]["buckets"][0]["bucket"] == "0-1K"
    assert results["backend"]["device"] == "cpu" and results["settings"]["seed"] == 7
    assert "| json_kv |" in capsys.readouterr().out
    # compare the folder with itself
    assert main(["eval", "--compare", str(out), str(out)]) == 0
    assert "| json_kv | 512 |" in capsys.readouterr().out


def run_cli(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1")  # a missing model must not wait on hub retries
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "eval", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--model is required"),
        (["--model", "no/such-model-here", "--heldout", str(HERE)], "cannot load --model"),
        (
            ["--model", "m", "--heldout", str(HERE), "--out", str(HERE / "eval")],
            "choose an output folder apart",
        ),
        (["--model", "m", "--heldout", "/no/such/folder"], "held-out folder"),
        (["--model", "m", "--tasks", "json_kv,bogus"], "unknown task"),
        (["--model", "m", "--lengths", "8K,lots"], "not a token count"),
        (["--compare", "/no/a", "/no/b"], "no results.json"),
    ],
)
def test_usage_errors_exit_2_with_one_message(args, message):
    done = run_cli(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_vllm_backend_is_guarded():
    from evaluation.backends import load_backend
    from evaluation.errors import EvalUsageError

    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(EvalUsageError, match=r"prolong-data\[eval-vllm\]"):
            load_backend("vllm", "any")
    else:
        pytest.skip("vLLM is installed: the guard has nothing to guard")


def test_parser_and_tasks_import_no_torch():
    code = (
        "import sys, pipelines.cli, evaluation.cli, evaluation.runner, evaluation.report, evaluation.tasks;"
        "pipelines.cli.build_parser();"
        "bad = [m for m in ('torch', 'transformers', 'vllm', 'matplotlib') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_chat_auto_follows_the_model_name(llama3, small_bpe):
    from evaluation.cli import resolve_chat

    assert resolve_chat("auto", llama3, "org/Llama-3-8B-Instruct")
    assert resolve_chat("auto", llama3, "runs/sft/hf")
    assert not resolve_chat("auto", llama3, "runs/stage1-64k/hf")
    assert not resolve_chat("auto", small_bpe, "some-chat-model")  # no template to use
    assert resolve_chat("on", llama3, "x") and not resolve_chat("off", llama3, "x-instruct")


def test_lengths_accept_k_suffixes():
    from evaluation.cli import parse_lengths

    assert parse_lengths("8192, 16K,128k") == (8192, 16384, 131072)


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_make_eval_on_a_tiny_export(tiny_model_dir, heldout_dir, tmp_path):
    """``make eval`` with its CPU smoke settings (1K and 2K tokens) writes every output."""
    out = tmp_path / "eval"
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        ["make", "-C", str(REPO), "-o", ".venv/.installed", "eval", f"MODEL={tiny_model_dir}",
         f"HELDOUT={heldout_dir}", f"EVAL_OUT={out}", "GPU="],
        capture_output=True, text=True, timeout=1800, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("prompts.jsonl", "results.jsonl", "doc_loss.jsonl", "results.json", "results.md"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["lengths"] == [1024, 2048]
    assert {r["bucket"] for r in results["doc_loss"]["buckets"]} == {"0-1K", "1K-4K"}
    assert (out / "needle_depth.png").is_file() and (out / "loss_by_position.png").is_file()


def test_make_eval_without_an_export_says_what_to_do(tmp_path):
    done = subprocess.run(
        ["make", "-f", str(REPO / "Makefile"), "-o", ".venv/.installed", "eval"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no export under runs/*/hf" in done.stderr and "MODEL=" in done.stderr
