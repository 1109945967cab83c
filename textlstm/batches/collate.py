"""A batch: token ids padded to the longest text in the batch.

A batch is a dict of plain tensors, `ids` (B, T) padded with 0, `lengths` (B,) and
`labels`: (B,) class ids, or for a multi-label split (B, C) floats, 1.0 where a label
applies. Packing (if any) happens inside the model, so no PackedSequence ever crosses the
DataLoader.
"""

from __future__ import annotations

import torch


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
    elif "label_hot" in examples[0]:
        # float targets: BCEWithLogitsLoss takes them as they are
        batch["labels"] = torch.tensor([e["label_hot"] for e in examples], dtype=torch.float)
    return batch
