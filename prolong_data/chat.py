"""Chats for SFT: validate conversations, apply the chat template, and mark what is trained on.

The token ids are exactly what `tokenizer.apply_chat_template(messages)` would give: the whole
conversation is rendered to text by the tokenizer's own template (`chat_template` in
`tokenizer_config.json`; Llama-3-Instruct's headers and `<|eot_id|>`), or by the built-in
Llama-3 template when the tokenizer has none, then tokenized in one piece with the template's
special tokens recognised.

The loss mask is 1 exactly on the tokens of the assistant's content and on the token that ends
the assistant's turn (the first token after the content, `<|eot_id|>` for Llama-3), 0 on system
and user turns and on template headers. Character offsets of the tokens decide which is which.
Template text after the last assistant turn's end token (a generation prompt that some templates
always append) is cut off: nothing after it is trained on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from datatrove.pipeline.base import PipelineStep

from prolong_data.assets import llama3_folder
from prolong_data.contract import TOKEN_DTYPE
from prolong_data.tokenization import LoadedTokenizer, TokenizedDocument, load_tokenizer

ROLES = ("system", "user", "assistant")

LLAMA3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
"""Llama-3-Instruct's chat format, used when a tokenizer ships no chat template."""

_MARK = "\x00\x01chat-content-{}\x01\x00"


def conversation_problem(messages) -> str | None:
    """Why `messages` is not a trainable conversation (a bad-input reason), or None if it is.

    A trainable conversation is an optional system turn, then user and assistant turns
    alternating, starting with the user, with at least one assistant turn; every turn has a
    known role and string content.
    """
    if not isinstance(messages, list) or not messages:
        return "empty_conversation"
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return "malformed_message"
        if m.get("role") not in ROLES:
            return "unknown_role"
    turns = messages[1:] if messages[0]["role"] == "system" else messages
    if not turns:
        return "empty_conversation"
    for i, m in enumerate(turns):
        if m["role"] != ("user" if i % 2 == 0 else "assistant"):
            return "non_alternating_turns"
    if not any(m["role"] == "assistant" for m in turns):
        return "no_assistant_turn"
    return None


def parse_tulu_text(text: str) -> list[dict]:
    """Messages of a Tulu-v2 text chat (`<|user|>\\n...\\n<|assistant|>\\n...`); [] if none."""
    messages, role, lines = [], None, []
    for line in text.split("\n"):
        tag = line.strip()
        if tag in ("<|system|>", "<|user|>", "<|assistant|>"):
            if role is not None:
                messages.append({"role": role, "content": "\n".join(lines).strip()})
            role, lines = tag[2:-2], []
        elif role is not None:
            lines.append(line)
    if role is not None:
        messages.append({"role": role, "content": "\n".join(lines).strip()})
    return messages


@dataclass
class ChatTemplate:
    """A Jinja chat template plus the tokens it refers to."""

    source: str
    """The Jinja text of the template."""
    bos_token: str = "<|begin_of_text|>"
    eos_token: str = "<|end_of_text|>"

    @classmethod
    def for_tokenizer(cls, spec: str, tok: LoadedTokenizer) -> ChatTemplate:
        """The tokenizer's own template (from `tokenizer_config.json` beside it), else Llama-3's.

        `llama3` takes the packaged tokenizer_config.json's template (Llama-3-Instruct's).
        """
        path = llama3_folder() if spec == "llama3" else Path(spec)
        config = (path if path.is_dir() else path.parent) / "tokenizer_config.json"
        bos = tok.hf.id_to_token(tok.bos_id)
        eos = tok.hf.id_to_token(tok.eos_id)
        if config.is_file():
            data = json.loads(config.read_text())
            template = data.get("chat_template")
            if isinstance(template, list):  # named templates: take "default"
                template = next((t["template"] for t in template if t.get("name") == "default"), None)
            if isinstance(template, str):
                return cls(source=template, bos_token=bos, eos_token=eos)
        return cls(source=LLAMA3_TEMPLATE, bos_token=bos, eos_token=eos)

    @cached_property
    def compiled(self):
        """The Jinja template, compiled once (rendering runs once per conversation)."""
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise
        return env.from_string(self.source)

    def render(self, messages: list[dict]) -> str:
        return self.compiled.render(
            messages=messages, bos_token=self.bos_token, eos_token=self.eos_token, add_generation_prompt=False
        )

    def render_with_spans(self, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
        """The rendered text and the `[start, end)` character spans of each assistant content.

        Contents are first rendered as unique markers to find where the template puts them
        (and whether it trims them), then the real contents are put in their place.
        """
        marked = [{**m, "content": _MARK.format(i)} for i, m in enumerate(messages)]
        skeleton = self.render(marked)
        trims = "trim" in self.source
        text, spans, pos = [], [], 0
        for i, m in enumerate(messages):
            mark = _MARK.format(i)
            at = skeleton.find(mark, pos)
            if at < 0:
                raise ValueError(f"the chat template dropped message {i}; cannot place its loss mask")
            text.append(skeleton[pos:at])
            content = m["content"].strip() if trims else m["content"]
            start = sum(len(t) for t in text)
            text.append(content)
            if m["role"] == "assistant":
                spans.append((start, start + len(content)))
            pos = at + len(mark)
        text.append(skeleton[pos:])
        return "".join(text), spans


def _raise(message: str):
    raise ValueError(f"chat template: {message}")


class ChatEncoder:
    """Turns conversations into (token ids, loss mask) with a template and a tokenizer."""

    def __init__(self, tok: LoadedTokenizer, template: ChatTemplate):
        from tokenizers import Tokenizer

        self.tok, self.template = tok, template
        self.hf = Tokenizer.from_str(tok.hf.to_str())  # own copy: template special tokens are special
        self.hf.encode_special_tokens = False

    def encode(self, messages: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, mask), both (n,), for one valid conversation."""
        text, spans = self.template.render_with_spans(messages)
        enc = self.hf.encode(text, add_special_tokens=False)
        ids = np.asarray(enc.ids, TOKEN_DTYPE)
        starts = np.asarray([s for s, _ in enc.offsets], np.int64)
        ends = np.asarray([e for _, e in enc.offsets], np.int64)
        mask = np.zeros(len(ids), np.uint8)
        last = 0
        for a, b in spans:
            inside = (starts < b) & (ends > a)
            mask |= inside.astype(np.uint8)
            after = np.nonzero(starts >= b)[0]
            if len(after):
                mask[after[0]] = 1  # the token that ends the assistant's turn
                last = after[0] + 1
            else:
                last = len(ids)
        return ids[:last], mask[:last]


class TokenizeChats(PipelineStep):
    """datatrove step: chat `Document`s (`metadata["messages"]`) in, `TokenizedDocument`s with masks out.

    The conversations come from `ChatRowsReader`, which checked each one (`conversation_problem`)
    and counted and skipped the ones that are not trainable. Counts (`conversations`, `tokens`,
    `trained_tokens`) are kept in plain integers and reported once, when the task ends.
    """

    name = "chat template + loss mask"
    type = "🔢 - TOKENIZER"

    def __init__(self, tokenizer: str):
        super().__init__()
        self.tokenizer = tokenizer

    def run(self, data, rank: int = 0, world_size: int = 1) -> Iterator[TokenizedDocument]:
        tok = load_tokenizer(self.tokenizer)
        encoder = ChatEncoder(tok, ChatTemplate.for_tokenizer(self.tokenizer, tok))
        counts = {"conversations": 0, "tokens": 0, "trained_tokens": 0}
        try:
            for doc in data:
                ids, mask = encoder.encode(doc.metadata["messages"])
                counts["conversations"] += 1
                counts["tokens"] += len(ids)
                counts["trained_tokens"] += int(mask.sum())
                yield TokenizedDocument(
                    id=doc.id, tokens=ids, source=str(doc.metadata.get("source", "")), mask=mask
                )
        finally:
            for key, value in counts.items():
                if value:
                    self.stat_update(key, value=value)
