"""Batches: length-bucketed sampling and padding to the longest text in the batch.

A batch is a dict of plain tensors, `ids` (B, T) padded with 0, `lengths` (B,) and
`labels` (B,). Packing (if any) happens inside the model, so no PackedSequence ever crosses
the DataLoader.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Sampler


def collate(examples: list[dict]) -> dict[str, torch.Tensor]:
    lengths = torch.tensor([max(1, len(e["ids"])) for e in examples], dtype=torch.long)
    ids = torch.zeros(len(examples), int(lengths.max()), dtype=torch.long)  # (B, T), 0 = <pad>
    for row, e in enumerate(examples):
        if len(e["ids"]):
            ids[row, : len(e["ids"])] = torch.as_tensor(e["ids"], dtype=torch.long)
        else:
            ids[row, 0] = 1  # an empty text is one <unk>, so every sequence has a last token
    batch = {"ids": ids, "lengths": lengths}
    if "label_id" in examples[0]:
        batch["labels"] = torch.tensor([e["label_id"] for e in examples], dtype=torch.long)
    return batch


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length, so little of each batch is padding.

    Shuffle the indices, cut them into chunks of `bucket_factor` batches, sort each chunk by
    length, cut it into batches, then shuffle the batches. With `max_tokens` a batch holds as
    many texts as fit the budget (padded size = count * longest), so long and short batches
    cost about the same memory. Deterministic for a given (seed, epoch); call `set_epoch`
    (Lightning does) to reshuffle. Without shuffle the order is simply sorted by length. With
    `exact`, every batch holds texts of one length (zero padding; see `make bench`).
    """

    def __init__(self, lengths, batch_size: int, max_tokens: int | None = None, shuffle: bool = True,
                 seed: int = 0, bucket_factor: int = 50, drop_last: bool = False, exact: bool = False,
                 even_shards: bool | None = None):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_factor = bucket_factor
        self.drop_last = drop_last
        self.exact = exact  # batches of one length only: no padding, at the price of more short batches
        # under torch.distributed every rank computes the same batch list (same seed and epoch) and
        # takes every world_size-th batch. Training needs the same number of batches on every
        # rank (or DDP's all-reduce hangs), so it repeats a few from the start; evaluation must
        # count each text once, so its shards are disjoint and may differ by one text.
        self.even_shards = shuffle if even_shards is None else even_shards
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _cut(self, order: np.ndarray) -> list[list[int]]:
        if self.max_tokens is None:
            return [order[i : i + self.batch_size].tolist() for i in range(0, len(order), self.batch_size)]
        batches, cur, longest = [], [], 0
        for i in order.tolist():
            n = max(1, int(self.lengths[i]))
            if cur and (max(longest, n) * (len(cur) + 1) > self.max_tokens or len(cur) >= self.batch_size * 64):
                batches.append(cur)
                cur, longest = [], 0
            cur.append(i)
            longest = max(longest, n)
        if cur:
            batches.append(cur)
        return batches

    def batches(self) -> list[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            return self._cut(np.argsort(self.lengths, kind="stable"))
        rng = np.random.default_rng((self.seed, self.epoch))
        perm = rng.permutation(n)
        if self.exact:  # group the shuffled indices by length, cut each group into batches
            lens = np.maximum(self.lengths[perm], 1)
            out = []
            for length in np.unique(lens):
                out.extend(self._cut(perm[lens == length]))
            order = rng.permutation(len(out))
            return [out[i] for i in order]
        chunk = self.batch_size * self.bucket_factor
        out = []
        for start in range(0, n, chunk):
            part = perm[start : start + chunk]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            out.extend(self._cut(part))
        if self.drop_last and self.max_tokens is None:
            out = [b for b in out if len(b) == self.batch_size]
        order = rng.permutation(len(out))
        return [out[i] for i in order]

    @staticmethod
    def _world() -> tuple[int, int]:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def _shard(self, batches: list[list[int]]) -> list[list[int]]:
        rank, world = self._world()
        if world == 1:
            return batches
        if self.even_shards:
            total = -(-len(batches) // world) * world
            batches = batches + batches[: total - len(batches)]
            return batches[rank::world]
        # evaluation: deal the texts (in batch order, i.e. by length) out one by one, so every
        # rank gets work even when the split fits in a single batch
        order = np.fromiter((i for b in batches for i in b), dtype=np.int64)
        return self._cut(order[rank::world])

    def __iter__(self):
        yield from self._shard(self.batches())

    def __len__(self) -> int:
        if self._world()[1] > 1:
            return len(self._shard(self.batches()))
        return self._len_single()

    def _len_single(self) -> int:
        if self.max_tokens is None and not (self.exact and self.shuffle):
            full = len(self.lengths) // self.batch_size
            if self.drop_last:
                return full
            # chunks are cut separately, so each chunk may end in a short batch
            chunk = self.batch_size * self.bucket_factor if self.shuffle else len(self.lengths)
            return sum(math.ceil(min(chunk, len(self.lengths) - s) / self.batch_size)
                       for s in range(0, len(self.lengths), max(1, chunk)))
        return len(self.batches())
