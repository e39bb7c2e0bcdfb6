"""`prolong-data preview`: the first documents of a recipe's domain, as the build would tokenize them.

    prolong-data preview --recipe demo --domain thestackv1_concat_by_repo-65536 [--limit 10]
        [--out FILE.jsonl | -] [--tokens] [--corpus PATH] [--FIELD=VALUE ...]

Runs the domain's sources, text filters, repository join and deduplication as the recipe
configures them, and writes the first `--limit` documents, in the order a one-task build
(`--tasks 1`) tokenizes them, as JSON lines `{"id", "text", "tokens"?, "meta"}` (`tokens`: the
document's token count with BOS/EOS, with `--tokens`). Chat documents are the conversation
rendered by the tokenizer's chat template, with `meta.assistant_spans`, the `[start, end)`
characters trained on. Nothing is tokenized into shards and no build folder is written or read;
reading stops once the documents are out (a domain that joins repositories from rows reads them
all first). Exit status: 0 written; 2 a user error (the message says what to fix).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterator

import orjson
from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

from pipelines.build import dedup_steps, source_steps
from pipelines.executors import restore_logs, route_logs
from pipelines.recipe import DomainConfig, Recipe, load_recipe
from prolong_data.chat import ChatTemplate
from prolong_data.config import parse_overrides
from prolong_data.sources import SourcePathError
from prolong_data.tokenization import load_tokenizer


class PreviewError(ValueError):
    """A preview that cannot run; the message says what to fix."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `preview` command on the `prolong-data` sub-command parser."""
    p = subparsers.add_parser(
        "preview",
        help="the first documents of a recipe's domain as JSON lines, before tokenizing (no build folder)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # an unknown flag is a recipe override, never a prefix of a known one
    )
    p.add_argument("--recipe", required=True, help="a recipe name (pipelines/recipes/*.yaml) or a YAML file")
    p.add_argument("--domain", required=True, help="the domain to preview (its `name` in the recipe)")
    p.add_argument("--limit", type=int, default=10, help="how many documents (default 10)")
    p.add_argument("--out", default="-", help="a .jsonl file to write, or - for standard output (default)")
    p.add_argument(
        "--tokens", action="store_true", help="add each document's token count (loads the tokenizer)"
    )
    p.add_argument("--corpus", default=None, help="folder substituted for {corpus} in the recipe")
    p.set_defaults(func=run, takes_overrides=True)
    return p


def find_domain(recipe: Recipe, name: str) -> DomainConfig:
    """The domain called `name`, with sources of text or chats; `PreviewError` otherwise."""
    domain = next((d for d in recipe.domains if d.name == name), None)
    if domain is None:
        raise PreviewError(
            f"recipe {recipe.name} has no domain {name!r}; its domains: {[d.name for d in recipe.domains]}"
        )
    if not domain.sources:
        raise PreviewError(f"domain {name} of recipe {recipe.name} has no sources: nothing to preview")
    if domain.produces == "tokens":
        raise PreviewError(
            f"domain {name} reads token ids already (`tokenized` sources): use "
            "`prolong-data inspect --sample N` on its shards instead"
        )
    return domain


def preview_steps(recipe: Recipe, domain: DomainConfig) -> list[PipelineStep]:
    """What the build runs on the domain's documents before tokenizing: readers and text filters,
    the kind's grouping steps (joining repositories), then deduplication; nothing is written."""
    steps = source_steps(recipe, domain, None)
    steps += type(domain.sources[0]).grouping_steps(domain.sources)
    steps += dedup_steps(domain, None)
    return steps


def preview_documents(recipe: Recipe, domain: DomainConfig, limit: int) -> list[Document]:
    """The first `limit` documents of `domain` in one-task build order; reading stops there."""
    data: Iterator[Document] | None = None
    for step in preview_steps(recipe, domain):
        data = step.run(data, 0, 1)
    documents = list(itertools.islice(data or iter(()), limit))
    if hasattr(data, "close"):
        data.close()  # stop the readers now
    return documents


def preview_rows(recipe: Recipe, domain: DomainConfig, documents: list[Document], tokens: bool) -> list[dict]:
    """The JSON rows of `documents`: chats rendered with their assistant spans, token counts
    from the domain's own tokenize step when `tokens`."""
    counts = token_counts(recipe, domain, documents) if tokens else None
    template = chat_template(recipe) if domain.produces == "chat" else None
    rows = []
    for i, doc in enumerate(documents):
        meta = dict(doc.metadata)
        text = doc.text
        if template is not None:
            text, spans = template.render_with_spans(meta.pop("messages"))
            meta["assistant_spans"] = [list(span) for span in spans]
        row = {"id": doc.id, "text": text}
        if counts is not None:
            row["tokens"] = counts[i]
        row["meta"] = meta
        rows.append(row)
    return rows


def token_counts(recipe: Recipe, domain: DomainConfig, documents: list[Document]) -> list[int]:
    """Each document's token count as the build's tokenize step makes it (BOS/EOS included)."""
    step = domain.sources[0].tokenize_step(recipe.tokenizer)
    counts = [len(t.tokens) for t in step.run(iter(documents), 0, 1)]
    if len(counts) != len(documents):
        raise RuntimeError(f"the tokenize step returned {len(counts)} documents for {len(documents)}")
    return counts


def chat_template(recipe: Recipe):
    """The chat template the build renders the recipe's conversations with."""
    return ChatTemplate.for_tokenizer(recipe.tokenizer, load_tokenizer(recipe.tokenizer))


def write_rows(rows: list[dict], out: str) -> None:
    """JSON lines to `out` (a file, or `-` for standard output)."""
    data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        with open(out, "wb") as f:
            f.write(data)


def run(args: argparse.Namespace) -> int:
    route_logs(None)  # warnings only: standard output may be the preview itself
    try:
        if args.limit < 0:
            raise PreviewError(f"--limit must be 0 or more, got {args.limit}")
        recipe = load_recipe(args.recipe, parse_overrides(args.overrides or [])).resolved(args.corpus)
        domain = find_domain(recipe, args.domain)
        for step in preview_steps(recipe, domain):
            if hasattr(step, "check"):
                step.check()  # a missing input path fails here, with its name
        documents = preview_documents(recipe, domain, args.limit)
        write_rows(preview_rows(recipe, domain, documents, args.tokens), args.out)
    except (ValueError, SourcePathError, OSError) as err:
        print(f"preview: {err}", file=sys.stderr)
        return 2
    finally:
        restore_logs()
    if args.out != "-":
        print(
            f"preview: {len(documents)} document(s) of {domain.name} written to {args.out}", file=sys.stderr
        )
    return 0
