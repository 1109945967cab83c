"""Length-bucketed sampling: which texts go into each batch (see batches/collate.py for
how a batch is padded)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
from torch.utils.data import Sampler

from textlstm.core.hardware import rank_and_world

# `data.class_sampling`: a text of a class with n_c training texts is drawn with probability
# proportional to n_c ** -q, so a class's share of an epoch is proportional to n_c ** (1 - q):
# q = 0 is the plain shuffle, 0.5 square-root and 1 class-balanced sampling (every class equally
# often), the three re-sampling rules of Kang et al. 2020, "Decoupling Representation and
# Classifier for Long-Tailed Recognition". Re-sampling, not a re-weighted loss: the existing
# `model.class_weights=balanced` already weights the loss, and a class with 2 texts weighted
# 200x makes a few huge, noisy steps, while drawing it more often spreads the same emphasis over
# many ordinary batches (and it composes with any loss, the token budget and DDP unchanged).
CLASS_SAMPLING = {"none": 0.0, "sqrt": 0.5, "balanced": 1.0}


def class_sampling_weights(label_ids, rule: str) -> np.ndarray | None:
    """Each text's draw probability under `rule` (a key of CLASS_SAMPLING), summing to 1; None
    for `none` (the plain permutation)."""
    q = CLASS_SAMPLING[rule]
    if q == 0.0:
        return None
    label_ids = np.asarray(label_ids, dtype=np.int64)
    counts = np.bincount(label_ids)
    w = counts[label_ids].astype(np.float64) ** -q
    return w / w.sum()


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length, so little of each batch is padding.

    Shuffle the indices, cut them into chunks of `bucket_factor` batches, sort each chunk by
    length, cut it into batches, then shuffle the batches. With `max_tokens` a batch holds as
    many texts as fit the budget (padded size = count * longest), at most `batch_size`, so long
    documents come in smaller batches and no batch costs more memory than the budget
    (fairseq's max-tokens and max-sentences, together). Deterministic for a given (seed,
    epoch); call `set_epoch` (Lightning does, through `.sampler`) to reshuffle. Without
    shuffle the order is simply sorted by length. With `exact`, every batch holds texts of one
    length (zero padding; see `make bench`). With `weights` (a draw probability per text,
    `class_sampling_weights`) an epoch is len(lengths) texts drawn with replacement by those
    probabilities instead of a permutation, then bucketed the same way.

    An epoch's plan is two numpy arrays (the indices in batch order and where each batch
    starts), about 16 bytes per text: a corpus of millions of texts never becomes Python lists
    (`make bench-scale` measures it). Batches become lists one at a time, as they are drawn.
    """

    def __init__(self, lengths, batch_size: int, max_tokens: int | None = None,
                 shuffle: bool = True, seed: int = 0, bucket_factor: int = 50,
                 drop_last: bool = False, exact: bool = False, even_shards: bool | None = None,
                 weights: np.ndarray | None = None):
        # an empty text is one <unk>
        self.lengths = np.maximum(np.asarray(lengths, dtype=np.int32), 1)
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_factor = bucket_factor
        self.drop_last = drop_last
        # batches of one length only: no padding, at the price of more short batches
        self.exact = exact
        self.weights = weights  # per-text draw probabilities (data.class_sampling); shuffle only
        # under torch.distributed every rank computes the same plan (same seed and epoch) and
        # takes every world_size-th batch. Training needs the same number of batches on every
        # rank (or DDP's all-reduce hangs), so it repeats a few from the start; evaluation must
        # count each text once, so its shards are disjoint and may differ by one text.
        self.even_shards = shuffle if even_shards is None else even_shards
        self.epoch = 0
        self._cache: tuple | None = None
        # Lightning reshuffles by calling `dataloader.batch_sampler.sampler.set_epoch(epoch)` (the
        # attribute torch's BatchSampler has); without it every epoch would repeat epoch 0's order
        self.sampler = self

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    # ------------------------------------------------------------ the plan of one epoch

    def _starts(self, order: np.ndarray, segments: np.ndarray) -> np.ndarray:
        """Batch start offsets into `order`; `segments` are offsets no batch may cross."""
        bs = self.batch_size
        if self.max_tokens is None:
            pieces = [np.arange(s, e, bs) for s, e in pairwise(segments.tolist())]
            return np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, np.int64)
        # greedy: grow a batch while count * longest fits the budget (segments are cut
        # separately and converted to Python one at a time, so memory stays O(segment))
        cap, out = bs, []
        for s, e in pairwise(segments.tolist()):
            count = longest = 0
            for k, length in enumerate(self.lengths[order[s:e]].tolist(), start=s):
                if count and (max(longest, length) * (count + 1) > self.max_tokens or count >= cap):
                    count = longest = 0
                if count == 0:
                    out.append(k)
                count += 1
                longest = max(longest, length)
        return np.asarray(out, dtype=np.int64)

    def _plan_single(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(order, bounds, pick): batch k is order[bounds[pick[k]] : bounds[pick[k] + 1]]."""
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            starts = self._starts(order, np.array([0, n]))
            bounds = np.append(starts, n)
            return order, bounds, np.arange(len(starts))
        rng = np.random.default_rng((self.seed, self.epoch))
        if self.weights is None:
            perm = rng.permutation(n).astype(np.int32)  # int32 indices: 4 bytes per text
        else:  # the same epoch size, drawn with replacement (every rank draws the same plan)
            perm = rng.choice(n, size=n, replace=True, p=self.weights).astype(np.int32)
        lens = self.lengths[perm]
        if self.exact:  # group the shuffled indices by length (stable: shuffled within a length)
            by_len = np.argsort(lens, kind="stable")
            order = perm[by_len]
            sorted_lens = lens[by_len]
            segments = np.flatnonzero(np.diff(sorted_lens, prepend=-1, append=-1))
        else:  # sort each chunk of bucket_factor batches by length, chunks stay in shuffled order
            chunk = self.batch_size * self.bucket_factor
            segments = np.append(np.arange(0, n, chunk), n)
            order = perm
            for s, e in pairwise(segments.tolist()):
                order[s:e] = perm[s:e][np.argsort(lens[s:e], kind="stable")]
        starts = self._starts(order, segments)
        bounds = np.append(starts, n)
        keep = np.arange(len(starts))
        if self.drop_last and self.max_tokens is None:
            keep = keep[np.diff(bounds) == self.batch_size]
        return order, bounds, keep[rng.permutation(len(keep))]

    def _plan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rank, world = self._world()
        key = (self.epoch, rank, world)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        order, bounds, pick = self._plan_single()
        if world > 1 and self.even_shards:
            total = -(-len(pick) // world) * world
            pick = np.concatenate([pick, pick[: total - len(pick)]])[rank::world]
        elif world > 1:
            # evaluation: deal the texts (in batch order, i.e. by length) out one by one, so every
            # rank gets work even when the split fits in a single batch
            order = np.concatenate([order[bounds[b] : bounds[b + 1]] for b in pick])[rank::world]
            bounds = np.append(self._starts(order, np.array([0, len(order)])), len(order))
            pick = np.arange(len(bounds) - 1)
        plan = (order, bounds, pick)
        self._cache = (key, plan)
        return plan

    @staticmethod
    def _world() -> tuple[int, int]:
        return rank_and_world()

    def batches(self) -> list[list[int]]:
        """This epoch's batches (this rank's share) as lists: for tests and small data."""
        return list(self)

    def __iter__(self):
        order, bounds, pick = self._plan()
        for b in pick.tolist():
            yield order[bounds[b] : bounds[b + 1]].tolist()

    def __len__(self) -> int:
        return len(self._plan()[2])
