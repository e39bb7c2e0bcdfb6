"""Helpers shared by the evaluation tests."""

from __future__ import annotations

import re
from collections import Counter


def oracle_answer(prompt: str) -> str:
    """Finds the answer in the prompt as a perfect reader would (by the question's key, by following
    the variable chain, by counting words)."""
    if "JSON data:" in prompt:
        kv_query = re.findall(r'Key: "([0-9a-f-]{36})"', prompt)
        return re.search(rf'"{kv_query[-1]}": "([^"]+)"', prompt)[1]
    if "chain(s) of variable assignment" in prompt:
        return " ".join(variable_chain(prompt))
    if "numbered list of words" in prompt:
        listed = last_list(prompt)
        return " ".join(w for w, _ in Counter(listed).most_common(10))
    if "coded text" in prompt:
        text = prompt.rsplit("Find the three most frequently appeared coded words. ", 1)[1].split(
            "\nQuestion:"
        )[0]
        counts = Counter(w for w in text.split() if w != "...")
        return " ".join(w for w, _ in counts.most_common(3))
    asked = re.search(
        r"special magic (?:numbers?|uuids?) for (.+?) mentioned in the provided text\?", prompt
    )[1]
    keys = [k for k in re.split(r", and |, ", asked) if k]
    found = []
    for key in keys:
        found += re.findall(
            rf"special magic (?:numbers|uuids) for {re.escape(key)} is: ([0-9a-f-]+)\.", prompt
        )
    return ", ".join(found)


def variable_chain(prompt: str) -> list[str]:
    """The names assigned the queried value in the last chain of the prompt."""
    value = re.findall(r"assigned the value (\d+) in the text above", prompt)[-1]
    body = prompt.rsplit("Memorize and track", 1)[1]
    names = re.findall(rf"VAR ([A-Z]+) = {value}\b", body)
    changed = True
    while changed:
        changed = False
        for new, old in re.findall(r"VAR ([A-Z]+) = VAR ([A-Z]+)", body):
            if old in names and new not in names:
                names.append(new)
                changed = True
    return names


def last_list(prompt: str) -> list[str]:
    """The words of the last numbered list in the prompt."""
    body = prompt.rsplit("Memorize the ones that appear most often.\n", 1)[1].split("\nQuestion:")[0]
    return re.findall(r"\d+\. (\S+)", body)
