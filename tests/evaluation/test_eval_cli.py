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
        assert row["target_length"] == 512 and 0 <= row["depth"] <= 1
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
    from prolong_data.evaluation.backends import load_backend
    from prolong_data.evaluation.errors import EvalUsageError

    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(EvalUsageError, match=r"prolong-data\[eval-vllm\]"):
            load_backend("vllm", "any")
    else:
        pytest.skip("vLLM is installed: the guard has nothing to guard")


def test_parser_and_tasks_import_no_torch():
    code = (
        "import sys, pipelines.cli, prolong_data.evaluation.cli, prolong_data.evaluation.runner,"
        " prolong_data.evaluation.report, prolong_data.evaluation.tasks;"
        "pipelines.cli.build_parser();"
        "bad = [m for m in ('torch', 'transformers', 'vllm', 'matplotlib') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_chat_auto_follows_the_tokenizer_never_the_path(llama3, small_bpe):
    from prolong_data.evaluation.cli import resolve_chat
    from prolong_data.evaluation.errors import EvalUsageError

    assert resolve_chat("auto", llama3)  # a chat template in the tokenizer config: an instruct model
    assert not resolve_chat("auto", small_bpe)  # none: base format
    assert not resolve_chat("off", llama3)
    with pytest.raises(EvalUsageError, match="no chat template; use --chat off"):
        resolve_chat("on", small_bpe)


@pytest.fixture(scope="module")
def base_model_under_sft_path(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model without a chat template, saved under ``runs/sft-x/hf``: a base model by its tokenizer."""
    import shutil

    folder = tmp_path_factory.mktemp("runs") / "sft-x" / "hf"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def test_a_base_model_under_an_sft_path_stays_base(base_model_under_sft_path, tmp_path):
    out = tmp_path / "eval"
    args = ["eval", "--model", str(base_model_under_sft_path), "--tasks", "json_kv", "--lengths", "512",
            "--samples", "1", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert json.loads((out / "settings.json").read_text())["chat"] is False
    prompt = json.loads((out / "prompts.jsonl").read_text().splitlines()[0])
    assert prompt["chat"] is False and prompt["prompt"].endswith("Corresponding value:")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--lengths", "16K,32K"], "32768 exceed the 16,384 positions"),
        (["--lengths", "512", "--chat", "on"], "no chat template; use --chat off"),
    ],
)
def test_refused_up_front_with_one_line(base_model_under_sft_path, tmp_path, extra, message):
    done = run_cli(
        "--model", str(base_model_under_sft_path), "--tasks", "json_kv", "--out", str(tmp_path / "o"), *extra
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_out_naming_a_file_is_refused(tiny_model_dir, tmp_path):
    (tmp_path / "taken").write_text("a file of the user's")
    for out in (tmp_path / "taken", tmp_path / "taken" / "below"):
        done = run_cli(
            "--model", str(tiny_model_dir), "--tasks", "json_kv", "--lengths", "512", "--out", str(out)
        )
        assert done.returncode == 2 and "is a file, not a folder" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert (tmp_path / "taken").read_text() == "a file of the user's"


def test_lengths_accept_k_suffixes():
    from prolong_data.evaluation.cli import parse_lengths

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
