"""Chat rows for SFT: UltraChat-style `messages` lists, or Tulu-v2 text chats.

One row is one conversation: a datatrove `Document` whose `metadata["messages"]` holds the
turns (`[{"role", "content"}, ...]`, an optional system turn first) and whose text is the chat
in Tulu text form (for filters and dedup). A row that is not a trainable conversation (empty,
an unknown role, turns that do not alternate user/assistant, no assistant turn) is counted
under that reason with its file and line, and skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from prolong_data.chat import TokenizeChats, conversation_problem, parse_tulu_text
from prolong_data.sources.base import document, relative_source
from prolong_data.sources.files import repair_surrogates
from prolong_data.sources.registry import FileSourceConfig, ReaderContext, register_source
from prolong_data.sources.text_rows import TextRowsReader, render_tulu

CHAT_FORMATS = ("messages", "tulu-text")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


class ChatRowsReader(TextRowsReader):
    """JSON lines / parquet chat rows -> one conversation `Document` per row."""

    name = "chat rows"

    def __init__(self, paths, *, chat_format: str = "messages", messages_key: str = "messages", **kwargs):
        super().__init__(paths, **kwargs)
        if chat_format not in CHAT_FORMATS:
            raise ValueError(f"chat_format must be one of {CHAT_FORMATS}, got {chat_format!r}")
        self.chat_format, self.messages_key = chat_format, messages_key

    def row_messages(self, row: dict, unit: str, line: int):
        if self.chat_format == "tulu-text":
            text = row.get(self.text_key)
            if not isinstance(text, str):
                self.bad.add("missing_field", unit, line, f"no string field {self.text_key!r}")
                return None
            return parse_tulu_text(text)
        if self.messages_key not in row:
            self.bad.add("missing_field", unit, line, f"no field {self.messages_key!r}")
            return None
        return row[self.messages_key]

    def row_document(self, row: dict, unit: str, line: int):
        messages = self.row_messages(row, unit, line)
        if messages is None:
            return None
        problem = conversation_problem(messages)
        if problem:
            self.bad.add(problem, unit, line, str(messages)[:120])
            return None
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        if not all(_encodable(m["content"]) for m in messages):  # lone surrogates from `\\ud800` escapes
            if self.utf8 == "drop":
                self.bad.add("invalid_utf8_dropped", unit, line)
                return None
            self.bad.add("invalid_utf8_repaired", unit, line)
            messages = [{**m, "content": repair_surrogates(m["content"])} for m in messages]
        doc_id = row.get(self.id_key) or row.get("prompt_id")
        doc_id = str(doc_id) if doc_id is not None else f"{relative_source(unit)}/{line}"
        return document(render_tulu(messages), doc_id, relative_source(unit, line), messages=messages)


@register_source
@dataclass(kw_only=True)
class ChatSource(FileSourceConfig):
    """`chat`: SFT conversations in JSON lines or parquet rows, rendered with the tokenizer's chat
    template and trained only on assistant tokens; packed whole (`pack: {mode: best_fit}`)."""

    kind: str = "chat"
    chat_format: Literal["messages", "tulu-text"] = "messages"
    """`messages` (UltraChat-style `messages` lists) or `tulu-text` (Tulu-v2 text chats)."""
    text_key: str = "text"
    """`tulu-text`: the field holding the chat text."""
    id_key: str = "id"
    """The field holding a conversation id (file and line when absent)."""

    produces: ClassVar[str] = "chat"
    pack_modes: ClassVar[tuple[str, ...] | None] = ("best_fit",)

    def reader(self, context: ReaderContext) -> ChatRowsReader:
        return ChatRowsReader(
            self.paths,
            glob=self.glob,
            chat_format=self.chat_format,
            text_key=self.text_key,
            id_key=self.id_key,
            max_file_bytes=self.max_file_bytes,
            **context.reader_options(),
        )

    def tokenize_step(self, tokenizer: str) -> TokenizeChats:
        return TokenizeChats(tokenizer)
