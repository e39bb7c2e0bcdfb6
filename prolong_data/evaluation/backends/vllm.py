"""The vLLM back end: the same token ids and greedy decoding as the transformers one.

Per-token losses come from vLLM's prompt log-probabilities (``prompt_logprobs=0`` returns the
log-probability of each prompt token). Only the import guard of this module is tested on machines
without vLLM.
"""

from __future__ import annotations

import numpy as np

from prolong_data.evaluation.backends import Backend
from prolong_data.evaluation.errors import EvalUsageError


def import_vllm():
    """The ``vllm`` module, or a usage error saying how to install it."""
    try:
        import vllm
    except ImportError as error:
        raise EvalUsageError(
            "the vllm back end needs vLLM, which is not installed: pip install 'prolong-data[eval-vllm]' "
            "(GPU machines only), or use --backend hf"
        ) from error
    return vllm


class VLLMBackend(Backend):
    name = "vllm"

    def __init__(self, model: str, dtype: str = "auto", max_length: int = 0):
        vllm = import_vllm()
        self._sampling = vllm.SamplingParams
        kwargs = {"max_model_len": max_length} if max_length else {}
        vllm_dtype = {"auto": "auto", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[dtype]
        self.model = model
        self.llm = vllm.LLM(model=model, dtype=vllm_dtype, enable_prefix_caching=False, **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.dtype = vllm_dtype

    def describe(self) -> dict:
        return {"backend": self.name, "dtype": self.dtype}

    def generate(self, ids: list[int], max_new_tokens: int) -> str:
        params = self._sampling(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True)
        out = self.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)
        return out[0].outputs[0].text

    def generate_batch(self, prompts: list[list[int]], max_new_tokens: int) -> list[str]:
        """All prompts in one call: vLLM schedules them in its continuous batches."""
        params = self._sampling(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True)
        out = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
        return [o.outputs[0].text for o in out]

    def token_losses(self, ids: list[int]) -> np.ndarray:
        params = self._sampling(temperature=0.0, max_tokens=1, prompt_logprobs=0)
        out = self.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)
        logprobs = out[0].prompt_logprobs  # None for the first token, then {token id: Logprob}
        return np.array([-logprobs[i][tok].logprob for i, tok in enumerate(ids) if i > 0], dtype=np.float64)
