"""The end of a build: domain manifests, mixture.json, the budget and bad-input reports, plots."""

from __future__ import annotations

import importlib.util
import json
import os
import sysconfig
from pathlib import Path

from pipelines.recipe import GROUPS, Recipe, recipe_to_yaml
from prolong_data.atomic_write import write_json_atomic, write_text_atomic
from prolong_data.budget import format_budget, over_limit, plan_budget
from prolong_data.decontaminate import read_touched
from prolong_data.filters import HashSplitFilter, MinTokensFilter
from prolong_data.layout import (
    BAD_INPUT_REPORT,
    DECONTAMINATION_REPORT,
    LENGTHS_PLOT,
    MIXTURE,
    NEAR_DEDUP_REPORT,
    REPORT_TEXT,
    SHARES_PLOT,
    BuildLayout,
    budget_report_name,
)
from prolong_data.lengths import LENGTH_EDGES, short_count
from prolong_data.mds import finalize_domain, read_manifest
from prolong_data.mixture import Mixture, MixtureStream, write_mixture
from prolong_data.near_dedup import read_removals
from prolong_data.sources.bad_input import merge_bad_input
from prolong_data.sources.code_order import ORDER_STATS
from prolong_data.tokenization import load_tokenizer


def _domain_counts(layout: BuildLayout, domain: str) -> dict:
    """Documents, tokens and document-length histogram of a domain, summed over its tasks (the
    counts of the `build` pass; the step stats of both passes)."""
    documents = tokens = 0
    hist = [0] * (len(LENGTH_EDGES) - 1)
    steps: dict[str, dict[str, float]] = {}
    for pass_name in ("read", "signatures", "near_dedup", "build"):
        for path in sorted((layout.stats(pass_name) / domain).glob("*.json")):
            data = json.loads(path.read_text())
            if pass_name == "build":
                documents += data.get("documents", 0)
                tokens += data.get("tokens", 0)
                hist = [a + b for a, b in zip(hist, data.get("length_histogram", hist))]
            _add_step_counts(steps, data)
    return {"documents": documents, "tokens": tokens, "length_histogram": hist, "steps": steps}


def _add_step_counts(steps: dict[str, dict[str, float]], data: dict) -> None:
    for step, counts in data.get("steps", {}).items():
        merged = steps.setdefault(step, {})
        for key, value in counts.items():
            merged[key] = merged.get(key, 0) + value


def file_order_counts(steps: dict[str, dict[str, float]]) -> dict[str, int] | None:
    """A code domain's dependency-order counts (`code_order.ORDER_STATS`) summed over its steps,
    or None when no step ordered files by dependency."""
    found = [counts for counts in steps.values() if ORDER_STATS[0] in counts]
    if not found:
        return None
    return {key: int(sum(counts.get(key, 0) for counts in found)) for key in ORDER_STATS}


def finalize_build(
    recipe: Recipe, domains: list[tuple[str, int]], layout: BuildLayout, report: bool = True
) -> dict:
    """Finalize every domain folder, then write mixture.json, manifest.json, recipe.yaml, reports."""
    tokenizer = load_tokenizer(recipe.tokenizer).describe()
    config = {d.name: d for d in recipe.domains}
    rows = {}
    for name, tasks in domains:
        counts = _domain_counts(layout, name)
        manifest = {
            "domain": name,
            "recipe": recipe.name,
            "seq_len": recipe.seq_len,
            "tokenizer": tokenizer,
            "tasks": tasks,
            "documents": counts["documents"],
            "document_tokens": counts["tokens"],
            "length_histogram": {"edges": LENGTH_EDGES, "counts": counts["length_histogram"]},
            "pack": _plain(config[name].pack),
            "stats": {step: _ints(c) for step, c in sorted(counts["steps"].items())},
        }
        order = file_order_counts(counts["steps"])
        if order is not None:
            manifest["file_order"] = order
        full = finalize_domain(layout.domain(name), manifest)
        packing = full.get("packing", {})
        rows[name] = {
            **counts,
            "sequences": int(packing.get("sequences", 0)),
            "removed": removed_counts(counts["steps"], packing),
        }
        if order is not None:
            rows[name]["file_order"] = order
    summary = write_mixture_files(recipe, layout, rows, tokenizer)
    near = write_near_dedup_report(layout, [d for d in recipe.domains if d.near_dedup is not None])
    for name, counts in near.items():
        if name in summary["domains"]:
            summary["domains"][name]["near_dedup"] = counts
    tasks = dict(domains)
    cleaned = write_decontamination_report(layout, [d for d in recipe.domains if d.decontaminate], tasks)
    for name, counts in cleaned.items():
        if name in summary["domains"]:
            summary["domains"][name]["decontamination"] = counts
    bad = merge_bad_input(sorted(layout.bad_input.glob("*/*.json")))
    layout.report.mkdir(parents=True, exist_ok=True)
    _write_json(layout.report_file(BAD_INPUT_REPORT), bad)
    summary["bad_input"] = bad["counts"]
    _write_json(layout.manifest, summary)
    write_text_atomic(layout.recipe, recipe_to_yaml(recipe))
    text = format_report(summary, bad)
    print(text)
    if report:
        write_text_atomic(layout.report_file(REPORT_TEXT), text + "\n")
        if can_plot():
            plot_document_lengths(rows, layout.report_file(LENGTHS_PLOT))
            plot_shares(summary, layout.report_file(SHARES_PLOT))
        else:
            print(f"\nplots skipped: {NO_PLOTS}")
    return summary


def write_near_dedup_report(layout: BuildLayout, domains: list) -> dict[str, dict]:
    """`report/near_dedup.jsonl` (every removal, domain by domain in recipe order) from the
    domains' `removed.jsonl`; returns {domain: {removed, characters or tokens}}."""
    counts: dict[str, dict] = {}
    lines = []
    for domain in domains:
        removals = read_removals(layout.near_dedup(domain.name))
        unit = "tokens" if domain.produces == "tokens" else "characters"
        counts[domain.name] = {"removed": len(removals), unit: sum(r[unit] for r in removals)}
        lines += [json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in removals]
    if domains:
        layout.report.mkdir(parents=True, exist_ok=True)
        (layout.report / NEAR_DEDUP_REPORT).write_text("".join(lines), encoding="utf-8")
    return counts


def write_decontamination_report(
    layout: BuildLayout, domains: list, tasks: dict[str, int]
) -> dict[str, dict]:
    """`report/decontamination.jsonl` (every touched document, domain by domain in recipe order);
    returns {domain: {touched, excised, dropped, characters_removed}}."""
    counts: dict[str, dict] = {}
    lines = []
    for domain in domains:
        touched = read_touched(layout.decontaminate(domain.name), tasks.get(domain.name, 0))
        counts[domain.name] = {
            "touched": len(touched),
            "excised": sum(t["action"] == "excised" for t in touched),
            "dropped": sum(t["action"] == "dropped" for t in touched),
            "characters_removed": sum(t["characters_removed"] for t in touched),
        }
        lines += [json.dumps(t, ensure_ascii=False, sort_keys=True) + "\n" for t in touched]
    if domains:
        layout.report.mkdir(parents=True, exist_ok=True)
        (layout.report / DECONTAMINATION_REPORT).write_text("".join(lines), encoding="utf-8")
    return counts


def write_mixture_files(
    recipe: Recipe, layout: BuildLayout, rows: dict, tokenizer: dict, mixture_file: str = MIXTURE
) -> dict:
    """mixture.json and budget.json from the built domains; returns the build summary."""
    wanted = recipe.mixture_proportions()
    empty = [d for d in wanted if rows.get(d, {}).get("sequences", 0) == 0]
    kept = {d: p for d, p in wanted.items() if d not in empty}
    if not kept:
        raise RuntimeError("no domain produced a sequence: is the corpus big enough for this seq_len?")
    total = sum(kept.values())
    shares = {d: p / total for d, p in kept.items()}
    mixture = Mixture(
        seq_len=recipe.seq_len,
        streams=[MixtureStream(domain=d, path=d, proportion=p) for d, p in shares.items()],
        extra={"recipe": recipe.name, "tokenizer": tokenizer["name"]},
    )
    if mixture_file == MIXTURE:
        write_mixture(mixture, layout.root)
    else:  # a sweep variant beside the build's own mixture.json
        write_json_atomic(layout.root / mixture_file, mixture.to_dict(), indent=2)
    available = {d: rows[d]["sequences"] * recipe.seq_len for d in shares}
    budget = plan_budget(recipe.token_budget, shares, available)
    absent = {d.name: "no sources" for d in recipe.domains if not d.present}
    absent.update({d: "no sequence: too little data for one" for d in empty})
    budget_text = format_budget(budget, recipe.token_budget, recipe.max_repeat) + format_absent(absent)
    budget_json = {
        "token_budget": recipe.token_budget,
        "max_repeat": recipe.max_repeat,
        "domains": [b.to_dict(recipe.max_repeat) for b in budget],
        "absent_domains": list(absent),
        "over_limit": [b.domain for b in over_limit(budget, recipe.max_repeat)],
    }
    layout.report.mkdir(parents=True, exist_ok=True)
    _write_json(layout.report_file(budget_report_name(mixture_file)), budget_json)
    targets = target_shares(recipe)
    stored_total = sum(r.get("sequences", 0) for r in rows.values()) or 1
    return {
        "recipe": recipe.name,
        "seq_len": recipe.seq_len,
        "tokenizer": tokenizer,
        "domains": {
            d: {
                "documents": r.get("documents", 0),
                "tokens": r.get("tokens", 0),
                "sequences": r.get("sequences", 0),
                "stored_share": r.get("sequences", 0) / stored_total,
                "mixture_share": shares.get(d, 0.0),
                "target_share": targets.get(d, 0.0),
                "removed": r.get("removed", {}),
                **({"file_order": r["file_order"]} if "file_order" in r else {}),
            }
            for d, r in rows.items()
        },
        "absent": {d: {"reason": why, "target_share": targets.get(d, 0.0)} for d, why in absent.items()},
        "notes": installed_package_notes(recipe),
        "budget": budget_json,
        "budget_text": budget_text,
    }


def remix(recipe: Recipe, out: Path, mixture_file: str = MIXTURE) -> dict:
    """A new mixture file (and budget) for shards already built in `out`: a ratio sweep without
    re-sharding. Domains are read from their manifests."""
    layout = BuildLayout(out)
    rows = {}
    tokenizer = None
    for d in recipe.present_domains():
        manifest = read_manifest(layout.domain(d.name))
        if not manifest:
            raise FileNotFoundError(f"{layout.domain(d.name)} has no manifest.json: build the shards first")
        tokenizer = tokenizer or manifest["tokenizer"]
        rows[d.name] = {
            "documents": manifest.get("documents", 0),
            "tokens": manifest.get("document_tokens", 0),
            "sequences": int(manifest.get("packing", {}).get("sequences", 0)),
            "removed": removed_counts(manifest.get("stats", {}), manifest.get("packing", {})),
        }
    summary = write_mixture_files(recipe, layout, rows, tokenizer, mixture_file)
    print(format_table(summary) + "\n")
    print(summary["budget_text"])
    return summary


# ----------------------------------------------------------------------------------------------
# What the summary says besides the counts
# ----------------------------------------------------------------------------------------------


NOT_A_LOSS = (HashSplitFilter.name,)
"""Filter steps that choose a domain's share of a source (the rest feeds another domain): what they
leave out is not counted as removed."""


def removed_counts(steps: dict, packing: dict) -> dict[str, int]:
    """What a domain lost on the way, from its step stats and packing stats: documents dropped by
    the filters (empty, invalid UTF-8, duplicates, quality: every step's `dropped`), documents and
    their tokens dropped for being shorter than the domain's minimum, and tokens that packing cut
    (the tails of long documents, truncated or dropped conversations, the last partial sequence)."""
    too_short = steps.get(MinTokensFilter.name, {})
    return {
        "filtered_documents": int(
            sum(c.get("dropped", 0) for name, c in steps.items() if name not in NOT_A_LOSS)
        ),
        "short_documents": int(too_short.get("dropped_too_short", 0)),
        "short_tokens": int(too_short.get("dropped_too_short_tokens", 0)),
        "cut_tokens": int(packing.get("dropped_tokens", 0) + packing.get("dropped_tail_tokens", 0)),
    }


def target_shares(recipe: Recipe) -> dict[str, float]:
    """The share the recipe asks for each domain, absent ones included: its proportions, each group
    rescaled to `long_share` when that is set (`--long-share`), so the target column of the
    summary shows what this command asked for."""
    targets = {d.name: d.proportion for d in recipe.domains}
    if recipe.long_share is None:
        return targets
    want = {"long": recipe.long_share, "short": 1 - recipe.long_share}
    sums = {g: sum(d.proportion for d in recipe.domains if d.group == g) for g in GROUPS}
    return {
        d.name: d.proportion * want[d.group] / sums[d.group] if sums[d.group] else 0.0 for d in recipe.domains
    }


def installed_package_notes(recipe: Recipe) -> list[str]:
    """A note for each domain that reads this Python's standard library or site-packages (the
    demo's code domain): its counts depend on what is installed, so they differ between installs."""
    paths = sysconfig.get_paths()
    real = os.path.realpath  # a Slurm or Ray worker may reach the same venv through another link
    places = {
        real(paths["stdlib"]): "standard library",
        real(paths["purelib"]): "site-packages",
        real(paths["platlib"]): "site-packages",
    }
    notes = []
    for d in recipe.domains:
        found = {
            places[real(p)] for s in d.sources for p in getattr(s, "paths", None) or [] if real(p) in places
        }
        read = [name for name in ("standard library", "site-packages") if name in found]
        if read:
            notes.append(
                f"{d.name} reads this Python's installed packages ({' and '.join(read)}): its counts "
                "vary from one install to another"
            )
    return notes


def format_absent(absent: dict[str, str]) -> str:
    """Lines for the budget report: each domain left out of the mixture, and why."""
    return "".join(f"\nabsent: {d} ({why}; its share is spread over the others)" for d, why in absent.items())


# ----------------------------------------------------------------------------------------------
# Text and plots
# ----------------------------------------------------------------------------------------------


COUNTS = ("documents", "tokens", "sequences")
SHARES = ("stored_share", "mixture_share", "target_share")
REMOVED = ("filtered_documents", "short_documents", "short_tokens", "cut_tokens")


def format_table(summary: dict) -> str:
    """Each domain's counts and shares, the absent domains (no counts), a totals row; then what the
    filters and packing removed, per domain and in total; then the notes."""
    rows = summary["domains"]
    total = {k: sum(r[k] for r in rows.values()) for k in COUNTS}
    total.update({k: sum(r[k] for r in rows.values()) for k in SHARES})
    total["target_share"] += sum(a["target_share"] for a in summary.get("absent", {}).values())
    lines = [
        f"{'domain':<34} {'documents':>10} {'tokens':>13} {'sequences':>10} {'stored':>8} {'mixture':>8} {'target':>8}"
    ]
    for d, r in rows.items():
        lines.append(
            f"{d:<34} {r['documents']:>10,} {r['tokens']:>13,} {r['sequences']:>10,} {r['stored_share']:>8.1%} "
            f"{r['mixture_share']:>8.1%} {r['target_share']:>8.1%}"
        )
    for d, a in summary.get("absent", {}).items():
        if d not in rows:
            lines.append(
                f"{d:<34} {'-':>10} {'-':>13} {'-':>10} {'-':>8} {'-':>8} {a['target_share']:>8.1%}  absent"
            )
    lines.append(
        f"{'total':<34} {total['documents']:>10,} {total['tokens']:>13,} {total['sequences']:>10,} "
        f"{total['stored_share']:>8.1%} {total['mixture_share']:>8.1%} {total['target_share']:>8.1%}"
    )
    lines += ["", format_removed(rows), *(f"note: {n}" for n in summary.get("notes", []))]
    return "\n".join(lines)


def format_removed(rows: dict) -> str:
    """Per domain: documents the filters dropped, documents (and their tokens) under the domain's
    minimum length, tokens packing cut; and a totals row."""
    removed = {d: {k: r.get("removed", {}).get(k, 0) for k in REMOVED} for d, r in rows.items()}
    total = {k: sum(r[k] for r in removed.values()) for k in REMOVED}
    lines = [
        "removed by the filters and by packing (each filter's count: `stats` in DOMAIN/manifest.json)",
        f"{'domain':<34} {'filtered docs':>14} {'too short docs':>15} {'too short tokens':>17} {'cut tokens':>13}",
    ]
    for d, r in [*removed.items(), ("total", total)]:
        lines.append(
            f"{d:<34} {r['filtered_documents']:>14,} {r['short_documents']:>15,} {r['short_tokens']:>17,} "
            f"{r['cut_tokens']:>13,}"
        )
    return "\n".join(lines)


def format_report(summary: dict, bad: dict) -> str:
    parts = [
        f"recipe {summary['recipe']}, seq_len {summary['seq_len']:,}, tokenizer {summary['tokenizer']['name']}"
    ]
    parts += ["", format_table(summary)]
    order = format_file_order(summary)
    if order:
        parts += ["", order]
    parts += ["", summary["budget_text"], "", format_bad_input(bad)]
    extra = [line for line in (format_near_dedup(summary), format_decontamination(summary)) if line]
    return "\n".join(parts + extra)


def format_decontamination(summary: dict) -> str:
    """One summary of evaluation text removed per decontaminated domain ("" when none is)."""
    parts = []
    for name, row in summary["domains"].items():
        c = row.get("decontamination")
        if c is not None:
            parts.append(
                f"{name} {c['excised']:,} excised, {c['dropped']:,} dropped ({c['characters_removed']:,} characters)"
            )
    return "evaluation text removed: " + ", ".join(parts) + " (report/decontamination.jsonl)" if parts else ""


def format_near_dedup(summary: dict) -> str:
    """One line of near-duplicate removals per domain that near-deduplicates ("" when none does)."""
    parts = []
    for name, row in summary["domains"].items():
        counts = row.get("near_dedup")
        if counts is not None:
            unit, amount = next((k, v) for k, v in counts.items() if k != "removed")
            parts.append(f"{name} {counts['removed']:,} ({amount:,} {unit})")
    return "near-duplicates removed: " + ", ".join(parts) + " (report/near_dedup.jsonl)" if parts else ""


def format_file_order(summary: dict) -> str:
    """The dependency-order counts of the code domains (empty when no domain orders by dependency)."""
    rows = {d: r["file_order"] for d, r in summary["domains"].items() if "file_order" in r}
    if not rows:
        return ""
    lines = [
        f"{'file order (dependency)':<34} {'imports':>10} {'satisfied':>10} {'share':>8} {'in cycles':>10}"
    ]
    for d, o in rows.items():
        share = o["import_edges_satisfied"] / o["import_edges"] if o["import_edges"] else 1.0
        lines.append(
            f"{d:<34} {o['import_edges']:>10,} {o['import_edges_satisfied']:>10,} {share:>8.1%} "
            f"{o['files_in_cycles']:>10,}"
        )
    return "\n".join(lines)


def format_bad_input(bad: dict) -> str:
    if not bad["counts"]:
        return "bad input: none"
    lines = ["bad input (counted, skipped or repaired; the build went on):"]
    for reason, count in bad["counts"].items():
        lines.append(f"  {reason}: {count:,}")
        for example in bad["examples"].get(reason, [])[:3]:
            where = example["file"] + (f":{example['line']}" if example.get("line") else "")
            lines.append(f"    {where} {example.get('detail', '')}".rstrip())
    return "\n".join(lines)


NO_PLOTS = "matplotlib is not installed (pip install 'prolong-data[plot]')"


def can_plot() -> bool:
    """Whether matplotlib (the `plot` extra) is installed: the PNG plots need it, tables do not."""
    return importlib.util.find_spec("matplotlib") is not None


def plot_document_lengths(rows: dict, png: Path) -> None:
    """One bar chart per domain: documents per length bin (tokens, after filters)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [short_count(LENGTH_EDGES[i]) for i in range(len(LENGTH_EDGES) - 1)]
    fig, axes = plt.subplots(len(rows), 1, figsize=(8, 1.9 * len(rows) + 0.6), squeeze=False)
    for ax, (name, r) in zip(axes[:, 0], rows.items()):
        ax.bar(range(len(labels)), r["length_histogram"], color="#4C72B0")
        ax.set_xticks(range(len(labels)), [f">={lab}" for lab in labels], fontsize=7)
        ax.set_title(f"{name}: {r['documents']:,} documents, {r['tokens']:,} tokens", fontsize=9)
        ax.set_ylabel("documents", fontsize=8)
    axes[-1, 0].set_xlabel("document length (tokens)")
    fig.tight_layout()
    fig.savefig(png, dpi=90, metadata={"Software": None})
    plt.close(fig)


def plot_shares(summary: dict, png: Path) -> None:
    """Mixture share vs recipe target (and stored share) per domain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(summary["domains"])
    rows = [summary["domains"][n] for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(x - 0.27, [r["target_share"] for r in rows], 0.27, label="recipe target", color="#999999")
    ax.bar(x, [r["mixture_share"] for r in rows], 0.27, label=MIXTURE, color="#4C72B0")
    ax.bar(x + 0.27, [r["stored_share"] for r in rows], 0.27, label="stored in shards", color="#DD8452")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("share of sequences")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90, metadata={"Software": None})
    plt.close(fig)


def _plain(obj) -> dict:
    from dataclasses import asdict

    return asdict(obj)


def _ints(counts: dict) -> dict:
    return {k: int(v) for k, v in sorted(counts.items())}


def _write_json(path: Path, data: dict) -> None:
    write_json_atomic(path, data, indent=2, sort_keys=True)
