"""The `train` extra: which of its packages a command needs, and the one line it prints without them.

The core install (`pip install .`) has no torch, transformers or mosaicml-streaming; the trainer
(`python -m trainer.train`) and `prolong-data eval` need them. Both check for them before they do
anything and, when one is missing, end with `TrainExtraMissing`'s one line, which names the pip
command that adds the extra (docs/install.md).
"""

from __future__ import annotations

import importlib.util
import sys

TRAIN_MODULES = ("torch", "transformers", "streaming")
"""The modules of the `train` extra that the trainer imports (mosaicml-streaming is `streaming`)."""

INSTALL_TRAIN = "pip install 'prolong-data[train]' (in a clone of the repository: pip install '.[train]')"


class TrainExtraMissing(RuntimeError):
    """A command needs the `train` extra and a package of it is not installed."""


def require_train_extra(command: str, modules: tuple[str, ...] = TRAIN_MODULES) -> None:
    """Raise `TrainExtraMissing` (the message names the install command) when one of `modules` is
    missing; `command` is what the user ran, e.g. `python -m trainer.train`."""
    missing = [name for name in modules if _missing(name)]
    if missing:
        raise TrainExtraMissing(
            f"{command} needs the `train` extra ({', '.join(missing)} not installed): {INSTALL_TRAIN}"
        )


def _missing(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):  # a module made unimportable, or one without a spec
        return True


def exit_unless_train_extra(command: str) -> None:
    """At the top of a command's module, before it imports torch: print `TrainExtraMissing`'s line
    and exit with status 2 (a user error) when the `train` extra is not installed."""
    try:
        require_train_extra(command)
    except TrainExtraMissing as err:
        print(err, file=sys.stderr)
        raise SystemExit(2) from None
