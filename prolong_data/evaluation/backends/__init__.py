"""Back ends: what runs the model. All of them take token ids, so every back end sees the same prompts.

* ``hf`` (``evaluation/backends/hf.py``): transformers; bf16 with flash-attention 2 when installed,
  else PyTorch SDPA, on a GPU; fp32 SDPA on a CPU.
* ``vllm`` (``evaluation/backends/vllm.py``): vLLM when installed (``pip install 'prolong-data[eval-vllm]'``).
* ``Reader`` (below): a Python function of the prompt text, for tests and custom readers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from prolong_data.evaluation.errors import EvalUsageError

BACKENDS = ("hf", "vllm")


class Backend:
    """What the runner needs from a model."""

    name: str = "backend"
    model: str = ""
    """The evaluated model (path or hub id), as recorded in the results."""
    tokenizer = None
    """The model's Hugging Face tokenizer: prompts are built and counted with it."""

    def generate(self, ids: list[int], max_new_tokens: int) -> str:
        """Greedy continuation of ``ids``, decoded without special tokens."""
        raise NotImplementedError

    def generate_batch(self, prompts: list[list[int]], max_new_tokens: int) -> list[str]:
        """Greedy continuations of several prompts at once (one at a time unless a back end batches)."""
        return [self.generate(ids, max_new_tokens) for ids in prompts]

    def token_losses(self, ids: list[int]) -> np.ndarray:
        """Negative log-likelihood (nats) of each of ``ids[1:]`` given the tokens before it, float64."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Settings worth recording next to the results (device, dtype, attention)."""
        return {"backend": self.name}


class Reader(Backend):
    """A back end that answers with ``fn(prompt_text)``: an oracle or constant reader in tests."""

    name = "reader"

    def __init__(self, fn: Callable[[str], str], tokenizer, model: str = "reader"):
        self.fn, self.tokenizer, self.model = fn, tokenizer, model

    def generate(self, ids: list[int], max_new_tokens: int) -> str:
        return self.fn(self.tokenizer.decode(ids, skip_special_tokens=False))


def load_backend(
    name: str, model: str, *, device: str = "auto", dtype: str = "auto", max_length: int = 0
) -> Backend:
    """The back end ``name`` with ``model`` loaded (``max_length``: the longest sequence it must take)."""
    if name == "hf":
        from prolong_data.evaluation.backends.hf import HFBackend

        return HFBackend(model, device=device, dtype=dtype)
    if name == "vllm":
        from prolong_data.evaluation.backends.vllm import VLLMBackend

        return VLLMBackend(model, dtype=dtype, max_length=max_length)
    raise EvalUsageError(f"unknown back end {name!r}; choose one of {', '.join(BACKENDS)}")
