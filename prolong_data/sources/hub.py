"""Hugging Face datasets by name (needs the hub; this machine's tests cannot reach it)."""

from __future__ import annotations


def hub_reader(
    dataset: str, *, split: str = "train", config: str | None = None, text_key: str = "text", **kwargs
):
    """datatrove's `HuggingFaceDatasetReader` for `dataset`, streaming `split`.

    The reader shards the dataset's files over a build's tasks. Errors reaching the hub
    surface when the task runs; build from local jsonl/parquet copies when offline.
    """
    from datatrove.pipeline.readers import HuggingFaceDatasetReader

    options = {"split": split, **({"name": config} if config else {})}
    return HuggingFaceDatasetReader(
        dataset, dataset_options=options, text_key=text_key, streaming=True, **kwargs
    )
