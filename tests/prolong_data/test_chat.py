"""SFT chats: template ids, loss masks, packing with padding spans, bad rows."""

from __future__ import annotations

import json
from itertools import islice

import numpy as np
import pytest
from corpus_files import corpus_file, iter_rows

from prolong_data.chat import (
    LLAMA3_TEMPLATE,
    ChatEncoder,
    ChatTemplate,
    conversation_problem,
    parse_tulu_text,
)
from prolong_data.sources.chat import ChatRowsReader


@pytest.fixture(scope="module")
def chats(corpus):
    return [row["messages"] for row in islice(iter_rows(corpus, "sft/chat.jsonl"), 60)]


@pytest.fixture(scope="module")
def encoder(tokenizer_json, llama3_tok):
    return ChatEncoder(llama3_tok, ChatTemplate.for_tokenizer(tokenizer_json, llama3_tok))


def test_ids_equal_hf_apply_chat_template(chats, encoder, tokenizer_json):
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_file=tokenizer_json, chat_template=encoder.template.source, bos_token="<|begin_of_text|>"
    )
    for messages in chats:
        ids, mask = encoder.encode(messages)
        ref = hf.apply_chat_template(messages, tokenize=True)
        # this template always appends an assistant header; ours stops after the last turn's end token
        assert ref[: len(ids)] == ids.tolist()
        assert ids[-1] == 128009 and mask[-1] == 1


def test_mask_is_exactly_assistant_content_and_end_tokens(chats, encoder, llama3_tok):
    for messages in chats:
        ids, mask = encoder.encode(messages)
        want = "".join(m["content"].strip() + "<|eot_id|>" for m in messages if m["role"] == "assistant")
        assert llama3_tok.decode(ids[mask == 1].tolist()) == want
        unmasked = llama3_tok.decode(ids[mask == 0].tolist())
        assert "<|start_header_id|>assistant<|end_header_id|>" in unmasked
        for m in messages:
            if m["role"] == "user":
                assert m["content"].strip() in unmasked


def test_system_turn_and_builtin_template_match_the_tokenizers(llama3_tok, encoder):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": " 4 "},
    ]
    builtin = ChatEncoder(llama3_tok, ChatTemplate(source=LLAMA3_TEMPLATE))
    ids, mask = encoder.encode(messages)
    ids2, mask2 = builtin.encode(messages)
    assert np.array_equal(ids, ids2) and np.array_equal(mask, mask2)
    assert llama3_tok.decode(ids[mask == 1].tolist()) == "4<|eot_id|>"
    packaged = ChatTemplate.for_tokenizer("llama3", llama3_tok)  # the packaged tokenizer_config.json's
    for prompt in (False, True):
        args = dict(messages=messages, bos_token="<|begin_of_text|>", add_generation_prompt=prompt)
        assert packaged.compiled.render(**args) == builtin.template.compiled.render(**args)


@pytest.mark.parametrize(
    "messages, problem",
    [
        ([], "empty_conversation"),
        ([{"role": "system", "content": "x"}], "empty_conversation"),
        ([{"role": "bot", "content": "x"}], "unknown_role"),
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "non_alternating_turns"),
        ([{"role": "assistant", "content": "a"}], "non_alternating_turns"),
        ([{"role": "user", "content": "a"}], "no_assistant_turn"),
        ([{"role": "user", "content": 3}], "malformed_message"),
        ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], None),
    ],
)
def test_conversation_problems(messages, problem):
    assert conversation_problem(messages) == problem


def test_tulu_text_chats_parse():
    text = "<|user|>\nHi there\n<|assistant|>\nHello!\nHow can I help?\n"
    assert parse_tulu_text(text) == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!\nHow can I help?"},
    ]


def test_bad_chat_rows_are_counted_with_file_and_line(tmp_path):
    good = {
        "prompt_id": "p1",
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
    }
    lines = [
        json.dumps(good),
        json.dumps({"messages": []}),
        json.dumps({"messages": [{"role": "robot", "content": "x"}]}),
        json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}),
        json.dumps({"prompt": "no messages"}),
        "{not json",
        json.dumps(good),
    ]
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(lines) + "\n")
    reader = ChatRowsReader(str(path))
    docs = list(reader.run())
    assert [d.id for d in docs] == ["p1", "p1"]
    assert docs[0].metadata["messages"] == good["messages"]
    counts = reader.bad.counts
    assert counts == {
        "empty_conversation": 1,
        "unknown_role": 1,
        "non_alternating_turns": 1,
        "missing_field": 1,
        "malformed_json": 1,
    }
    assert reader.bad.examples["unknown_role"][0]["line"] == 3
    assert reader.bad.examples["unknown_role"][0]["file"].endswith("chat.jsonl")


def test_packed_sft_shards_mask_back_to_the_assistant_messages(tmp_path, corpus, tokenizer_json, llama3_tok):
    from datatrove.executor import LocalPipelineExecutor

    from prolong_data.chat import TokenizeChats
    from prolong_data.inspection import iter_samples
    from prolong_data.mds import MDSShardWriter, finalize_domain
    from prolong_data.packing.steps import PackBestFit
    from prolong_data.verify import verify

    seq_len = 4096
    out = tmp_path / "ultrachat"  # the folder is named after the domain (the contract)
    pipeline = [
        ChatRowsReader(str(corpus_file(corpus, "sft/chat.jsonl")), limit=300),
        TokenizeChats(tokenizer_json),
        PackBestFit(seq_len, pad_id=llama3_tok.eos_id, report_folder=str(out)),
        MDSShardWriter(str(out), "ultrachat", seq_len, with_mask=True),
    ]
    LocalPipelineExecutor(pipeline=pipeline, tasks=1, logging_dir=str(tmp_path / "logs")).run()
    manifest = finalize_domain(out, {"seq_len": seq_len})
    assert verify(out).samples > 0

    rows = [row["messages"] for row in islice(iter_rows(corpus, "sft/chat.jsonl"), 300)]
    expected = sorted(
        "".join(m["content"].strip() + "<|eot_id|>" for m in r if m["role"] == "assistant") for r in rows
    )
    got, padded = [], 0
    for _, _, row in iter_samples(out):
        ids, mask = row["input_ids"], row["mask"]
        for a, b in row["indices"].astype(int):
            if not mask[a:b].any():  # the padding span: only at the end
                assert b == seq_len and np.all(ids[a:b] == llama3_tok.eos_id)
                padded += b - a
                continue
            assert ids[a] == llama3_tok.bos_id, "each conversation span starts with its BOS"
            got.append(llama3_tok.decode(ids[a:b][mask[a:b] == 1].tolist()))
    assert sorted(got) == expected
    assert manifest["packing"]["padded_tokens"] == padded
    assert manifest["packing"]["documents"] == 300
