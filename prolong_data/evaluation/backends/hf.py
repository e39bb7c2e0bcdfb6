"""The transformers back end: greedy decoding of one prompt or a left-padded batch, chunked per-token losses."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from prolong_data.evaluation.backends import Backend
from prolong_data.evaluation.errors import EvalUsageError
from prolong_data.hf_tokenizer import load_hf_tokenizer

LOSS_CHUNK = 4096
"""Positions per chunk of the LM head in ``token_losses``: bounds the logits to chunk x vocab floats."""


def load_tokenizer(model: str):
    """The model's own tokenizer (a folder or hub id); a usage error when it cannot be loaded."""
    try:
        return load_hf_tokenizer(model)
    except (OSError, ValueError) as error:
        raise EvalUsageError(f"cannot load --model {model!r}: {_where(model, error)}") from error


def model_max_positions(model: str) -> int | None:
    """The model's ``max_position_embeddings`` (of its text model for multimodal configs), if it states one."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model)
    except (OSError, ValueError) as error:
        raise EvalUsageError(f"cannot load --model {model!r}: {_where(model, error)}") from error
    config = getattr(config, "text_config", None) or config
    return getattr(config, "max_position_embeddings", None)


def _where(model: str, error: Exception) -> str:
    """Why a model could not be loaded, in one line."""
    if Path(model).is_dir():
        return f"the folder has no usable tokenizer or weights ({str(error).splitlines()[0]})"
    return "no such folder here, and it could not be loaded from the Hugging Face hub either"


def pick_device_dtype(device: str, dtype: str):
    """``auto``: CUDA in bf16 when available, else CPU in fp32."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvalUsageError("--device cuda but no CUDA device is visible; use --device cpu")
    if dtype == "auto":
        dtype = "bf16" if device.startswith("cuda") else "fp32"
    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(dtype)
    if torch_dtype is None:
        raise EvalUsageError(f"unknown --dtype {dtype!r}; choose auto, bf16, fp16 or fp32")
    return torch.device(device), torch_dtype


def best_attention(device) -> str:
    """flash-attention 2 on a GPU where it is installed, else PyTorch's SDPA."""
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


class HFBackend(Backend):
    name = "hf"

    def __init__(self, model: str, device: str = "auto", dtype: str = "auto"):
        from transformers import AutoModelForCausalLM

        self.model = model
        self.tokenizer = load_tokenizer(model)
        self.device, self.dtype = pick_device_dtype(device, dtype)
        self.attention = best_attention(self.device)
        try:
            lm = AutoModelForCausalLM.from_pretrained(
                model, dtype=self.dtype, attn_implementation=self.attention
            )
        except (OSError, ValueError) as error:
            raise EvalUsageError(
                f"cannot load --model {model!r} as a causal LM: {_where(model, error)}"
            ) from error
        self.lm = lm.to(self.device).eval()
        self.stop_ids = self._stop_ids()

    def _stop_ids(self) -> list[int]:
        """EOS ids of the generation config and tokenizer, plus end-of-turn tokens of common chat formats."""
        ids = self.lm.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        vocab = self.tokenizer.get_vocab()
        ids.update(vocab[t] for t in ("<|eot_id|>", "<|im_end|>", "<|end|>") if t in vocab)
        return sorted(ids)

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "attention": self.attention,
        }

    def generate(self, ids: list[int], max_new_tokens: int) -> str:
        return self.generate_batch([ids], max_new_tokens)[0]

    def generate_batch(self, prompts: list[list[int]], max_new_tokens: int) -> list[str]:
        """Greedy continuations of a batch: prompts left-padded to the longest, padding masked out."""
        import torch

        width = max(len(ids) for ids in prompts)
        pad = self.stop_ids[0] if self.stop_ids else 0
        x = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=self.device)  # (B, T)
        mask = torch.tensor(
            [[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=self.device
        )  # (B, T)
        with torch.inference_mode():
            out = self.lm.generate(
                input_ids=x,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=self.stop_ids,
                pad_token_id=pad,
            )  # (B, T + new)
        return [self.tokenizer.decode(row[width:], skip_special_tokens=True) for row in out]

    def token_losses(self, ids: list[int]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.tensor([ids], device=self.device)
        targets = x[0, 1:]
        softcap = getattr(self.lm.config, "final_logit_softcapping", None)
        with torch.inference_mode():
            hidden = self.lm.get_decoder()(input_ids=x, use_cache=False).last_hidden_state[0, :-1]  # (T-1, D)
            head = self.lm.get_output_embeddings()
            losses = []
            for start in range(0, hidden.shape[0], LOSS_CHUNK):
                logits = head(hidden[start : start + LOSS_CHUNK]).float()  # (chunk, V)
                if softcap:
                    logits = torch.tanh(logits / softcap) * softcap
                losses.append(F.cross_entropy(logits, targets[start : start + LOSS_CHUNK], reduction="none"))
        return torch.cat(losses).double().cpu().numpy()
