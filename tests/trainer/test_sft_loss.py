"""SFT: the trainer's loss over a packed chat batch equals a loss computed by hand, per
conversation, over the assistant tokens only."""

from __future__ import annotations

from itertools import islice

import numpy as np
import torch
from corpus_files import iter_rows

from prolong_data.chat import ChatEncoder, ChatTemplate
from prolong_data.packing import BFDPacker
from trainer.attention import DocMask
from trainer.config import ModelConfig, TinyConfig
from trainer.data import collate
from trainer.model import CausalLMWithLoss, load_lm

SEQ_LEN = 1024


def packed_chats(corpus, tokenizer_json, llama3_tok, n=24):
    encoder = ChatEncoder(llama3_tok, ChatTemplate.for_tokenizer(tokenizer_json, llama3_tok))
    convs = [encoder.encode(row["messages"]) for row in islice(iter_rows(corpus, "sft/chat.jsonl"), n)]
    packer = BFDPacker(SEQ_LEN, pad_id=llama3_tok.eos_id)
    seqs = [s for ids, mask in convs for s in packer.add(ids, mask)] + list(packer.finish())
    return seqs, convs


def test_packed_sft_loss_equals_per_conversation_assistant_only_loss(corpus, tokenizer_json, llama3_tok):
    from transformers import AutoModelForCausalLM

    seqs, convs = packed_chats(corpus, tokenizer_json, llama3_tok)
    assert len(seqs) >= 2
    tiny = TinyConfig(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64)
    lm = load_lm(ModelConfig(tiny=True, attention="sdpa_docs"), tiny, SEQ_LEN)
    model = CausalLMWithLoss(lm, loss_chunk_size=300)
    batch = collate([{"input_ids": s.input_ids, "indices": s.indices, "mask": s.mask} for s in seqs[:2]])
    doc_mask = DocMask.from_cu_seqlens(batch["cu_seqlens"], torch.device("cpu"), "sdpa_docs")
    with torch.no_grad():
        got = model(batch["input_ids"], batch["position_ids"], batch["labels"], doc_mask)
    targets = int((batch["labels"] != -100).sum())

    # by hand: each conversation alone, plain HF attention, loss where the next token is masked in
    reference = AutoModelForCausalLM.from_config(lm.config, attn_implementation="eager", dtype=torch.float32)
    reference.load_state_dict(lm.state_dict())
    by_first_tokens = {tuple(ids[:64].tolist()) + (len(ids),): (ids, mask) for ids, mask in convs}
    want, count = 0.0, 0
    for seq in seqs[:2]:
        for a, b in seq.indices.astype(int):
            if not seq.mask[a:b].any():
                continue  # the padding span
            ids, mask = by_first_tokens[tuple(seq.input_ids[a : a + 64].tolist()) + (b - a,)]
            with torch.no_grad():
                logits = reference(torch.as_tensor(ids[None].astype(np.int64))).logits[0]  # (L, V)
            trained = torch.as_tensor(mask[1:].astype(bool))  # position t predicts token t + 1
            nll = torch.nn.functional.cross_entropy(
                logits[:-1], torch.as_tensor(ids[1:].astype(np.int64)), reduction="none"
            )
            want += float(nll[trained].sum())
            count += int(trained.sum())
    assert targets == count
    assert abs(float(got) - want) <= 1e-4 * max(1.0, abs(want))


def test_sft_config_carries_the_prolong_sft_values():
    from trainer.config import load_config

    cfg = load_config("trainer/configs/sft.yaml", [], smoke=False)
    assert (cfg.optim.lr, cfg.optim.warmup_fraction, cfg.optim.min_lr_ratio) == (2e-5, 0.05, 0.1)
    assert (cfg.train.steps, cfg.train.tokens_per_step, cfg.data.seq_len) == (250, 4 * 2**20, 65536)
    assert cfg.model.path == "runs/stage2-512k/hf" and cfg.model.rope_theta is None  # inherited
    assert cfg.data.apply_masks  # SFT trains on the assistant tokens only
    smoke = load_config("trainer/configs/sft.yaml", ["--model.path=elsewhere"], smoke=True)
    assert smoke.data.mixture == "data/shards/sft-demo/mixture.json" and smoke.model.path == "elsewhere"


def test_an_sft_export_adds_the_llama3_chat_template_and_loads_back(tmp_path, tokenizer_json):
    import pytest
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from prolong_data.chat import LLAMA3_TEMPLATE
    from trainer.model import export_hf
    from trainer.train import check_export_loads

    tiny = TinyConfig(hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=32)
    lm = load_lm(ModelConfig(tiny=True, attention="sdpa_docs"), tiny, 64)
    plain = PreTrainedTokenizerFast(tokenizer_file=tokenizer_json, bos_token="<|begin_of_text|>")
    assert not plain.chat_template
    state = {f"lm.{k}": v for k, v in lm.state_dict().items()}
    base = export_hf(state, lm.config, plain, tmp_path / "base")
    assert not AutoTokenizer.from_pretrained(base).chat_template  # a base stage stays base for eval
    out = export_hf(state, lm.config, plain, tmp_path / "hf", chat=True)
    assert AutoTokenizer.from_pretrained(out).chat_template == LLAMA3_TEMPLATE
    check_export_loads(out, state)
    state["lm.lm_head.weight"] = state["lm.lm_head.weight"] + 1
    with pytest.raises(AssertionError, match="differs from the trained model"):
        check_export_loads(out, state)
