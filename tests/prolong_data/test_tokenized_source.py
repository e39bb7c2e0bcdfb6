"""The `tokenized` source: MDS shards back into documents, in our layout and ProLong's."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prolong_data.contract import PRETRAIN_COLUMNS, SFT_COLUMNS
from prolong_data.mds_format import NativeMDSWriter, iter_samples, merge_indexes
from prolong_data.sources.tokenized import TokenizedShardsReader

BOS, EOS = 128000, 128001


def doc(n: int, start: int, eos: bool = True) -> list[int]:
    """A document of `n` tokens: BOS, distinct body ids, EOS."""
    body = list(range(start, start + n - 1 - eos))
    return [BOS, *body, *([EOS] if eos else [])]


def pack(docs: list[list[int]], seq_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Concat-and-split with a new span at every sequence start (as our `concat` packer does)."""
    stream = np.concatenate([np.asarray(d, np.uint32) for d in docs])
    ends = np.cumsum([len(d) for d in docs])
    out = []
    for s in range(0, len(stream) // seq_len * seq_len, seq_len):
        cuts = sorted({0, seq_len, *(int(e - s) for e in ends if s < e < s + seq_len)})
        spans = np.asarray(list(zip(cuts[:-1], cuts[1:])), np.uint32)
        out.append((stream[s : s + seq_len], spans))
    return out


def write_prolong_folder(root, samples, ranks: int = 2, masks=None, size_limit: int = 3000) -> None:
    """ProLong's released layout: `procNN-64/` rank folders under one merged index.json, no manifest."""
    columns = SFT_COLUMNS if masks is not None else PRETRAIN_COLUMNS
    per_rank = -(-len(samples) // ranks)
    for r in range(ranks):
        with NativeMDSWriter(root / f"proc{r:02d}-64", columns, size_limit=size_limit) as w:
            for i in range(r * per_rank, min((r + 1) * per_rank, len(samples))):
                ids, spans = samples[i]
                row = {"input_ids": ids, "indices": spans, "domain": root.name, "length": len(ids)}
                if masks is not None:
                    row["mask"] = masks[i]
                w.write(row)
    merge_indexes(sorted(root.glob("proc*-64/index.json")), root)


def read(folder, world_size: int = 1, **options):
    reader = TokenizedShardsReader([str(folder)], **options)
    docs = [d for rank in range(world_size) for d in reader.run(rank=rank, world_size=world_size)]
    return docs, reader


def test_prolong_layout_documents_come_back_whole(tmp_path):
    docs = [doc(n, 1000 * i) for i, n in enumerate([50, 7, 130, 20, 64, 3, 90])]
    folder = tmp_path / "prolong-data-64K" / "book-65536"
    write_prolong_folder(folder, pack(docs, 40))
    assert sorted(p.name for p in folder.iterdir()) == ["index.json", "proc00-64", "proc01-64"]
    got, reader = read(folder)
    kept = sum(len(d) for d in docs) // 40 * 40  # the packer dropped the last partial sequence
    stream = np.concatenate([np.asarray(d, np.uint32) for d in docs])[:kept]
    assert np.array_equal(np.concatenate([d.tokens for d in got]), stream)
    # every document that was cut by a sequence boundary is whole again (the last one: its kept part)
    lengths = [len(d.tokens) for d in got]
    assert lengths[:-1] == [len(d) for d in docs][: len(lengths) - 1]
    assert reader.counts["rejoined_pieces"] > 0 and got[0].id == "book-65536/0:0"
    assert all(d.tokens[0] == BOS for d in got) and all(d.mask is None for d in got)


def test_pieces_stay_apart_without_rejoin_or_where_tokens_do_not_show_it(tmp_path):
    docs = [doc(30, 0), doc(30, 100, eos=False), doc(30, 200)]
    samples = pack(docs, 20)  # 90 tokens -> 4 sequences of 20 (10 dropped)
    folder = tmp_path / "d"
    write_prolong_folder(folder, samples, ranks=1)
    got, _ = read(folder, rejoin=False)
    assert len(got) == sum(len(s) for _, s in samples)
    got, _ = read(folder)
    # doc 1 has no EOS, but doc 2 starts with BOS: they stay two documents
    assert [len(d.tokens) for d in got] == [30, 30, 20]


def test_tasks_read_contiguous_ranges_in_order(tmp_path):
    docs = [doc(n, 1000 * i) for i, n in enumerate([25, 60, 10, 45, 33, 70, 12])]
    folder = tmp_path / "d"
    write_prolong_folder(folder, pack(docs, 16), ranks=3)
    whole, _ = read(folder)
    split, _ = read(folder, world_size=3)
    assert np.array_equal(
        np.concatenate([d.tokens for d in split]), np.concatenate([d.tokens for d in whole])
    )
    assert len(split) >= len(whole)  # a document cut by a task boundary stays in two pieces


def test_sft_masks_follow_their_tokens_and_padding_is_dropped(tmp_path):
    rng = np.random.default_rng(0)
    chats = [doc(n, 500 * i) for i, n in enumerate([12, 9, 15, 6])]
    samples, masks = [], []
    for group in ([0, 1], [2], [3]):  # best-fit sequences of 24 with an EOS padding span
        ids = [t for i in group for t in chats[i]]
        pad = 24 - len(ids)
        mask = [int(rng.integers(0, 2)) | (k == 1) for k in range(len(ids))] + [0] * pad
        ends = np.cumsum([len(chats[i]) for i in group] + [pad])
        cuts = [0, *ends.tolist()]
        samples.append(
            (np.asarray(ids + [EOS] * pad, np.uint32), np.asarray(list(zip(cuts, cuts[1:])), np.uint32))
        )
        masks.append(np.asarray(mask, np.uint8))
    folder = tmp_path / "ultrachat"
    write_prolong_folder(folder, samples, ranks=2, masks=masks)
    got, reader = read(folder)
    assert [d.tokens.tolist() for d in got] == chats
    want = np.concatenate(
        [
            m[: len(s[0]) - (24 - sum(len(chats[i]) for i in g))]
            for m, s, g in zip(masks, samples, ([0, 1], [2], [3]))
        ]
    )
    assert np.array_equal(np.concatenate([d.mask for d in got]), want)
    assert reader.counts["padding_spans"] == 3 and reader.counts["padding_tokens"] == 3 * 24 - 42


def test_bad_shards_are_counted_and_the_rest_is_read(tmp_path):
    docs = [doc(40, 1000 * i) for i in range(10)]
    folder = tmp_path / "d"
    write_prolong_folder(folder, pack(docs, 20), ranks=2, size_limit=600)
    index = json.loads((folder / "index.json").read_text())
    assert len(index["shards"]) > 2
    victim = folder / index["shards"][1]["raw_data"]["basename"]
    victim.write_bytes(victim.read_bytes()[:50])  # truncated
    got, reader = read(folder, bad_input_file=str(tmp_path / "bad.{rank}.json"))
    assert reader.bad.counts == {"unreadable_file": 1}
    assert (
        "truncated"
        in json.loads((tmp_path / "bad.0.json").read_text())["examples"]["unreadable_file"][0]["detail"]
    )
    read_samples = sum(int(s["samples"]) for i, s in enumerate(index["shards"]) if i != 1)
    assert reader.counts["sequences"] == read_samples and got


def test_missing_index_fails_at_once(tmp_path):
    from prolong_data.sources import SourcePathError

    with pytest.raises(SourcePathError, match="has no index.json"):
        TokenizedShardsReader([str(tmp_path)]).check()


def test_native_reader_reads_what_streaming_reads(tmp_path):
    from streaming import StreamingDataset

    docs = [doc(n, 1000 * i) for i, n in enumerate([50, 7, 130, 20, 64])]
    folder = tmp_path / "d"
    write_prolong_folder(folder, pack(docs, 30), ranks=2)
    ours = list(iter_samples(folder))
    ds = StreamingDataset(local=str(folder), shuffle=False, batch_size=1)
    assert len(ours) == len(ds)
    for i, row in enumerate(ours):
        theirs = ds[i]
        assert (
            set(row) == set(theirs)
            and row["domain"] == theirs["domain"]
            and row["length"] == theirs["length"]
        )
        assert np.array_equal(row["input_ids"], theirs["input_ids"]) and np.array_equal(
            row["indices"], theirs["indices"]
        )
    assert [r["length"] for r in iter_samples(folder, 2, 4)] == [30, 30]
