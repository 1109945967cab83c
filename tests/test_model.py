import pytest
import torch
from omegaconf import OmegaConf

from textlstm.core.config import POOLINGS, load_config
from textlstm.models.classifier import TextClassifier
from textlstm.models.encoders import RNNEncoder
from textlstm.models.pooling import Pooling


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers,bidir", [(1, True), (2, True), (2, False)])
def test_padded_path_equals_packed(cell, layers, bidir):
    torch.manual_seed(0)
    enc = RNNEncoder(8, 6, layers, bidir, cell=cell, impl="padded").double()
    x = torch.randn(5, 9, 8, dtype=torch.double)
    lengths = torch.tensor([9, 3, 1, 7, 5])
    out_pad, fin_pad = enc(x, lengths)
    enc.impl = "packed"
    out_pack, fin_pack = enc(x, lengths)
    assert torch.allclose(out_pad, out_pack, atol=1e-12)
    assert torch.allclose(fin_pad, fin_pack, atol=1e-12)
    assert enc.get_output_dim() == 6 * (2 if bidir else 1)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_unpadded_batch_takes_the_fused_call_with_the_same_numbers(cell):
    torch.manual_seed(0)
    enc = RNNEncoder(8, 6, 2, True, cell=cell, impl="padded").double()
    x = torch.randn(4, 7, 8, dtype=torch.double)
    lengths = torch.full((4,), 7)
    calls = []
    enc.rnn.register_forward_hook(lambda *a: calls.append(1))
    out, fin = enc(x, lengths)
    assert calls == [1]  # the fused nn.LSTM/nn.GRU call ran
    assert torch.allclose(out, enc._padded(x, lengths), atol=1e-12)
    assert torch.allclose(fin, enc.final_states(enc._padded(x, lengths), lengths), atol=1e-12)


def test_padding_never_changes_a_result():
    torch.manual_seed(0)
    cfg = load_config(None, ["model.embedding.dim=8", "model.encoder.hidden_size=6"])
    for pooling in POOLINGS:
        cfg.model.pooling = pooling
        net = TextClassifier(50, 3, cfg.model).eval()
        ids = torch.tensor([[5, 6, 7, 8]])
        alone = net(ids, torch.tensor([4]))
        padded = net(torch.tensor([[5, 6, 7, 8, 0, 0, 0], [9, 9, 9, 9, 9, 9, 9]]),
                     torch.tensor([4, 7]))
        assert torch.allclose(alone, padded[:1], atol=1e-6), pooling


def test_word_dropout_reads_words_as_unk_while_training_only():
    torch.manual_seed(0)
    cfg = load_config(None, ["model.embedding.dim=8", "model.encoder.hidden_size=6",
                             "model.embedding.dropout=0", "model.head.dropout=0",
                             "model.embedding.word_dropout=0.999999"])
    net = TextClassifier(50, 3, cfg.model)
    ids, lengths = torch.tensor([[5, 6, 7, 8], [9, 4, 0, 0]]), torch.tensor([4, 2])
    unk = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])  # every real token <unk>, padding kept
    assert torch.allclose(net.train()(ids, lengths), net.eval()(unk, lengths), atol=1e-6)
    assert not torch.allclose(net.eval()(ids, lengths), net(unk, lengths), atol=1e-3)
    torch.manual_seed(1)  # eval mode is deterministic and untouched by it
    assert torch.equal(net.eval()(ids, lengths), net(ids, lengths))


def test_pooling_masks():
    states = torch.tensor([[[1.0], [5.0], [100.0]]])
    lengths = torch.tensor([2])
    assert Pooling("max", 1)(states, lengths, None).item() == 5.0
    assert Pooling("mean", 1)(states, lengths, None).item() == 3.0
    both = Pooling("max_mean", 1)
    assert both(states, lengths, None).tolist() == [[5.0, 3.0]] and both.get_output_dim() == 2
    att = Pooling("attention", 1)
    att(states, lengths, None)
    assert att.last_weights[0, 2].item() == 0.0


def test_classifier_shapes_and_vectors():
    cfg = load_config(None,
                      ["model.embedding.dim=4", "model.encoder.hidden_size=3",
                       "model.head.hidden_size=5"])
    net = TextClassifier(10, 4, cfg.model)
    out = net(torch.randint(1, 10, (2, 6)), torch.tensor([6, 2]))
    assert out.shape == (2, 4)
    vecs = torch.arange(40, dtype=torch.float).view(10, 4)
    found = torch.zeros(10, dtype=torch.bool)
    found[3] = True
    net.load_vectors(vecs, found, freeze=True)
    assert torch.equal(net.embedding.weight[3], vecs[3]) and not net.embedding.weight.requires_grad


@pytest.mark.parametrize("impl", ["padded", "packed"])
def test_final_states_are_nn_lstm_h_n(impl):
    """`final`: the forward state at each text's last token and the backward state after reading
    back to its first token, which is what nn.LSTM's h_n holds for a packed batch."""
    from torch.nn.utils.rnn import pack_padded_sequence

    torch.manual_seed(0)
    enc = RNNEncoder(5, 4, 1, True, impl=impl).double().eval()
    x = torch.randn(4, 6, 5, dtype=torch.double)
    lengths = torch.tensor([6, 2, 4, 1])
    with torch.no_grad():
        _, final = enc(x, lengths)
        _, (h_n,
            _) = enc.rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    assert torch.allclose(final, torch.cat([h_n[0], h_n[1]], dim=-1), atol=1e-12)


def test_predictions_run_the_rnn_in_full_fp32():
    """On a GPU, cuDNN's default TF32 lets a text's logits move by 2e-4 with its batch; the
    predictor turns it off around its forward passes (and restores it)."""
    from textlstm.models.predictor import Predictor
    from textlstm.tokens.vocab import Vocab

    cfg = load_config(None, ["model.embedding.dim=8", "model.encoder.hidden_size=6"])
    vocab = Vocab.build([["profits", "rose"], ["the", "band"]] * 2)
    net = TextClassifier(len(vocab), 2, cfg.model)
    seen = []
    net.encoder.register_forward_hook(lambda *a: seen.append(torch.backends.cudnn.allow_tf32))
    Predictor(net, vocab, ["a", "b"], cfg).predict(["profits rose", "the band played"])
    assert seen and not any(seen)
    assert torch.backends.cudnn.allow_tf32  # training (and everything else) keeps the default


def _states(lengths, T, D=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(lengths), T, D, generator=g), torch.tensor(lengths)


def test_region_pooling_is_adaptive_max_pooling_over_each_texts_own_length():
    """model.regions=K: piece k of a text of n tokens is positions floor(kn/K) to
    ceil((k+1)n/K) - 1 of that text (AdaptiveMaxPool1d's bounds, on the text alone, never on
    the padded T); texts shorter than K still give K finite pieces."""
    states, lengths = _states([10, 2, 1, 7, 4], T=13)
    pool = Pooling("max", 3, regions=4)
    assert pool.get_output_dim() == 12
    out = pool(states, lengths, None)  # (B, 4 x 3)
    assert out.shape == (5, 12) and torch.isfinite(out).all()
    for i, n in enumerate(lengths.tolist()):
        alone = torch.nn.AdaptiveMaxPool1d(4)(states[i, :n].T.unsqueeze(0))[0]  # (D, K)
        assert torch.equal(out[i], alone.T.reshape(-1)), n


def test_regions_keep_where_in_the_text_a_feature_is():
    """A strong feature early in a text lands in the first piece's slots, the same feature late
    in it in the last piece's: plain max pooling cannot tell the two apart."""
    early, late = torch.zeros(1, 12, 2), torch.zeros(1, 12, 2)
    early[0, 1, 0] = late[0, 9, 0] = 5.0
    lengths = torch.tensor([10])  # position 9 is the text's last token; 10, 11 are padding
    pool = Pooling("max", 2, regions=2)
    assert pool(early, lengths, None).tolist() == [[5.0, 0.0, 0.0, 0.0]]
    assert pool(late, lengths, None).tolist() == [[0.0, 0.0, 5.0, 0.0]]
    assert torch.equal(Pooling("max", 2)(early, lengths, None),
                       Pooling("max", 2)(late, lengths, None))


def test_one_region_is_todays_network_bit_for_bit():
    """model.regions=1 (the default) and a config saved before the key existed build the same
    parameters and the same logits, bit for bit, and its pooling is the plain masked max."""
    states, lengths = _states([9, 4, 1], T=9)
    mask = torch.arange(9).unsqueeze(0) < lengths.unsqueeze(1)
    plain = states.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    assert torch.equal(Pooling("max", 3, regions=1)(states, lengths, None), plain)
    cfg = load_config(None, ["model.embedding.dim=8", "model.encoder.hidden_size=6"])
    assert cfg.model.regions == 1
    old = OmegaConf.to_container(cfg.model)
    del old["regions"]
    old = OmegaConf.create(old)
    torch.manual_seed(0)
    net = TextClassifier(50, 3, cfg.model).eval()
    torch.manual_seed(0)
    before = TextClassifier(50, 3, old).eval()
    assert {k: v.shape for k, v in net.state_dict().items()} == \
        {k: v.shape for k, v in before.state_dict().items()}
    ids = torch.tensor([[5, 6, 7, 8, 9], [9, 4, 0, 0, 0]])
    with torch.no_grad():
        assert torch.equal(net(ids, torch.tensor([5, 2])), before(ids, torch.tensor([5, 2])))


def test_regions_widen_the_head_and_never_depend_on_padding():
    cfg = load_config(None, ["model.embedding.dim=8", "model.encoder.hidden_size=6",
                             "model.regions=3", "model.head.hidden_size=5"])
    torch.manual_seed(0)
    net = TextClassifier(50, 3, cfg.model).eval()
    assert net.head[1].in_features == 3 * 12  # K x (2 directions x 6 units)
    with torch.no_grad():
        for ids in ([5, 6, 7, 8], [5, 6], [7]):  # 2 and 1 tokens: shorter than K
            alone = net(torch.tensor([ids]), torch.tensor([len(ids)]))
            padded = net(torch.tensor([ids + [0] * (9 - len(ids)), [9] * 9]),
                         torch.tensor([len(ids), 9]))
            assert torch.isfinite(alone).all()
            assert torch.allclose(alone, padded[:1], atol=1e-6), ids
