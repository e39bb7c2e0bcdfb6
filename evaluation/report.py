"""Turn the result streams into ``results.json``, ``results.md`` and plots; compare two result folders."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from evaluation.errors import EvalUsageError
from evaluation.tasks import RECALL_TASKS
from evaluation.tasks import doc_loss as doc_loss_task
from prolong_data.atomic_write import write_json_atomic, write_text_atomic


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def summarize(settings: dict, backend: dict, examples, rows: list[dict], doc_rows: list[dict]) -> dict:
    """``results.json``: per task and length (and depth) the mean score, samples and prompt tokens."""
    wanted = {e.id for e in examples}
    by_cell: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for row in rows:
        if row["id"] in wanted:
            by_cell[row["task"], row["target_length"]].append(row)
    tasks: dict[str, dict] = {}
    for (task, length), cell in sorted(
        by_cell.items(), key=lambda kv: (list(RECALL_TASKS).index(kv[0][0]), kv[0][1])
    ):
        depths: dict[str, list[float]] = defaultdict(list)
        for row in cell:
            depths[f"{row['depth']:g}"].append(row["score"])
        tasks.setdefault(task, {})[str(length)] = {
            "score": _mean([r["score"] for r in cell]),
            "samples": len(cell),
            "prompt_tokens": _mean([r["prompt_tokens"] for r in cell]),
            "depths": {
                d: {"score": _mean(s), "samples": len(s)}
                for d, s in sorted(depths.items(), key=lambda kv: float(kv[0]))
            },
        }
    summary = {"model": settings["model"], "settings": settings, "backend": backend, "tasks": tasks}
    if doc_rows:
        summary["doc_loss"] = doc_loss_task.aggregate(doc_rows, max(settings["lengths"]), settings["window"])
    return summary


def _recall_mean(tasks: dict, length: str) -> float | None:
    """HELMET's recall category: the mean over its tasks of the per-task score at one length."""
    scores = [cells[length]["score"] for cells in tasks.values() if length in cells]
    return _mean(scores) if scores else None


def results_markdown(summary: dict) -> str:
    """The task x length table, and doc_loss's bucket table."""
    lines = [f"# Evaluation of `{summary['model']}`", ""]
    settings = summary["settings"]
    lines.append(
        f"{settings['samples']} samples per task and length, seed {settings['seed']}, "
        f"{'chat template' if settings['chat'] else 'base format'}, "
        + ", ".join(f"{k} {v}" for k, v in summary["backend"].items())
        + "."
    )
    tasks = summary["tasks"]
    if tasks:
        lengths = sorted({int(n) for cells in tasks.values() for n in cells})
        lines += [
            "",
            "Recall scores (0-100; json_kv: substring exact match, niah: fraction of values recalled):",
            "",
        ]
        lines.append("| task | " + " | ".join(f"{n:,}" for n in lengths) + " |")
        lines.append("|---|" + "---:|" * len(lengths))
        for task, cells in tasks.items():
            row = [f"{cells[str(n)]['score']:.1f}" if str(n) in cells else "" for n in lengths]
            lines.append(f"| {task} | " + " | ".join(row) + " |")
        means = [_recall_mean(tasks, str(n)) for n in lengths]
        lines.append(
            "| **recall (mean)** | " + " | ".join("" if m is None else f"**{m:.1f}**" for m in means) + " |"
        )
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
        depths = sorted({d for c in cells.values() for d in c["depths"]}, key=float)
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


def compare_markdown(a: dict, b: dict, name_a: str = "A", name_b: str = "B") -> str:
    """Two evaluations side by side: recall scores per task and length, doc_loss per bucket, and B - A."""
    lines = [f"A = {name_a} (`{a['model']}`)", f"B = {name_b} (`{b['model']}`)", ""]
    for key in ("samples", "seed", "chat", "depths", "window"):
        if a["settings"].get(key) != b["settings"].get(key):
            lines.append(
                f"note: the two differ in {key}: {a['settings'].get(key)} vs {b['settings'].get(key)}"
            )
    lines += ["", "| task | length | A | B | B - A |", "|---|---:|---:|---:|---:|"]
    tasks = list(dict.fromkeys([*a["tasks"], *b["tasks"]]))
    for task in tasks:
        ca, cb = a["tasks"].get(task, {}), b["tasks"].get(task, {})
        for n in sorted(set(ca) | set(cb), key=int):
            sa, sb = ca.get(n, {}).get("score"), cb.get(n, {}).get("score")
            diff = f"{sb - sa:+.1f}" if sa is not None and sb is not None else ""
            fa, fb = ("" if s is None else f"{s:.1f}" for s in (sa, sb))
            lines.append(f"| {task} | {int(n):,} | {fa} | {fb} | {diff} |")
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
