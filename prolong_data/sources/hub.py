"""Hugging Face datasets: by name on the hub, or file-format datasets (`json`, `parquet`) from files."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from prolong_data.sources.registry import ReaderContext, SourceConfig, register_source


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


@register_source
@dataclass(kw_only=True)
class HubSource(SourceConfig):
    """`hub`: a Hugging Face dataset by name, streamed (or a file-format dataset from `data_files`)."""

    kind: str = "hub"
    dataset: str
    """The dataset name on the Hugging Face hub (or `json` / `parquet` with `data_files`)."""
    split: str = "train"
    """The dataset split."""
    config: str | None = None
    """The dataset configuration name."""
    data_files: list[str] = field(default_factory=list)
    """The files of a file-format dataset (`dataset: json` or `parquet`), local paths or URLs;
    `{corpus}` is expanded. Empty for a dataset named on the hub."""
    text_key: str = "text"
    """The field holding the text."""
    id_key: str = "id"
    """The field holding a document id."""

    path_fields: ClassVar[tuple[str, ...]] = ("data_files",)

    def reader(self, context: ReaderContext):
        return hub_reader(
            self.dataset,
            split=self.split,
            config=self.config,
            data_files=self.data_files,
            text_key=self.text_key,
            id_key=self.id_key,
        )
