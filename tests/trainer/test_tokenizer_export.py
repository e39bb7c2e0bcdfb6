"""Exports load without transformers' false "fix_mistral_regex" alarm, with Llama-3's own ids."""

from __future__ import annotations

import pytest
import transformers
from corpus_files import iter_rows
from packaging.version import Version

from prolong_data.tokenization import load_tokenizer as load_data_tokenizer
from trainer.config import ModelConfig
from trainer.model import load_tokenizer

REGEX_ALARM = "fix_mistral_regex"


@pytest.fixture
def alarms(monkeypatch):
    """The warnings transformers' tokenizer loader logs while the test runs."""
    import transformers.tokenization_utils_base as base

    seen: list[str] = []
    monkeypatch.setattr(base.logger, "warning", lambda msg, *a, **k: seen.append(str(msg)))
    return seen


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """A folder as the trainer exports it: config.json of a Llama model and the tokenizer files."""
    from transformers import LlamaConfig

    out = tmp_path_factory.mktemp("export")
    LlamaConfig(
        vocab_size=128256, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    ).save_pretrained(out)
    load_tokenizer(ModelConfig(tiny=True, tokenizer="llama3")).save_pretrained(out)
    return out


def texts(corpus) -> list[str]:
    """Math problems: digits are where a wrong split regex shows."""
    return [row["text"] for _, row in zip(range(40), iter_rows(corpus, "short/math.jsonl"))]


def test_trainer_loads_an_export_without_the_alarm_and_with_llama3_ids(export, corpus, alarms):
    tokenizer = load_tokenizer(ModelConfig(path=str(export)))
    assert not [a for a in alarms if REGEX_ALARM in a]
    assert "fix_mistral_regex" not in tokenizer.init_kwargs  # nothing of it is written into exports
    reference = load_data_tokenizer("llama3")
    for text in texts(corpus):
        assert (
            tokenizer(text, add_special_tokens=False)["input_ids"]
            == reference.encode_reference(text).tolist()
        )


@pytest.mark.skipif(
    not Version("4.57.3") <= Version(transformers.__version__) < Version("5"),
    reason="the false alarm is specific to transformers 4.57.3 - 4.57.x",
)
def test_the_alarm_is_false_the_suggested_patch_would_change_llama3_ids(export, corpus, alarms):
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(export)  # plain loading of a Llama-3 export raises the alarm
    assert [a for a in alarms if REGEX_ALARM in a]
    patched = AutoTokenizer.from_pretrained(export, fix_mistral_regex=True)
    reference = load_data_tokenizer("llama3")
    changed = sum(
        patched(t, add_special_tokens=False)["input_ids"] != reference.encode_reference(t).tolist()
        for t in texts(corpus)
    )
    assert changed > 0  # the Mistral regex splits numbers digit by digit: not Llama-3's tokenizer
