"""What the trainer checks before it starts a process group, a model or a data loader: that the
shards of the mixture and the run's configuration fit together.

* every domain of the mixture holds at least one sample (streaming cannot sample an empty stream);
* every token id the shards can hold is a row of the model's embedding: the vocabulary size that
  each domain's ``manifest.json`` records for its tokenizer is at most the model's ``vocab_size``;
  a folder without a manifest (written by other tools) records none, and only its first sample's
  ids are checked;
* ``data.apply_masks: true`` needs a ``mask`` column in at least one domain; domains without one
  train on every token, and the run says which.

A failed check is a ``ValueError`` with one line saying what to fix (``cli`` turns it into exit
status 2); ``check_run`` returns the notices to print when nothing failed.
"""

from __future__ import annotations

import json
from pathlib import Path

from prolong_data.layout import MANIFEST
from prolong_data.mds_format import MDSFormatError, iter_samples, read_index
from prolong_data.mixture import Mixture
from trainer.config import Config
from trainer.data import load_mixture, masked_domains


def check_run(cfg: Config) -> list[str]:
    """Checks the mixture of ``cfg`` against ``cfg`` (see the module docstring); returns notices."""
    mixture, root = load_mixture(cfg.data.mixture)
    check_no_empty_domain(mixture, root, cfg.data.mixture)
    check_vocabulary(mixture, root, model_vocab_size(cfg), model_label(cfg))
    return mask_notices(mixture, root, cfg.data.apply_masks, cfg.data.mixture)


def check_no_empty_domain(mixture: Mixture, root: Path, where) -> None:
    """ValueError naming the first domain whose ``index.json`` lists no sample."""
    for domain, folder in mixture.resolved_paths(root).items():
        samples = sum(int(shard.get("samples", 0)) for shard in read_index(folder))
        if samples == 0:
            raise ValueError(
                f"{where}: domain {domain!r} ({folder}) holds no samples; rebuild it with more data, or "
                "remove it from mixture.json (and spread its proportion over the others)"
            )


def recorded_tokenizers(mixture: Mixture, root: Path) -> dict[str, dict]:
    """domain -> the tokenizer entry of its ``manifest.json`` (domains without one are left out)."""
    found = {}
    for domain, folder in mixture.resolved_paths(root).items():
        path = folder / MANIFEST
        if not path.is_file():
            continue
        try:
            tokenizer = json.loads(path.read_text()).get("tokenizer")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
            raise ValueError(
                f"{path} is not a valid manifest ({type(err).__name__}); rebuild the domain"
            ) from None
        if isinstance(tokenizer, dict) and isinstance(tokenizer.get("vocab_size"), int):
            found[domain] = tokenizer
    return found


def check_vocabulary(mixture: Mixture, root: Path, vocab_size: int | None, model: str) -> None:
    """ValueError when a domain's tokenizer has more ids than the model's embedding has rows."""
    if vocab_size is None:
        return
    recorded = recorded_tokenizers(mixture, root)
    for domain, tokenizer in recorded.items():
        if tokenizer["vocab_size"] > vocab_size:
            raise ValueError(
                f"domain {domain!r} was tokenized with {tokenizer.get('name', '?')} ({tokenizer['vocab_size']:,} "
                f"ids) but {model} has vocab_size {vocab_size:,}: ids up to {tokenizer['vocab_size'] - 1:,} "
                "have no embedding; train a model of that tokenizer (or set tiny.vocab_size), or rebuild "
                "the shards with the model's tokenizer"
            )
    for domain, folder in mixture.resolved_paths(root).items():
        if domain in recorded:
            continue
        largest = first_sample_largest_id(folder)
        if largest is not None and largest >= vocab_size:
            raise ValueError(
                f"domain {domain!r} ({folder}, no manifest.json) holds token id {largest:,} in its first "
                f"sample but {model} has vocab_size {vocab_size:,}; train a model of the shards' tokenizer "
                "(or set tiny.vocab_size)"
            )


def first_sample_largest_id(folder: Path) -> int | None:
    """The largest token id of the first sample of an MDS folder (None: no sample, or unreadable:
    the data loader reports that itself)."""
    try:
        row = next(iter_samples(folder, 0, 1), None)
    except (MDSFormatError, OSError):
        return None
    ids = None if row is None else row.get("input_ids")
    return int(ids.max()) if ids is not None and len(ids) else None


def model_vocab_size(cfg: Config) -> int | None:
    """Rows of the model's embedding: ``tiny.vocab_size``, or the checkpoint config's ``vocab_size``."""
    if cfg.model.tiny:
        return cfg.tiny.vocab_size
    from trainer.model import load_hf_config

    size = getattr(load_hf_config(cfg.model.path), "vocab_size", None)
    return size if isinstance(size, int) else None


def model_label(cfg: Config) -> str:
    return "the tiny model" if cfg.model.tiny else f"model.path={cfg.model.path}"


def mask_notices(mixture: Mixture, root: Path, apply_masks: bool, where) -> list[str]:
    """With ``apply_masks``: a ValueError when no domain has a mask column, else a notice naming
    the domains without one (every token of theirs is a target). Nothing without it (the loader
    warns about ignored masks)."""
    if not apply_masks:
        return []
    masked = masked_domains(mixture, root)
    if not masked:
        raise ValueError(
            f"data.apply_masks=true but no domain of {where} has a `mask` column, so every token would be "
            "a target; train on SFT shards (a `chat` source packs them with masks) or set "
            "--data.apply_masks=false"
        )
    plain = [s.domain for s in mixture.streams if s.domain not in masked]
    if not plain:
        return []
    return [
        f"data.apply_masks=true: domains {plain} have no `mask` column; every token of theirs is a target"
    ]
