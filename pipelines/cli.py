"""`prolong-data`: the command line of the toolkit.

prolong-data shards --recipe NAME --out DIR ...   (prolong-data shards --help)
prolong-data inspect DIR [--sample N] [--png FILE] [--tokenizer SPEC]
prolong-data verify DIR
prolong-data preview --recipe NAME --domain D [--limit N] [--out FILE.jsonl|-]   (prolong-data preview --help)
prolong-data eval --model PATH --tasks ... --lengths ... --out DIR   (prolong-data eval --help)

Exit status: 0 success; 1 `verify` found damage, or a `shards` task failed (its log says why;
rerun the same command to resume); 2 a user error (a message says what to fix).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pipelines import preview, shards
from pipelines.finalize import NO_PLOTS, can_plot
from prolong_data.evaluation.cli import add_parser as add_eval_parser
from prolong_data.inspection import domain_folders, format_summary, plot_histograms, sample_at, summarize
from prolong_data.layout import RECIPE
from prolong_data.mds import read_manifest
from prolong_data.mds_format import MDSFormatError
from prolong_data.tokenization import load_tokenizer
from prolong_data.verify import DamageError, NotAShardFolder, verify


def _inspect(args: argparse.Namespace) -> int:
    try:
        return _inspect_folder(args)
    except MDSFormatError as err:
        print(f"inspect: {err}\n(run `prolong-data verify {args.dir}` for every problem)", file=sys.stderr)
        return 1
    except BrokenPipeError:
        raise  # the reader of the output stopped (`| head`): `main` ends quietly
    except (OSError, ValueError, IndexError) as err:
        print(f"inspect: {err}", file=sys.stderr)
        return 2


def _inspect_folder(args: argparse.Namespace) -> int:
    folders = domain_folders(args.dir)
    summaries = [summarize(f) for f in folders]
    print(format_summary(summaries))
    png = Path(args.png) if args.png else Path(args.dir) / "inspect.png"
    if can_plot():
        print(f"\nhistogram plot: {plot_histograms(summaries, png)}")
    else:
        print(f"\nhistogram plot skipped: {NO_PLOTS}")
    if args.sample is not None:
        folder = folders[0] if args.domain is None else Path(args.dir) / args.domain
        row = sample_at(folder, args.sample)
        spec = args.tokenizer or read_manifest(folder).get("tokenizer", {}).get("name")
        print(
            f"\n{folder.name} sample {args.sample}: spans {row['indices'][:8].tolist()}{' ...' if len(row['indices']) > 8 else ''}"
        )
        ids = row["input_ids"][: args.tokens]
        if spec:
            print(repr(load_tokenizer(spec).decode(ids.tolist())))
        else:
            print(f"(no tokenizer recorded; ids) {ids.tolist()}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    try:
        report = verify(args.dir)
    except NotAShardFolder as err:
        print(f"verify: {err}", file=sys.stderr)
        return 2
    except DamageError as err:
        problems = err.report.problems
        print(f"verify FAILED: {len(problems)} problem(s) in {args.dir}", file=sys.stderr)
        for line in str(err).splitlines():
            print(f"  {line}", file=sys.stderr)
        root = Path(args.dir)
        built = next((p for p in (root, root.parent) if (p / RECIPE).is_file()), None)
        if built is not None:
            print(
                f"repair: rerun the `prolong-data shards` command that built {built} (its recipe is "
                f"{built / RECIPE}); it rebuilds every damaged or missing task and rewrites the indexes, "
                "manifests and mixture.json",
                file=sys.stderr,
            )
        return 1
    print(
        f"verify OK: {report.folders} folder(s), {report.samples:,} samples, {report.tokens:,} tokens, "
        f"{report.files} shard file(s) ({report.hashed} with hashes checked)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prolong-data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="domains, sequences, tokens, span-length histogram, a decoded sample")
    p.add_argument("dir", help="a domain folder (with index.json) or a mixture root")
    p.add_argument("--sample", type=int, default=None, help="also print the start of this sample")
    p.add_argument("--domain", default=None, help="domain folder of --sample (default: the first)")
    p.add_argument("--tokens", type=int, default=200, help="how many tokens of the sample to decode")
    p.add_argument("--tokenizer", default=None, help="tokenizer to decode with (default: the manifest's)")
    p.add_argument("--png", default=None, help="where to save the histogram plot (default DIR/inspect.png)")
    p.set_defaults(func=_inspect)

    p = sub.add_parser(
        "verify",
        help="check a build: shard files (sizes, hashes), indexes, manifests, mixture.json, every sample",
    )
    p.add_argument("dir", help="a domain folder (with index.json) or a mixture root")
    p.set_defaults(func=_verify)

    shards.add_parser(sub)
    preview.add_parser(sub)
    add_eval_parser(sub)  # its parser imports no torch
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "takes_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra  # `--field=value` flags of a command that reads a typed config
    try:
        code = args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:  # `prolong-data inspect DIR | head`: the reader has all it wanted
        silence_stdout()
        return 0


def silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush does not complain about the
    pipe its reader closed."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
