"""LSTM cells written out from the gate equations (input, forget and output gates, candidate,
cell and hidden state; optional peepholes from the cell state into the gates).

- `ReferenceLSTMCell` / `ReferenceLSTM`: the equations one step at a time, nothing fused, every
  activation swappable, optional peepholes. Slow on purpose: it is the readable ground truth the
  tests hold `nn.LSTM` against, and it can record every gate for a gate inspector.
- `PeepholeEncoder`: a trainable peephole LSTM with `RNNEncoder`'s interface. The input
  projection of all steps is one batched matmul; only the recurrence loops in Python, with a
  hand-written backward pass (autograd over ~15 small ops per step is what makes a Python loop
  slow on CPU: by hand it is about 2x faster; torch.jit.script of the loops gained 0-10%, within
  noise, and is deprecated in torch 2.13, so it is not used).

Parameters use `nn.LSTM`'s layout: weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh, gate
rows in the order i, f, g, o. The seed's W·[h, x] + b is weight_hh·h + weight_ih·x + bias_ih +
bias_hh. Peepholes are diagonal, so each is a vector (H,): w_ci, w_cf on c_{t-1}, w_co on c_t.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from textlstm.models.encoders import RNNEncoder
from textlstm.models.masks import final_states, padding_mask, reverse_index, reverse_padded

Activation = Callable[[torch.Tensor], torch.Tensor]
GATES = ("i", "f", "g", "o", "c", "h")
DIRECTIONS = ("forward", "backward")
LSTM_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
PEEPHOLES = ("w_ci", "w_cf", "w_co")


def identity(z: torch.Tensor) -> torch.Tensor:
    return z


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "identity": identity,
}


def activation(a: str | Activation) -> Activation:
    return ACTIVATIONS[a] if isinstance(a, str) else a


# -------------------------------------------------------------------------------------------------
# reference: the seed equations, one step at a time


class ReferenceLSTMCell(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, peephole: bool = False,
                 gate_activation: str | Activation = torch.sigmoid,
                 cell_activation: str | Activation = torch.tanh,
                 output_activation: str | Activation = torch.tanh):
        super().__init__()
        self.input_size, self.hidden_size, self.peephole = input_size, hidden_size, peephole
        self.gate_activation = activation(gate_activation)      # σ in the seed
        self.cell_activation = activation(cell_activation)      # tanh for g (seed §3: identity)
        self.output_activation = activation(output_activation)  # tanh for h (seed §3: identity)
        H = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * H, H))
        self.bias_ih = nn.Parameter(torch.empty(4 * H))
        self.bias_hh = nn.Parameter(torch.empty(4 * H))
        for name in PEEPHOLES:
            self.register_parameter(name, nn.Parameter(torch.empty(H)) if peephole else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        k = 1.0 / math.sqrt(self.hidden_size)  # nn.LSTM's init, peepholes included
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        h, c = state  # (B, H) each; x_t (B, I)
        z = F.linear(x_t, self.weight_ih, self.bias_ih) + F.linear(h, self.weight_hh, self.bias_hh)
        z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)  # (B, H) each
        if self.peephole:  # i and f look at the old cell state
            z_i = z_i + self.w_ci * c
            z_f = z_f + self.w_cf * c
        i = self.gate_activation(z_i)
        f = self.gate_activation(z_f)
        g = self.cell_activation(z_g)
        c = f * c + i * g
        if self.peephole:  # o looks at the new one
            z_o = z_o + self.w_co * c
        o = self.gate_activation(z_o)
        h = o * self.output_activation(c)
        return h, c, {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h}

    def forward(self, x_t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            zeros = x_t.new_zeros(x_t.size(0), self.hidden_size)
            state = (zeros, zeros)
        h, c, _ = self.step(x_t, state)
        return h, c


class ReferenceLSTM(nn.Module):
    """Stacked, optionally bidirectional `ReferenceLSTMCell`s with `RNNEncoder`'s semantics.

    forward(x (B, T, I), lengths (B,)) -> (outputs (B, T, D), final (B, D)); with record=True a
    third value {("l0", "forward"): {"i": (B, T, H), ..., "h": (B, T, H)}, ...}, zero at padding.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, peephole: bool = False,
                 gate_activation: str | Activation = torch.sigmoid,
                 cell_activation: str | Activation = torch.tanh,
                 output_activation: str | Activation = torch.tanh):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.peephole = bidirectional, peephole
        self.num_directions = 2 if bidirectional else 1
        acts = dict(gate_activation=gate_activation, cell_activation=cell_activation,
                    output_activation=output_activation)
        sizes = [input_size] + [hidden_size * self.num_directions] * (num_layers - 1)
        self.cells = nn.ModuleList(  # cells[layer][direction]
            nn.ModuleList(ReferenceLSTMCell(size, hidden_size, peephole, **acts)
                          for _ in range(self.num_directions))
            for size in sizes)

    def get_input_dim(self) -> int:
        return self.input_size

    def get_output_dim(self) -> int:
        return self.hidden_size * self.num_directions

    @staticmethod
    def _unroll(cell: ReferenceLSTMCell, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = c = x.new_zeros(x.size(0), cell.hidden_size)  # zero initial state, as nn.LSTM
        steps = []
        for t in range(x.size(1)):
            h, c, gates = cell.step(x[:, t], (h, c))
            steps.append(gates)
        return {k: torch.stack([s[k] for s in steps], dim=1) for k in GATES}  # (B, T, H) each

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, record: bool = False):
        B, T, _ = x.shape
        mask = padding_mask(lengths, T).unsqueeze(-1)  # (B, T, 1)
        rev = reverse_index(lengths, T)  # (B, T)
        recorded: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
        h = x
        for k, layer in enumerate(self.cells):
            for d, cell in enumerate(layer):
                if d == 0:
                    gates = self._unroll(cell, h)
                else:  # read each text reversed within its own length, then flip back
                    gates = self._unroll(cell, reverse_padded(h, rev))
                    gates = {n: reverse_padded(v, rev) for n, v in gates.items()}
                # past a text's end the states are garbage: zero them, as pad_packed_sequence does
                recorded[(f"l{k}", DIRECTIONS[d])] = {n: v * mask for n, v in gates.items()}
            h = torch.cat([recorded[(f"l{k}", d)]["h"] for d in DIRECTIONS[: len(layer)]], dim=-1)
        final = final_states(h, lengths, self.num_directions)  # h: (B, T, D)
        return (h, final, recorded) if record else (h, final)

    @classmethod
    def from_lstm(cls, lstm: nn.Module, **activations) -> ReferenceLSTM:
        """Copy an `nn.LSTM`, an LSTM `RNNEncoder` or a `PeepholeEncoder`; dtype, device kept."""
        if isinstance(lstm, RNNEncoder):
            lstm = lstm.rnn
        if not isinstance(lstm, (nn.LSTM, PeepholeEncoder)):
            raise TypeError(f"from_lstm needs an LSTM, got {type(lstm).__name__}")
        if getattr(lstm, "proj_size", 0):
            raise ValueError("LSTMs with proj_size are not supported")
        peephole = isinstance(lstm, PeepholeEncoder)
        w = lstm.weight_ih_l0
        ref = cls(lstm.input_size, lstm.hidden_size, lstm.num_layers, lstm.bidirectional, peephole,
                  **activations).to(device=w.device, dtype=w.dtype)
        names = LSTM_PARAMS + (PEEPHOLES if peephole else ())
        with torch.no_grad():
            for k, layer in enumerate(ref.cells):
                for d, cell in enumerate(layer):
                    sfx = f"_l{k}" + ("_reverse" if d else "")
                    for n in names:
                        src = getattr(lstm, n + sfx, None)  # nn.LSTM(bias=False) has no biases
                        getattr(cell, n).copy_(src if src is not None else 0.0)
        return ref


# -------------------------------------------------------------------------------------------------
# fast: the same equations with peepholes, directions batched, backward written out


class _PeepholeRecurrence(torch.autograd.Function):
    """h_1..h_T from precomputed input projections, both directions in one batched matmul a step.

    xw (Dir, T, B, 4H) = x_t·W_ih^T + b_ih + b_hh; w_hh (Dir, H, 4H) = W_hh^T; w_c* (Dir, 1, H).
    Returns h (T, Dir, B, H). Zero initial state. The backward is BPTT by hand (gradchecked).
    """

    @staticmethod
    def forward(ctx, xw, w_hh, w_ci, w_cf, w_co):
        Dir, T, B, H4 = xw.shape
        H = H4 // 4
        acts = xw.new_empty(T, Dir, B, H4)   # i, f, g, o after their activations
        hs = xw.new_zeros(T + 1, Dir, B, H)  # hs[t + 1] = h_t; hs[0] = h_0 = 0
        cs = xw.new_zeros(T + 1, Dir, B, H)  # cs[t + 1] = c_t; cs[0] = c_0 = 0
        for t in range(T):
            z = torch.baddbmm(xw[:, t], hs[t], w_hh)  # (Dir, B, 4H)
            z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
            i, f, g, o = acts[t].chunk(4, dim=-1)  # views: writing them fills acts
            c_prev, c = cs[t], cs[t + 1]
            torch.sigmoid(torch.addcmul(z_i, w_ci, c_prev), out=i)
            torch.sigmoid(torch.addcmul(z_f, w_cf, c_prev), out=f)
            torch.tanh(z_g, out=g)
            torch.addcmul(f * c_prev, i, g, out=c)
            torch.sigmoid(torch.addcmul(z_o, w_co, c), out=o)
            torch.mul(o, torch.tanh(c), out=hs[t + 1])
        ctx.save_for_backward(w_hh, w_ci, w_cf, w_co, acts, hs, cs)
        return hs[1:]

    @staticmethod
    def backward(ctx, dh_out):  # dh_out (T, Dir, B, H)
        w_hh, w_ci, w_cf, w_co, acts, hs, cs = ctx.saved_tensors
        T, H = dh_out.size(0), hs.size(-1)
        dz = torch.empty_like(acts)  # dL/d(pre-activations) of every step: (T, Dir, B, 4H)
        dh = torch.zeros_like(hs[0])  # what flows back from step t + 1
        dc = torch.zeros_like(cs[0])
        w_hh_t = w_hh.transpose(1, 2)  # (Dir, 4H, H)
        for t in range(T - 1, -1, -1):
            i, f, g, o = acts[t].chunk(4, dim=-1)
            dz_i, dz_f, dz_g, dz_o = dz[t].chunk(4, dim=-1)
            c_prev, c = cs[t], cs[t + 1]
            dh = dh + dh_out[t]
            tanh_c = torch.tanh(c)
            torch.mul(dh * tanh_c, o * (1 - o), out=dz_o)           # h = o ⊙ tanh(c)
            dc = dc + dh * o * (1 - tanh_c * tanh_c) + dz_o * w_co  # c reaches h, o, c_{t+1}
            torch.mul(dc * g, i * (1 - i), out=dz_i)                # c = f ⊙ c_prev + i ⊙ g
            torch.mul(dc * c_prev, f * (1 - f), out=dz_f)
            torch.mul(dc * i, 1 - g * g, out=dz_g)
            dc = dc * f + dz_i * w_ci + dz_f * w_cf                 # to c_{t-1}, via peepholes too
            dh = torch.bmm(dz[t], w_hh_t)                           # to h_{t-1}
        # weight gradients: one contraction over all steps rather than T small ones
        d_whh = torch.einsum("tdbh,tdbg->dhg", hs[:-1], dz)
        d_ci = (dz[..., :H] * cs[:-1]).sum((0, 2)).unsqueeze(1)
        d_cf = (dz[..., H:2 * H] * cs[:-1]).sum((0, 2)).unsqueeze(1)
        d_co = (dz[..., 3 * H:] * cs[1:]).sum((0, 2)).unsqueeze(1)
        return dz.transpose(0, 1), d_whh, d_ci, d_cf, d_co


peephole_recurrence = _PeepholeRecurrence.apply


class PeepholeEncoder(nn.Module):
    """Peephole LSTM, uni- or bidirectional, stacked, padding-exact; `RNNEncoder`'s interface.

    forward(x (B, T, E), lengths (B,)) -> (outputs (B, T, D), final (B, D)). Parameter names are
    nn.LSTM's (weight_ih_l0, bias_hh_l1_reverse, ...) plus w_ci_l0, w_cf_l0, w_co_l0, ..., so
    `load_state_dict(lstm.state_dict(), strict=False)` copies an nn.LSTM and keeps the peepholes.
    Not double-differentiable (the backward is hand-written).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.0):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.dropout = dropout
        H = hidden_size
        for k in range(num_layers):
            I = input_size if k == 0 else H * self.num_directions  # noqa: E741
            shapes = {"weight_ih": (4 * H, I), "weight_hh": (4 * H, H), "bias_ih": (4 * H,),
                      "bias_hh": (4 * H,), "w_ci": (H,), "w_cf": (H,), "w_co": (H,)}
            for d in range(self.num_directions):
                for name, shape in shapes.items():
                    p = nn.Parameter(torch.empty(shape))
                    self.register_parameter(self._name(name, k, d), p)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        k = 1.0 / math.sqrt(self.hidden_size)  # nn.LSTM's init, peepholes included
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)

    def get_input_dim(self) -> int:
        return self.input_size

    def get_output_dim(self) -> int:
        return self.hidden_size * self.num_directions

    @staticmethod
    def _name(name: str, layer: int, direction: int) -> str:
        return f"{name}_l{layer}" + ("_reverse" if direction else "")

    def _stacked(self, name: str, layer: int) -> torch.Tensor:
        """One parameter of a layer, both directions stacked: (Dir, ...)."""
        return torch.stack([getattr(self, self._name(name, layer, d))
                            for d in range(self.num_directions)])

    def _layer(self, x: torch.Tensor, layer: int, rev: torch.Tensor) -> torch.Tensor:
        """x (B, T, I) -> (B, T, D); padded positions hold garbage, the caller masks them."""
        B, T, I = x.shape  # noqa: E741
        # the backward direction reads each text reversed within its length, padding still last
        xs = [x, reverse_padded(x, rev)] if self.bidirectional else [x]
        xs = torch.stack(xs)  # (Dir, B, T, I)
        xs = xs.transpose(1, 2).reshape(-1, T * B, I)  # time-major: a step's rows are contiguous
        w_ih, w_hh, b_ih, b_hh, w_ci, w_cf, w_co = (self._stacked(n, layer)
                                                    for n in LSTM_PARAMS + PEEPHOLES)
        # the input projection of every step at once; only h·W_hh^T is left for the loop
        xw = torch.baddbmm((b_ih + b_hh).unsqueeze(1), xs, w_ih.transpose(1, 2))  # (Dir, T*B, 4H)
        xw = xw.view(-1, T, B, xw.size(-1))  # (Dir, T, B, 4H)
        peeps = (p.unsqueeze(1) for p in (w_ci, w_cf, w_co))  # (Dir, 1, H) each
        h = peephole_recurrence(xw, w_hh.transpose(1, 2), *peeps)  # (T, Dir, B, H)
        h = h.permute(1, 2, 0, 3)  # (Dir, B, T, H)
        if not self.bidirectional:
            return h[0]
        return torch.cat([h[0], reverse_padded(h[1], rev)], dim=-1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        mask = padding_mask(lengths, T).unsqueeze(-1)  # (B, T, 1)
        rev = reverse_index(lengths, T)  # (B, T)
        h = x
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0:
                h = F.dropout(h, self.dropout, self.training)
            h = self._layer(h, layer, rev) * mask  # zero padded positions, as pad_packed_sequence
        return h, final_states(h, lengths, self.num_directions)
