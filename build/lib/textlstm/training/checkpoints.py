"""Checkpoints that survive a kill, and the state a resumed run needs to continue exactly.

- `AtomicCheckpointIO`: write a temporary file beside the target, fsync, then rename. A kill at
  any moment leaves the previous checkpoint or the new one, never half a file. (Lightning's
  own writer stages in the system temp dir and moves across file systems by copying.)
- `RNGState`: the Python, NumPy and torch generators go into every checkpoint and come back
  on resume, so dropout draws after a resume are the ones the uninterrupted run made.
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from textlstm.core.hardware import rank_and_world
from textlstm.core.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb", fsync=True) as fh:
            torch.save(checkpoint, fh)


class RNGState(L.Callback):
    """Saves and restores the global random generators with the checkpoint.

    Under DDP each rank's generators have drawn differently (its batches differ in shape), so
    every rank's state is gathered into rank 0's checkpoint and each rank gets its own back."""

    @staticmethod
    def _local() -> dict:
        # stored as plain tensors / lists so `torch.load(weights_only=True)` can read them back
        py = random.getstate()
        np_state = np.random.get_state()
        return {
            "torch": torch.get_rng_state(),
            "python": [py[0], list(py[1]), py[2]],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        }

    def state_dict(self) -> dict:
        world = rank_and_world()[1]
        if world == 1:
            return self._local()
        import torch.distributed as dist

        states = [None] * world
        dist.all_gather_object(states, self._local())  # every rank saves, rank 0 writes
        return {"ranks": states}

    def load_state_dict(self, state: dict) -> None:
        if "ranks" in state:  # a DDP checkpoint: this rank's own state (rank 0's if the world grew)
            rank = rank_and_world()[0]
            state = state["ranks"][rank if rank < len(state["ranks"]) else 0]
        torch.set_rng_state(state["torch"])
        v, inner, gauss = state["python"]
        random.setstate((v, tuple(inner), gauss))
        name, keys, *rest = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
