"""``--data-dir``: the anchors' released files (written here in their formats and layouts) are
read, scored with the protocol's scorers (oracle 100, constant 0), and bad files refused in one line."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path

import pytest
from tests_eval_helpers import oracle_answer

from prolong_data.evaluation.backends import Reader
from prolong_data.evaluation.datadir import load_examples
from prolong_data.evaluation.errors import EvalUsageError
from prolong_data.evaluation.haystack import Haystack, read_documents
from prolong_data.evaluation.prompts import PromptFormat, prompt_budget
from prolong_data.evaluation.runner import EvalSettings, make_examples, run_evaluation
from prolong_data.evaluation.tasks.helmet import HELMET_TASKS, json_kv_records
from prolong_data.evaluation.tasks.ruler import RULER_TASKS

LENGTH = 1024
RULER_LENGTH = 2048
"""RULER's cwe has a worked example of its own: its prompts need more than 1,024 tokens."""
ROWS = 3


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def json_kv_row(rng: random.Random, records: int) -> dict:
    """A row of HELMET's ``json_kv/test_k{N}_dep6.jsonl``: UUID records, a queried key, two demos."""
    kv = {str(uuid.UUID(int=rng.getrandbits(128), version=4)): str(uuid.UUID(int=rng.getrandbits(128), version=4))
          for _ in range(records)}  # fmt: skip
    key = rng.choice(list(kv))
    demos = [[f'"{uuid.UUID(int=rng.getrandbits(128), version=4)}"', str(uuid.UUID(int=rng.getrandbits(128)))]
             for _ in range(2)]  # fmt: skip
    return {"context": "JSON data:\n" + json.dumps(kv), "question": f'"{key}"', "answer": kv[key],
            "demos": demos, "num_kvs": records}  # fmt: skip


def niah_row(rng: random.Random, values: int, lines: int = 20) -> dict:
    """A row of HELMET's ``ruler/niah_*/validation_{length}.jsonl``: needles of word keys, 7-digit values."""
    key = f"word{rng.randrange(10**6)}-key"
    answers = [str(rng.randrange(10**6, 10**7)) for _ in range(values)]
    body = [
        f"One of the special magic numbers for other{i}-key is: {rng.randrange(10**6, 10**7)}."
        for i in range(lines)
    ]
    for value in answers:
        body.insert(rng.randrange(len(body) + 1), f"One of the special magic numbers for {key} is: {value}.")
    return {"context": "\n".join(body), "query": key, "type_needle_v": "numbers", "outputs": answers}


def helmet_data(root: Path) -> Path:
    rng = random.Random(0)
    records = json_kv_records(LENGTH)
    write_jsonl(
        root / "json_kv" / f"test_k{records}_dep6.jsonl", [json_kv_row(rng, records) for _ in range(ROWS)]
    )
    for folder, values in (("niah_multikey_2", 1), ("niah_multikey_3", 1), ("niah_multivalue", 4)):
        write_jsonl(
            root / "ruler" / folder / f"validation_{LENGTH}.jsonl",
            [niah_row(rng, values) for _ in range(ROWS)],
        )
    return root


def settings(
    protocol: str, data_dir: Path, tasks, heldout: str | None = None, length: int = LENGTH
) -> EvalSettings:
    extra = {"heldout": heldout} if heldout else {}
    return EvalSettings(model="reader", protocol=protocol, tasks=tuple(tasks), lengths=(length,), samples=ROWS,
                        depths=2, data_dir=str(data_dir), **extra)  # fmt: skip


def assert_oracle_100_constant_0(run_settings, tokenizer, tmp_path: Path, tasks) -> None:
    (length,) = run_settings.lengths
    perfect = run_evaluation(run_settings, Reader(oracle_answer, tokenizer), tmp_path / "o", progress=False)
    constant = run_evaluation(run_settings, Reader(lambda p: "42", tokenizer), tmp_path / "c", progress=False)
    for task in tasks:
        assert perfect["tasks"][task][str(length)]["score"] == 100.0, task
        assert perfect["tasks"][task][str(length)]["samples"] == ROWS
        assert constant["tasks"][task][str(length)]["score"] == 0.0, task


def test_helmet_files_oracle_100_constant_0(llama3, tmp_path):
    data = helmet_data(tmp_path / "data")
    assert_oracle_100_constant_0(settings("helmet", data, HELMET_TASKS), llama3, tmp_path, HELMET_TASKS)
    prompts = [json.loads(line) for line in (tmp_path / "o" / "prompts.jsonl").read_text().splitlines()]
    kv = next(p for p in prompts if p["task"] == "json_kv")
    assert "Extract the value corresponding to the specified key in the JSON object below." in kv["prompt"]
    assert (
        kv["prompt"].endswith("\nCorresponding value:") and kv["prompt"].count("Corresponding value: ") == 2
    )
    mv = next(p for p in prompts if p["task"] == "niah_mv")
    assert mv["prompt"].startswith("Some special magic numbers are hidden") and len(mv["answers"]) == 4


def test_helmet_context_too_long_is_cut_at_its_end(llama3, tmp_path):
    rng = random.Random(1)
    row = json_kv_row(rng, 200)  # far more than 1,024 tokens
    write_jsonl(tmp_path / "json_kv" / f"test_k{json_kv_records(LENGTH)}_dep6.jsonl", [row])
    fmt = PromptFormat(llama3, chat=False)
    (example,) = load_examples("helmet", tmp_path, ["json_kv"], [LENGTH], 1, fmt)
    budget = prompt_budget(LENGTH, HELMET_TASKS["json_kv"].max_new_tokens)
    assert example.prompt_tokens == fmt.count(example.prompt) <= budget
    assert example.prompt.startswith(row["context"][:200]) and example.prompt.endswith(
        f"Key: {row['question']}\nCorresponding value:"
    )


def test_ruler_files_oracle_100_constant_0(llama3, heldout_dir, tmp_path):
    """RULER's ``{length}/data/{task}/validation.jsonl``, written from our generator's examples."""
    generated = make_examples(
        EvalSettings(model="reader", protocol="ruler", tasks=tuple(RULER_TASKS), lengths=(RULER_LENGTH,),
                     samples=ROWS, heldout=str(heldout_dir)),
        PromptFormat(llama3, chat=False), Haystack(read_documents(heldout_dir)), progress=False,
    )  # fmt: skip
    rows: dict[str, list[dict]] = {}
    for e in generated:
        assert e.prompt.endswith(e.answer_prefix)
        text = e.prompt[: len(e.prompt) - len(e.answer_prefix)]
        rows.setdefault(e.task, []).append(
            {"index": len(rows.get(e.task, [])), "input": text, "outputs": e.answers, "length": e.prompt_tokens,
             "length_w_model_temp": e.prompt_tokens, "answer_prefix": e.answer_prefix}
        )  # fmt: skip
    for task, task_rows in rows.items():
        write_jsonl(tmp_path / "data" / str(RULER_LENGTH) / "data" / task / "validation.jsonl", task_rows)
    run_settings = settings("ruler", tmp_path / "data", RULER_TASKS, str(heldout_dir), RULER_LENGTH)
    assert_oracle_100_constant_0(run_settings, llama3, tmp_path, RULER_TASKS)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.unlink(), "validation_1024.jsonl is missing"),
        (lambda p: p.write_text(p.read_text() + "{not json\n"), f"line {ROWS + 1} is not JSON"),
        (lambda p: p.write_text(p.read_text().replace('"query"', '"kwery"', 1)), "line 1 lacks the field(s) query"),
        (lambda p: p.write_text(p.read_text().replace('"outputs"', '"outs"', 1)), "line 1 lacks the field(s) answer or outputs"),
    ],
)  # fmt: skip
def test_bad_files_are_refused_naming_file_and_line(damage, message, llama3, tmp_path):
    data = helmet_data(tmp_path)
    damaged = data / "ruler" / "niah_multikey_2" / f"validation_{LENGTH}.jsonl"
    damage(damaged)
    with pytest.raises(EvalUsageError, match="--data-dir: ") as error:
        load_examples("helmet", data, list(HELMET_TASKS), [LENGTH], ROWS, PromptFormat(llama3, chat=False))
    assert str(damaged) in str(error.value) and message in str(error.value) and "\n" not in str(error.value)


def test_data_dir_needs_an_anchor_protocol(tmp_path):
    with pytest.raises(EvalUsageError, match="add --protocol helmet or ruler"):
        EvalSettings(model="m", tasks=("json_kv",), data_dir=str(tmp_path))


def test_cli_refuses_a_missing_file_before_the_model_loads(tiny_model_dir, tmp_path, capsys):
    from pipelines.cli import main

    out = tmp_path / "o"
    args = ["eval", "--model", str(tiny_model_dir), "--protocol", "helmet", "--tasks", "niah_mk_2",
            "--lengths", "1K", "--data-dir", str(tmp_path / "nowhere"), "--out", str(out)]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "niah_multikey_2/validation_1024.jsonl is missing" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # refused before anything was written


def test_a_prompt_too_long_without_its_context_is_refused(llama3, tmp_path):
    row = json_kv_row(random.Random(2), 5) | {"question": "word " * 400}  # 400 tokens of question alone
    write_jsonl(tmp_path / "json_kv" / f"test_k{json_kv_records(256)}_dep6.jsonl", [row])
    with pytest.raises(EvalUsageError, match="json_kv without any context needs .* use longer --lengths"):
        load_examples("helmet", tmp_path, ["json_kv"], [256], 1, PromptFormat(llama3, chat=False))
