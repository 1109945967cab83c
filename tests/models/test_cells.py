"""ReferenceLSTM against the seed's worked example and nn.LSTM; PeepholeEncoder against both."""

from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textlstm.models.cells import (
    PeepholeEncoder,
    ReferenceLSTM,
    ReferenceLSTMCell,
    peephole_recurrence,
)
from textlstm.models.classifier import build_encoder
from textlstm.models.encoders import RNNEncoder

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def random_batch(B, T, E, lengths=None, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, E, generator=g, dtype=dtype)
    if lengths is None:
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T
    return x, torch.as_tensor(lengths)


def lstm_packed(lstm, x, lengths):
    """nn.LSTM on a PackedSequence: the ground truth for variable lengths."""
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, (h_n, c_n) = lstm(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    return out, h_n, c_n


# -------------------------------------------------------------------------------------------------
# seed §3: one unit, hand-set weights, identity for g and h

SEED_X = [[1, 0, 0], [3, 1, 0], [2, 0, 0], [4, 1, 0], [2, 0, 0],
          [1, 0, 1], [3, -1, 0], [6, 1, 0], [1, 0, 1]]
SEED_C = [0, 3, 3, 7, 7, 7, 0, 6, 6]  # memory after each step, as the seed's table gives it


def seed_example_model() -> ReferenceLSTM:
    m = ReferenceLSTM(3, 1, cell_activation="identity", output_activation="identity").double()
    cell = m.cells[0][0]
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()  # no recurrent weights, no other biases
        # gate rows in nn.LSTM order i, f, g, o
        cell.weight_ih.copy_(torch.tensor([[0, 100, 0],     # z_i = 100·x2 − 10
                                           [0, 100, 0],     # z_f = 100·x2 + 10
                                           [1, 0, 0],       # z   = x1
                                           [0, 0, 100]]))   # z_o = 100·x3 − 10
        cell.bias_ih.copy_(torch.tensor([-10, 10, 0, -10]))
    return m


def test_seed_worked_example():
    m = seed_example_model()
    x = torch.tensor(SEED_X, dtype=torch.float64).unsqueeze(0)  # (1, 9, 3)
    out, final, rec = m(x, torch.tensor([9]), record=True)
    y = out[0, :, 0]
    assert y[5].item() == pytest.approx(6.9995, abs=1e-3)
    assert y[8].item() == pytest.approx(5.9998, abs=1e-3)
    assert abs(y[5].item() - 7) < 1e-3 and abs(y[8].item() - 6) < 1e-3
    others = torch.cat([y[:5], y[6:8]])
    assert others.abs().max() < 4e-4  # the seed's bound
    c = rec[("l0", "forward")]["c"][0, :, 0]
    torch.testing.assert_close(c, torch.tensor(SEED_C, dtype=torch.float64), atol=1e-3, rtol=0)
    assert final.item() == y[8].item()


def test_seed_example_step_by_step_and_in_float32():
    """The single cell's step(), fed by hand, tells the same story; float32 is enough for it."""
    cell = seed_example_model().cells[0][0].float()
    h = c = torch.zeros(1, 1)
    ys = []
    for x_t in torch.tensor(SEED_X, dtype=torch.float32):
        h, c, gates = cell.step(x_t.unsqueeze(0), (h, c))
        assert gates["h"] is h and gates["c"] is c
        ys.append(h.item())
    assert ys[5] == pytest.approx(6.9995, abs=1e-3) and ys[8] == pytest.approx(5.9998, abs=1e-3)
    assert max(abs(v) for i, v in enumerate(ys) if i not in (5, 8)) < 1e-3


def test_activations_by_name_or_callable():
    a = ReferenceLSTMCell(3, 2, cell_activation="identity", output_activation="tanh")
    b = ReferenceLSTMCell(3, 2, cell_activation=lambda z: z, output_activation=torch.tanh)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 3)
    torch.testing.assert_close(a(x), b(x))
    with pytest.raises(KeyError):
        ReferenceLSTMCell(3, 2, gate_activation="relu6")


# -------------------------------------------------------------------------------------------------
# the reference against nn.LSTM


@settings(max_examples=30, deadline=None)
@given(B=st.integers(1, 4), T=st.integers(1, 6), E=st.integers(1, 4), H=st.integers(1, 4),
       num_layers=st.integers(1, 3), bidirectional=st.booleans(),
       dtype=st.sampled_from([torch.float64, torch.float32]), seed=st.integers(0, 2**16),
       data=st.data())
def test_reference_matches_packed_nn_lstm(B, T, E, H, num_layers, bidirectional, dtype, seed, data):
    lengths = data.draw(st.lists(st.integers(1, T), min_size=B, max_size=B), label="lengths")
    torch.manual_seed(seed)
    lstm = nn.LSTM(E, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=True)
    lstm = lstm.to(dtype)
    x, lengths = random_batch(B, T, E, lengths, dtype, seed)
    ref = ReferenceLSTM.from_lstm(lstm)
    assert ref.cells[0][0].weight_ih.dtype == dtype
    with torch.no_grad():
        want, h_n, c_n = lstm_packed(lstm, x, lengths)
        out, final, rec = ref(x, lengths, record=True)
    tol = TOL[dtype]
    assert (out - want).abs().max() <= tol
    # h_n holds, for the last layer, the forward state at each text's last token and the backward
    # state after reading back to step 0: exactly what `final` promises
    D = 2 if bidirectional else 1
    assert (final - torch.cat(list(h_n[-D:]), dim=-1)).abs().max() <= tol
    last = rec[(f"l{num_layers - 1}", "forward")]["c"][torch.arange(B), lengths - 1]  # (B, H)
    assert (last - c_n[-D]).abs().max() <= tol
    if bidirectional:
        assert (rec[(f"l{num_layers - 1}", "backward")]["c"][:, 0] - c_n[-1]).abs().max() <= tol


@pytest.mark.parametrize("impl", ["padded", "packed"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_reference_matches_rnn_encoder(impl, bidirectional, num_layers):
    torch.manual_seed(num_layers)
    enc = RNNEncoder(5, 4, num_layers, bidirectional, impl=impl).double().eval()
    x, lengths = random_batch(6, 7, 5, seed=num_layers)
    ref = ReferenceLSTM.from_lstm(enc)
    with torch.no_grad():
        want, want_final = enc(x, lengths)
        out, final = ref(x, lengths)
    assert ref.get_output_dim() == enc.get_output_dim() == out.size(-1)
    assert (out - want).abs().max() <= 1e-10
    assert (final - want_final).abs().max() <= 1e-10
    assert (out[lengths.unsqueeze(1) <= torch.arange(7)] == 0).all()


def test_from_lstm_dtype_bias_and_refusals():
    lstm = nn.LSTM(3, 2, bias=False, batch_first=True).double()
    ref = ReferenceLSTM.from_lstm(lstm)
    assert all(p.dtype == torch.float64 for p in ref.parameters())
    x, lengths = random_batch(2, 4, 3, lengths=[4, 4])
    torch.testing.assert_close(ref(x, lengths)[0], lstm(x)[0], atol=1e-12, rtol=0)
    with pytest.raises(TypeError):
        ReferenceLSTM.from_lstm(RNNEncoder(3, 2, cell="gru"))
    with pytest.raises(ValueError):
        ReferenceLSTM.from_lstm(nn.LSTM(3, 4, proj_size=2))


def test_recording():
    torch.manual_seed(0)
    ref = ReferenceLSTM(3, 4, num_layers=2, bidirectional=True).double()
    x, lengths = random_batch(5, 6, 3, seed=1)
    out, final, rec = ref(x, lengths, record=True)
    assert set(rec) == {(f"l{k}", d) for k in (0, 1) for d in ("forward", "backward")}
    real = (torch.arange(6) < lengths.unsqueeze(1))  # (B, T)
    for gates in rec.values():
        assert set(gates) == {"i", "f", "g", "o", "c", "h"}
        for v in gates.values():
            assert v.shape == (5, 6, 4)
            assert (v[~real] == 0).all()
        for name in ("i", "f", "o"):  # sigmoid gates
            v = gates[name][real]
            assert ((v > 0) & (v < 1)).all()
        assert (gates["g"][real].abs() < 1).all()
        torch.testing.assert_close(gates["h"], gates["o"] * torch.tanh(gates["c"]))
    top = torch.cat([rec[("l1", "forward")]["h"], rec[("l1", "backward")]["h"]], dim=-1)
    assert torch.equal(top, out)
    assert torch.equal(ref(x, lengths)[0], out)  # recording changes nothing


# -------------------------------------------------------------------------------------------------
# PeepholeEncoder


def test_recurrence_backward_gradcheck():
    g = torch.Generator().manual_seed(0)
    Dir, T, B, H = 2, 4, 3, 3
    args = [torch.randn(Dir, T, B, 4 * H, generator=g, dtype=torch.float64),
            torch.randn(Dir, H, 4 * H, generator=g, dtype=torch.float64)]
    args += [torch.randn(Dir, 1, H, generator=g, dtype=torch.float64) for _ in range(3)]
    args = [a.requires_grad_() for a in args]
    assert torch.autograd.gradcheck(peephole_recurrence, args)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_peephole_encoder_matches_reference(bidirectional):
    """Same outputs and the same gradients as autograd through the seed equations."""
    torch.manual_seed(0)
    enc = PeepholeEncoder(3, 4, num_layers=2, bidirectional=bidirectional).double()
    ref = ReferenceLSTM.from_lstm(enc)
    assert ref.peephole
    x, lengths = random_batch(5, 6, 3, seed=2)
    x.requires_grad_()
    out, final = enc(x, lengths)
    out_r, final_r = ref(x, lengths)
    assert (out - out_r).abs().max() <= 1e-10 and (final - final_r).abs().max() <= 1e-10
    w = torch.randn_like(out)  # a loss that weighs every output differently
    loss, loss_r = (out * w).sum() + final.sum(), (out_r * w).sum() + final_r.sum()
    grads = torch.autograd.grad(loss, [x, *enc.parameters()])
    grads_r = torch.autograd.grad(loss_r, [x, *ref.parameters()])
    # same order: enc registers per layer, direction: weight_ih ... w_co; ref per cell likewise
    for a, b in zip(grads, grads_r, strict=True):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-10


def test_peephole_encoder_padding_exact():
    torch.manual_seed(0)
    enc = PeepholeEncoder(3, 4, num_layers=2, bidirectional=True, dropout=0.3).double().eval()
    x, lengths = random_batch(4, 7, 3, lengths=[7, 2, 5, 1], seed=3)
    x = x.masked_fill((torch.arange(7) >= lengths.unsqueeze(1)).unsqueeze(-1), 123.0)  # junk pads
    out, final = enc(x, lengths)
    assert (out[torch.arange(7) >= lengths.unsqueeze(1)] == 0).all()
    for b, n in enumerate(lengths.tolist()):
        alone, alone_final = enc(x[b : b + 1, :n], lengths[b : b + 1])
        assert (out[b, :n] - alone[0]).abs().max() <= 1e-12
        assert (final[b] - alone_final[0]).abs().max() <= 1e-12


@pytest.mark.parametrize("bidirectional", [False, True])
def test_peephole_encoder_without_peepholes_is_nn_lstm(bidirectional):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 6, num_layers=2, bidirectional=bidirectional, batch_first=True)
    enc = PeepholeEncoder(5, 6, num_layers=2, bidirectional=bidirectional)
    missing, unexpected = enc.load_state_dict(lstm.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("w_ci", "w_cf", "w_co")) for k in missing)
    x, lengths = random_batch(4, 8, 5, dtype=torch.float32, seed=4)
    with torch.no_grad():
        out, final = enc(x, lengths)
        assert (out - lstm_packed(lstm, x, lengths)[0]).abs().max() > 1e-3  # peepholes matter
        for k in missing:
            getattr(enc, k).zero_()
        out, final = enc(x, lengths)
        want, h_n, _ = lstm_packed(lstm, x, lengths)
    D = 2 if bidirectional else 1
    assert (out - want).abs().max() <= 1e-5
    assert (final - torch.cat(list(h_n[-D:]), dim=-1)).abs().max() <= 1e-5


def test_peephole_encoder_interface_and_gradients():
    torch.manual_seed(0)
    cfg = SimpleNamespace(cell="peephole_lstm", hidden_size=4, num_layers=2, bidirectional=True,
                          dropout=0.0, impl="auto")
    enc = build_encoder(3, cfg)
    assert isinstance(enc, PeepholeEncoder)
    assert enc.get_input_dim() == 3 and enc.get_output_dim() == 8
    x, lengths = random_batch(5, 6, 3, dtype=torch.float32, seed=5)
    out, final = enc(x, lengths)
    assert out.shape == (5, 6, 8) and final.shape == (5, 8)
    (out.pow(2).sum() + final.sum()).backward()
    names = {n for n, _ in enc.named_parameters()}
    assert {"w_ci_l1_reverse", "w_cf_l0", "w_co_l1", "weight_hh_l0_reverse"} <= names
    for n, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n


def test_peephole_encoder_dropout_between_layers():
    torch.manual_seed(0)
    x, lengths = random_batch(3, 5, 4, dtype=torch.float32, seed=6)
    enc = PeepholeEncoder(4, 4, num_layers=2, dropout=0.5).train()
    assert not torch.equal(enc(x, lengths)[0], enc(x, lengths)[0])
    enc.eval()
    assert torch.equal(enc(x, lengths)[0], enc(x, lengths)[0])
    one = PeepholeEncoder(4, 4, num_layers=1, dropout=0.5).train()  # nothing to drop between
    assert torch.equal(one(x, lengths)[0], one(x, lengths)[0])


def test_peephole_encoder_learns_sign_of_sum():
    torch.manual_seed(0)
    enc = PeepholeEncoder(1, 8, bidirectional=True)
    head = nn.Linear(enc.get_output_dim(), 2)
    opt = torch.optim.Adam([*enc.parameters(), *head.parameters()], lr=1e-2)

    def batch(n):
        lengths = torch.randint(1, 11, (n,))
        x = torch.randn(n, 10, 1) * (torch.arange(10) < lengths.unsqueeze(1)).unsqueeze(-1)
        return x, lengths, (x.sum((1, 2)) > 0).long()

    for _ in range(200):
        x, lengths, y = batch(64)
        loss = nn.functional.cross_entropy(head(enc(x, lengths)[1]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, lengths, y = batch(1000)
    with torch.no_grad():
        acc = (head(enc(x, lengths)[1]).argmax(-1) == y).float().mean().item()
    assert acc > 0.9, acc
