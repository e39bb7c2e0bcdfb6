"""Loading a Hugging Face tokenizer folder as saved, without transformers' false regex alarm.

transformers 4.57.3 to 4.57.6 warn "incorrect regex pattern ... fix_mistral_regex=True" for every
local folder whose config.json they did not write themselves before 4.57.3, Llama-3 exports
included; the patch it asks for would change Llama-3's ids (digits one by one instead of up to
three). Saying ``fix_mistral_regex=False`` for a folder whose config.json names no Mistral model
keeps the tokenizer as saved and skips the alarm (docs/tokenizers.md). The trainer and
``prolong-data eval`` load tokenizers through ``load_hf_tokenizer``.
"""

from __future__ import annotations

import json
from pathlib import Path

MISTRAL_TYPES = ("mistral", "mistral3", "voxtral", "ministral", "pixtral")


def no_mistral_regex_patch(source) -> dict:
    """``{"fix_mistral_regex": False}`` for a local folder whose config.json names no Mistral model, else ``{}``."""
    config = Path(source) / "config.json"
    if not config.is_file():
        return {}
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except (OSError, ValueError):
        return {}
    return {} if model_type in MISTRAL_TYPES else {"fix_mistral_regex": False}


def load_hf_tokenizer(source):
    """``AutoTokenizer.from_pretrained(source)`` (a folder or hub id) without the false regex alarm."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, **no_mistral_regex_patch(source))
    tokenizer.init_kwargs.pop("fix_mistral_regex", None)  # not written into exports
    return tokenizer
