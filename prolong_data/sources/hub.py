"""Hugging Face datasets: by name on the hub, or file-format datasets (`json`, `parquet`) from files."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence


def hub_reader(
    dataset: str,
    *,
    split: str = "train",
    config: str | None = None,
    data_files: Sequence[str] = (),
    text_key: str = "text",
    id_key: str = "id",
    **kwargs,
):
    """datatrove's `HuggingFaceDatasetReader` for `dataset`, streaming `split`.

    `dataset` is a name on the hub (`HuggingFaceFW/fineweb-edu`, with `config` for its subset),
    or a file-format builder (`json`, `parquet`, `csv`) with `data_files`. A streamed dataset is
    shared over a build's tasks by its files. Errors reaching the hub surface when the task runs;
    offline, point `data_files` at local copies (or use a `rows` source).
    """
    if importlib.util.find_spec("datasets") is None:
        raise ValueError(
            f"the hub source {dataset!r} needs the `datasets` package: pip install 'prolong-data[hub]'"
        )
    from datatrove.pipeline.readers import HuggingFaceDatasetReader

    options: dict = {"split": split}
    if config:
        options["name"] = config
    if data_files:
        options["data_files"] = list(data_files)
    return HuggingFaceDatasetReader(
        dataset, dataset_options=options, text_key=text_key, id_key=id_key, streaming=True, **kwargs
    )
