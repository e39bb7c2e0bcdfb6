"""Helpers shared by the evaluation tests."""

from __future__ import annotations

import re


def oracle_answer(prompt: str) -> str:
    """Finds the answer in the prompt as a perfect reader would: by the question's key."""
    kv_query = re.findall(r'Key: "([0-9a-f-]{36})"', prompt)
    if "JSON data:" in prompt:
        return re.search(rf'"{kv_query[-1]}": "([^"]+)"', prompt)[1]
    key = re.search(r"special magic (?:numbers?|uuids?) for (\S+) mentioned in the provided text\?", prompt)[
        1
    ]
    return ", ".join(
        re.findall(rf"special magic (?:numbers|uuids) for {re.escape(key)} is: ([0-9a-f-]+)\.", prompt)
    )
