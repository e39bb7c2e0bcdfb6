"""The model: a Hugging Face causal LM with our attention and loss, plus loading and HF export.

The decoder is transformers' own (Llama, Qwen2, Mistral, ... anything with ``get_decoder()`` and
``get_output_embeddings()``); only its attention function is swapped, by name, for the
document-masked one of ``trainer/attention.py``. The LM head is applied by the chunked loss, so
the full logits are never built during training.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from prolong_data.assets import llama3_folder
from prolong_data.chat import LLAMA3_TEMPLATE
from prolong_data.hf_tokenizer import load_hf_tokenizer
from trainer.attention import DocMask, register_attention
from trainer.config import ModelConfig, TinyConfig
from trainer.loss import chunked_cross_entropy_sum

LLAMA3_BOS, LLAMA3_EOS = 128000, 128001


class CausalLMWithLoss(nn.Module):
    """Wraps a HF causal LM; ``forward`` returns the summed token loss of one micro-batch."""

    def __init__(self, lm: nn.Module, loss_chunk_size: int = 4096):
        super().__init__()
        self.lm = lm
        self.loss_chunk_size = loss_chunk_size

    def hidden_states(self, input_ids, position_ids, doc_mask: DocMask) -> torch.Tensor:
        """(B, T) token ids -> (B, T, D) final hidden states, attention confined to documents."""
        out = self.lm.get_decoder()(
            input_ids=input_ids, position_ids=position_ids, doc_mask=doc_mask, use_cache=False
        )
        return out.last_hidden_state

    def forward(self, input_ids, position_ids, labels, doc_mask: DocMask) -> torch.Tensor:
        """Sum of the cross-entropies of all target tokens (labels != -100) of the micro-batch."""
        hidden = self.hidden_states(input_ids, position_ids, doc_mask)  # (B, T, D)
        head = self.lm.get_output_embeddings().weight  # (V, D)
        return chunked_cross_entropy_sum(hidden.flatten(0, 1), head, labels.flatten(), self.loss_chunk_size)

    def logits(self, input_ids, position_ids, doc_mask: DocMask) -> torch.Tensor:
        """(B, T, V) logits, for tests and evaluation at short lengths only."""
        return self.lm.get_output_embeddings()(self.hidden_states(input_ids, position_ids, doc_mask))


def tiny_llama_config(tiny: TinyConfig, seq_len: int, rope_theta: float | None):
    """A small LlamaConfig with the Llama-3 vocabulary and special tokens."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=tiny.vocab_size,
        hidden_size=tiny.hidden_size,
        intermediate_size=tiny.intermediate_size,
        num_hidden_layers=tiny.num_layers,
        num_attention_heads=tiny.num_heads,
        num_key_value_heads=tiny.num_kv_heads,
        max_position_embeddings=seq_len,
        rope_theta=rope_theta or 500000.0,
        bos_token_id=LLAMA3_BOS,
        eos_token_id=LLAMA3_EOS,
        tie_word_embeddings=False,
        attention_dropout=0.0,
    )


def load_lm(
    model: ModelConfig,
    tiny: TinyConfig,
    seq_len: int,
    *,
    weights: bool = True,
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """The HF causal LM on CPU in ``dtype``, with this stage's RoPE settings and our attention.

    ``weights=False`` builds the same model from ``model.path``'s config on the meta device, with
    no memory behind it, for ranks that receive the weights from rank 0 (see
    ``trainer.parallelize.load_from_rank0``). The tiny model is always built in full (it is small,
    and every rank draws the same random init).
    """
    from transformers import AutoModelForCausalLM

    attn = register_attention()
    if model.tiny:
        config = tiny_llama_config(tiny, seq_len, model.rope_theta)
        config._attn_implementation = attn
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(tiny.init_seed)
            return AutoModelForCausalLM.from_config(config, attn_implementation=attn, dtype=dtype)
    config = load_hf_config(model.path)
    set_rope(config, model.rope_theta, model.rope_scaling)
    config.max_position_embeddings = max(config.max_position_embeddings, seq_len)
    if not weights:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, attn_implementation=attn, dtype=torch.float32)
    return AutoModelForCausalLM.from_pretrained(
        model.path, config=config, attn_implementation=attn, dtype=dtype
    )


def load_hf_config(path: str):
    """``AutoConfig`` of a local folder or hub id; a ValueError that says what to do when it fails."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as error:  # missing folder, bad hub id, gated model, no network
        if _is_gated(error):
            raise ValueError(
                f"model.path={path!r} is a gated model on the Hugging Face hub: request access at "
                f"https://huggingface.co/{path}, then log in on this machine with `huggingface-cli login` "
                "(or `hf auth login`, or export HF_TOKEN=<a read token>) and run again; or download it "
                "elsewhere and pass --model.path=<local folder>"
            ) from None
        raise ValueError(
            f"cannot load model.path={path!r} ({error}); a stage that starts from the previous stage's "
            "export needs that stage run first (make train-64k writes runs/stage1-64k/hf, make train-512k "
            "writes runs/stage2-512k/hf), or pass --model.path=<HF folder or hub id>"
        ) from None


def _is_gated(error: BaseException) -> bool:
    """Whether a hub error (or what it wraps) says the repository is gated."""
    while error is not None:
        if type(error).__name__ == "GatedRepoError" or "gated repo" in str(error).lower():
            return True
        error = error.__cause__ or error.__context__
    return False


def checkpoint_dtype(path: str) -> torch.dtype:
    """The dtype a checkpoint's weights are stored in (its config's ``torch_dtype``/``dtype``)."""
    config = load_hf_config(path)
    stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None) or torch.float32
    return getattr(torch, stored) if isinstance(stored, str) else stored


def rope_scaling_of(config) -> dict | None:
    """The checkpoint's RoPE scaling (``{"rope_type": "llama3", "factor": 8.0, ...}``), or None for
    plain RoPE. transformers 4.x keeps it in ``rope_scaling``, 5.x in ``rope_parameters``."""
    params = getattr(config, "rope_parameters", None)
    if params is None:
        params = getattr(config, "rope_scaling", None)
    if not params:
        return None
    kind = params.get("rope_type", params.get("type", "default"))
    return None if kind == "default" else dict(params)


def rope_theta_of(config) -> float:
    """The RoPE base of an HF config (``rope_theta`` in transformers 4.x, inside ``rope_parameters``
    in 5.x)."""
    params = getattr(config, "rope_parameters", None)
    return float(params["rope_theta"] if params else config.rope_theta)


def set_rope(config, rope_theta: float | None, scaling_policy: str | None) -> None:
    """Applies a stage's ``rope_theta`` to an HF config, keeping or dropping its RoPE scaling as
    ``scaling_policy`` says (``model.rope_scaling``), on transformers 4.x and 5.x alike."""
    if rope_theta is None:
        return
    scaling = rope_scaling_of(config)
    if scaling is not None and scaling_policy is None:
        raise ValueError(
            f"the checkpoint scales RoPE ({scaling.get('rope_type', scaling.get('type'))}: {scaling}) and this "
            f"stage sets model.rope_theta={rope_theta:g}; say what to do with the scaling: "
            "--model.rope_scaling=keep (scale on top of the new base) or --model.rope_scaling=drop "
            "(plain RoPE with the new base, as ProLong's Llama-3 stages have)"
        )
    keep = scaling is not None and scaling_policy == "keep"
    if hasattr(config, "rope_parameters"):  # transformers 5
        params = dict(scaling) if keep else {"rope_type": "default"}
        params["rope_theta"] = rope_theta
        config.rope_parameters = params
    else:  # transformers 4
        config.rope_theta = rope_theta
        if not keep:
            config.rope_scaling = None


def load_tokenizer(model: ModelConfig):
    """The tokenizer saved with the export (``model.tokenizer``, else ``model.path``).

    ``llama3`` is the Llama-3 tokenizer packaged in ``prolong_data`` (``llama3_folder``).
    """
    source = model.tokenizer or (None if model.tiny else model.path)
    if source is None:
        raise ValueError(
            "the tiny model has no tokenizer of its own; pass --model.tokenizer=llama3 or a folder"
        )
    if source == "llama3":
        source = llama3_folder()
    return load_hf_tokenizer(source)


def export_hf(
    full_state_dict: dict, hf_config, tokenizer, out_dir: str | Path, *, chat: bool = False
) -> Path:
    """Writes a from_pretrained-loadable folder: safetensors weights, config.json, tokenizer files.

    ``full_state_dict`` holds the unsharded weights of ``CausalLMWithLoss`` (keys start with
    ``lm.``); they are written in the checkpoint's own dtype (fp32 for the tiny model). ``chat``:
    the stage trained on chats (SFT), so the export gets the Llama-3 chat template when its
    tokenizer has none; a base stage's export keeps its tokenizer as it is, since evaluation reads
    a chat template as "this is an instruct model".
    """
    from huggingface_hub import save_torch_state_dict

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dtype = getattr(hf_config, "dtype", None) or torch.float32
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    weights = {
        key.removeprefix("lm."): tensor.detach().to("cpu", dtype).contiguous()
        for key, tensor in full_state_dict.items()
    }
    save_torch_state_dict(weights, out, max_shard_size="5GB")
    config = copy.deepcopy(hf_config)
    config._attn_implementation = None  # loaders pick their own attention
    config.dtype = dtype
    config.save_pretrained(out)
    if tokenizer is not None:
        if chat and not getattr(tokenizer, "chat_template", None):  # SFT models need one to be used
            tokenizer.chat_template = LLAMA3_TEMPLATE
        tokenizer.save_pretrained(out)
    return out
