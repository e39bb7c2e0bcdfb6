"""Turn the result streams into ``results.json``, ``results.md`` and plots; compare two result folders."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from prolong_data.atomic_write import write_json_atomic, write_text_atomic
from prolong_data.evaluation.errors import EvalUsageError
from prolong_data.evaluation.tasks import doc_loss as doc_loss_task
from prolong_data.evaluation.tasks import recall_category, task_order
from prolong_data.evaluation.tasks.base import depth_bin
from prolong_data.evaluation.uncertainty import bootstrap_interval, separated


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def score_cell(scores: list[float], seed: int, name: str) -> dict:
    """A mean score with its sample count and seeded 95% bootstrap interval."""
    return {"score": _mean(scores), "samples": len(scores), "ci95": bootstrap_interval([scores], seed, name)}


def category_cells(by_cell: dict, category: dict, seed: int) -> dict:
    """Per length where every task of ``category`` has results: the mean of the tasks' means, its
    interval (each task's examples resampled on their own) and the examples it rests on."""
    lengths = sorted({n for _, n in by_cell})
    cells = {}
    for n in lengths:
        groups = [[r["score"] for r in by_cell.get((t, n), [])] for t in category["tasks"]]
        if groups and all(groups):
            cells[str(n)] = {
                "score": _mean([_mean(g) for g in groups]),
                "samples": sum(len(g) for g in groups),
                "ci95": bootstrap_interval(groups, seed, f"{category['name']}/{n}"),
            }
    return cells


def summarize(
    settings: dict,
    backend: dict,
    examples,
    rows: list[dict],
    doc_rows: list[dict],
    identity: dict | None = None,
) -> dict:
    """``results.json``: per task and length (and depth bin) the mean score, its sample count and 95%
    interval, and mean prompt tokens; the category mean; doc_loss; what identifies the run."""
    wanted = {e.id for e in examples}
    seed, bins = settings["seed"], settings["depths"]
    by_cell: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in rows:
        if row["id"] in wanted:
            by_cell[row["task"], row["target_length"]].append(row)
    tasks: dict[str, dict] = {}
    protocol = settings.get("protocol", "default")
    for (task, length), cell in sorted(
        by_cell.items(), key=lambda kv: (task_order(kv[0][0], protocol), kv[0][1])
    ):
        depths: dict[str, list[float]] = defaultdict(list)
        for row in cell:
            b = depth_bin(row["depth"], bins)
            depths[f"{b / bins:g}-{(b + 1) / bins:g}"].append(row["score"])
        name = f"{task}/{length}"
        tasks.setdefault(task, {})[str(length)] = score_cell([r["score"] for r in cell], seed, name) | {
            "prompt_tokens": _mean([r["prompt_tokens"] for r in cell]),
            "depths": {
                d: score_cell(s, seed, f"{name}/{d}")
                for d, s in sorted(depths.items(), key=lambda kv: float(kv[0].split("-")[0]))
            },
        }
    category = recall_category(protocol, list(tasks))
    summary = {"model": settings["model"], "settings": settings, "backend": backend, **(identity or {})}
    summary["tasks"] = tasks
    category_lengths = category_cells(by_cell, category, seed) if category["tasks"] else {}
    if category_lengths:  # only where every task of the category ran
        summary["category"] = category | {"lengths": category_lengths}
    if cell_rows := [r for cells in by_cell.values() for r in cells]:
        summary["throughput"] = throughput(cell_rows)
    if doc_rows:
        summary["doc_loss"] = doc_loss_task.aggregate(doc_rows, max(settings["lengths"]), settings["window"])
    return summary


def throughput(rows: list[dict]) -> dict:
    """Examples and prompt tokens per second of generation, over the recall results' ``seconds``."""
    seconds = sum(r["seconds"] for r in rows)
    tokens = sum(r["prompt_tokens"] for r in rows)
    return {
        "examples": len(rows),
        "seconds": round(seconds, 3),
        "examples_per_s": round(len(rows) / seconds, 4) if seconds else None,
        "prompt_tokens_per_s": round(tokens / seconds, 1) if seconds else None,
    }


def format_score(cell: dict | None, bold: bool = False) -> str:
    """``45.0 [35.0, 55.0] n=100``: the score, its 95% interval and its sample count."""
    if not cell:
        return ""
    low, high = cell["ci95"]
    score = f"**{cell['score']:.1f}**" if bold else f"{cell['score']:.1f}"
    return f"{score} [{low:.1f}, {high:.1f}] n={cell['samples']}"


def results_markdown(summary: dict) -> str:
    """The task x length table (scores with 95% intervals and sample counts), and doc_loss's bucket table."""
    lines = [f"# Evaluation of `{summary['model']}`", ""]
    settings = summary["settings"]
    lines.append(
        f"protocol {settings.get('protocol', 'default')}, {settings['samples']} samples per task and length, "
        f"seed {settings['seed']}, {'chat template' if settings['chat'] else 'base format'}, "
        + ", ".join(f"{k} {v}" for k, v in summary["backend"].items())
        + "."
    )
    tasks = summary["tasks"]
    if tasks:
        lengths = sorted({int(n) for cells in tasks.values() for n in cells})
        lines += [
            "",
            "Recall scores (0-100; json_kv: substring exact match, niah: fraction of values recalled), "
            "each with its 95% bootstrap interval over examples and its sample count n:",
            "",
        ]
        lines.append("| task | " + " | ".join(f"{n:,}" for n in lengths) + " |")
        lines.append("|---|" + "---:|" * len(lengths))
        for task, cells in tasks.items():
            lines.append(f"| {task} | " + " | ".join(format_score(cells.get(str(n))) for n in lengths) + " |")
        category = summary.get("category")
        if category:
            cells = category["lengths"]
            row = " | ".join(format_score(cells.get(str(n)), bold=True) for n in lengths)
            lines.append(f"| **{category['name']}** | {row} |")
            lines += ["", f"{category['name']}: {category['about']}"]
    speed = summary.get("throughput")
    if speed and speed["examples_per_s"]:
        lines += [
            "",
            f"Generation: {speed['examples']} examples in {speed['seconds']:,.1f} s: "
            f"{speed['examples_per_s']:.3g} examples/s, {speed['prompt_tokens_per_s']:,.0f} prompt tokens/s"
            + (f" (batch size {summary['batch_size']})." if "batch_size" in summary else "."),
        ]
    loss = summary.get("doc_loss")
    if loss:
        lines += [
            "",
            f"doc_loss: {loss['documents']} held-out documents up to {loss['context']:,} tokens; loss in nats/token "
            f"with the full context and in {loss['window']:,}-token windows; gain = window - full (what the longer "
            "context saves):",
            "",
            "| positions | tokens | full context | windows | gain |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in loss["buckets"]:
            lines.append(
                f"| {row['bucket']} | {row['tokens']:,} | {row['full']:.4f} | {row['window']:.4f} | {row['gain']:+.4f} |"
            )
    return "\n".join(lines) + "\n"


def plot_needle_depth(summary: dict, path: Path) -> Path | None:
    """One heatmap per recall task: depth (rows) x length (columns), colour = score."""
    tasks = summary["tasks"]
    if not tasks:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(tasks), figsize=(3.2 * len(tasks) + 1, 3.6), squeeze=False, constrained_layout=True
    )
    for ax, (task, cells) in zip(axes[0], tasks.items()):
        lengths = sorted(cells, key=int)
        depths = sorted(
            {d for c in cells.values() for d in c["depths"]}, key=lambda d: float(d.split("-")[0])
        )
        grid = [[cells[n]["depths"].get(d, {}).get("score", float("nan")) for n in lengths] for d in depths]
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="RdYlGn", aspect="auto", origin="upper")
        ax.set_xticks(range(len(lengths)), [f"{int(n) // 1024}K" if int(n) >= 1024 else n for n in lengths])
        ax.set_yticks(range(len(depths)), depths)
        ax.set_xlabel("prompt length (tokens)")
        ax.set_ylabel("answer depth")
        ax.set_title(task)
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if value == value:  # not NaN
                    ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=axes[0].tolist(), label="score")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_loss_by_position(summary: dict, path: Path) -> Path | None:
    """Mean loss per power-of-two position bin, full context against windows."""
    loss = summary.get("doc_loss")
    if not loss or not loss["curve"]:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = loss["curve"]
    x = [(c["start"] * (c["end"] - 1)) ** 0.5 for c in curve]  # geometric middle of the bin
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(x, [c["full"] for c in curve], marker="o", label="full context")
    ax.plot(x, [c["window"] for c in curve], marker="s", label=f"{loss['window']:,}-token windows")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("token position in the document")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(f"doc_loss ({loss['documents']} documents)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_reports(out: Path, summary: dict) -> None:
    write_json_atomic(out / "results.json", summary, indent=1)
    write_text_atomic(out / "results.md", results_markdown(summary))
    for name, plot in (
        ("needle_depth.png", plot_needle_depth),
        ("loss_by_position.png", plot_loss_by_position),
    ):
        (out / name).unlink(missing_ok=True)
        plot(summary, out / name)


def load_results(folder: str | Path) -> dict:
    path = Path(folder) / "results.json"
    if not path.is_file():
        raise EvalUsageError(f"{folder} has no results.json; give folders written by prolong-data eval")
    return json.loads(path.read_text())


IDENTITY = (
    ("model", lambda r: r.get("model")),
    ("tokenizer", lambda r: (r.get("tokenizer") or {}).get("sha256")),
    ("protocol", lambda r: r["settings"].get("protocol", "default")),
    ("tasks", lambda r: sorted(r["settings"].get("tasks", []))),
    ("lengths", lambda r: r["settings"].get("lengths")),
    ("held-out set", lambda r: r.get("heldout")),
    ("seed", lambda r: r["settings"].get("seed")),
    ("samples", lambda r: r["settings"].get("samples")),
    ("chat", lambda r: r["settings"].get("chat")),
)
"""What makes two evaluations comparable, and how to read it from ``results.json``."""


def identity_lines(a: dict, b: dict) -> list[str]:
    """One line per identity item that differs between two results, or one line saying all agree."""
    differ = [(name, get(a), get(b)) for name, get in IDENTITY if get(a) != get(b)]
    if not differ:
        return [
            "same " + ", ".join(name for name, _ in IDENTITY) + ": the two are comparable example by example"
        ]
    return [f"differs: {name}: {va} vs {vb}" for name, va, vb in differ]


def compare_row(label: str, n: str, ca: dict | None, cb: dict | None) -> str:
    """One comparison row: A, B, B - A, and whether the 95% intervals separate the two."""
    sa, sb = (c["score"] if c else None for c in (ca, cb))
    diff = f"{sb - sa:+.1f}" if sa is not None and sb is not None else ""
    verdict = ""
    if ca and cb:
        verdict = "yes" if separated(ca.get("ci95"), cb.get("ci95")) else "no: within the intervals"
    return f"| {label} | {int(n):,} | {format_score(ca)} | {format_score(cb)} | {diff} | {verdict} |"


def compare_markdown(a: dict, b: dict, name_a: str = "A", name_b: str = "B") -> str:
    """Two evaluations side by side: what differs between them, recall scores per task and length
    with their intervals, B - A and whether the intervals separate it; doc_loss per bucket."""
    lines = [f"A = {name_a} (`{a['model']}`)", f"B = {name_b} (`{b['model']}`)", ""]
    lines += identity_lines(a, b)
    lines += [
        "",
        "| task | length | A | B | B - A | separated |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for task in dict.fromkeys([*a["tasks"], *b["tasks"]]):
        ca, cb = a["tasks"].get(task, {}), b["tasks"].get(task, {})
        for n in sorted(set(ca) | set(cb), key=int):
            lines.append(compare_row(task, n, ca.get(n), cb.get(n)))
    cat_a, cat_b = a.get("category") or {}, b.get("category") or {}
    if cat_a and cat_a.get("name") == cat_b.get("name"):
        la_, lb_ = cat_a["lengths"], cat_b["lengths"]
        for n in sorted(set(la_) | set(lb_), key=int):
            lines.append(compare_row(f"**{cat_a['name']}**", n, la_.get(n), lb_.get(n)))
    la, lb = a.get("doc_loss"), b.get("doc_loss")
    if la or lb:
        lines += ["", "doc_loss (nats/token; lower is better):", ""]
        lines += [
            "| positions | A full | B full | B - A | A gain | B gain |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        rows_a = {r["bucket"]: r for r in (la or {}).get("buckets", [])}
        rows_b = {r["bucket"]: r for r in (lb or {}).get("buckets", [])}
        for bucket in dict.fromkeys([*rows_a, *rows_b]):
            ra, rb = rows_a.get(bucket), rows_b.get(bucket)
            cells = [
                f"{ra['full']:.4f}" if ra else "",
                f"{rb['full']:.4f}" if rb else "",
                f"{rb['full'] - ra['full']:+.4f}" if ra and rb else "",
                f"{ra['gain']:+.4f}" if ra else "",
                f"{rb['gain']:+.4f}" if rb else "",
            ]
            lines.append(f"| {bucket} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
