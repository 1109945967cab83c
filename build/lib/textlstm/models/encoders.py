"""Sequence encoders: (B, T, E) embeddings + lengths -> (B, T, D) states and (B, D) finals.

Padding never changes a result. Two ways to get there, picked per device by measurement
(measurements in docs/benchmarks.md):

- `packed`: `pack_padded_sequence` through one `nn.LSTM`/`nn.GRU` call. cuDNN handles it
  well; on CPU its backward pass is several times slower than a padded batch
  (pytorch/pytorch#149194).
- `padded`: each direction of each layer runs as its own unidirectional call on a plain
  padded batch. The forward direction reads padding only *after* each text's last token, so
  its states at real positions are exact. The backward direction runs on each text reversed
  within its own length (padding still at the end) and is flipped back, so it starts at the
  text's own last token. Same weights, same numbers, no PackedSequence. A batch with no
  padding at all (frequent once batches are sorted by length) takes one fused call instead.

The parameters live in a standard `nn.LSTM`/`nn.GRU` module, so the state dict layout is
PyTorch's (`weight_ih_l0`, `weight_hh_l0_reverse`, ...) whichever path runs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textlstm.models.masks import final_states, padding_mask, reverse_index, reverse_padded


class RNNEncoder(nn.Module):
    """`nn.LSTM` or `nn.GRU`, uni- or bidirectional, stacked, padding-exact.

    forward(x (B, T, E), lengths (B,)) -> (outputs (B, T, D), final (B, D)) where
    D = hidden_size * directions, `final` is the last real step of the forward direction
    concatenated with the backward direction's state at step 0 (what it saw last), and
    outputs at padded positions are zero.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = True,
                 dropout: float = 0.0, cell: str = "lstm", impl: str = "auto"):
        super().__init__()
        rnn_cls = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.cell = cell
        self.rnn = rnn_cls(input_size, hidden_size, num_layers=num_layers,
                           bidirectional=bidirectional,
                           dropout=dropout if num_layers > 1 else 0.0, batch_first=True)
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        self.dropout = dropout
        self.impl = impl

    def get_input_dim(self) -> int:
        return self.rnn.input_size

    def get_output_dim(self) -> int:
        return self.hidden_size * self.num_directions

    def _use_packed(self, x: torch.Tensor) -> bool:
        return self.impl == "packed" or (self.impl == "auto" and x.is_cuda)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        if self._use_packed(x):
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            # (B, T, D), zeros at pads
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
        elif bool((lengths == T).all()):
            # no padding at all (common once batches are sorted by length): one fused call is
            # exact, and skips the per-direction reversal and masking
            out, _ = self.rnn(x)  # (B, T, D)
        else:
            out = self._padded(x, lengths)
        return out, self.final_states(out, lengths)

    def final_states(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return final_states(out, lengths, self.num_directions)  # (B, D)

    def _weights(self, layer: int, reverse: bool) -> list[torch.Tensor]:
        sfx = f"l{layer}" + ("_reverse" if reverse else "")
        return [getattr(self.rnn, f"{n}_{sfx}") for n in ("weight_ih", "weight_hh", "bias_ih",
                                                          "bias_hh")]

    def _run(self, x: torch.Tensor, layer: int, reverse: bool) -> torch.Tensor:
        B = x.size(0)
        h0 = x.new_zeros(1, B, self.hidden_size)
        w = self._weights(layer, reverse)
        # one layer, one direction, no dropout inside: the same kernels nn.LSTM calls
        if self.cell == "lstm":
            return torch.lstm(x, (h0, h0), w, True, 1, 0.0, self.training, False, True)[0]
        return torch.gru(x, h0, w, True, 1, 0.0, self.training, False, True)[0]

    def _padded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        mask = padding_mask(lengths, T).unsqueeze(-1)  # (B, T, 1)
        rev = reverse_index(lengths, T) if self.num_directions == 2 else None
        h = x
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                h = nn.functional.dropout(h, self.dropout, self.training)
            outs = [self._run(h, layer, reverse=False)]  # (B, T, H)
            if rev is not None:
                outs.append(reverse_padded(self._run(reverse_padded(h, rev), layer, reverse=True),
                                           rev))
            h = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
            h = h * mask  # zero the states at padded positions, as pad_packed_sequence does
        return h
