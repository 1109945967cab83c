"""Token attributions by integrated gradients: complete, blind to padding, deterministic, and
pointing at the word that decides the label on a planted data set; `textlstm explain` end to
end."""

import json
import random

import pytest
import torch
from conftest import run_cli

from textlstm.core.config import load_config
from textlstm.models.classifier import TextClassifier
from textlstm.models.explain import attribute_ids, explain
from textlstm.models.predictor import Predictor
from textlstm.tokens.tokenize import tokenize_texts
from textlstm.tokens.vocab import Vocab

FILLER = "the a of in on and with for this that was is it today new old big small".split()
CUES = {"pos": "splendid", "neg": "dreadful"}


def _planted(n: int, rng: random.Random) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for _ in range(n):
        label = rng.choice(sorted(CUES))
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 12))]
        words.insert(rng.randrange(len(words) + 1), CUES[label])
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


@pytest.fixture(scope="module")
def planted_predictor() -> Predictor:
    """A real TextClassifier trained for a few seconds on texts where one word decides."""
    torch.manual_seed(0)
    texts, labels = _planted(400, random.Random(0))
    cfg = load_config(None, ["model.embedding.dim=16", "model.encoder.hidden_size=16",
                             "model.embedding.dropout=0", "model.head.dropout=0",
                             "data.max_length=40"])
    toks = tokenize_texts(texts, True)
    vocab = Vocab.build(toks)
    names = sorted(CUES)
    net = TextClassifier(len(vocab), len(names), cfg.model)
    pred = Predictor(net, vocab, names, cfg)
    ids = pred.encode(texts)
    y = torch.tensor([names.index(lab) for lab in labels])
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    from textlstm.batches.collate import collate

    net.train()
    for _ in range(6):
        for s in range(0, len(ids), 32):
            b = collate([{"ids": x} for x in ids[s:s + 32]])
            loss = torch.nn.functional.cross_entropy(net(b["ids"], b["lengths"]), y[s:s + 32])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.train(False)
    test_texts, test_labels = _planted(100, random.Random(1))
    acc = sum(p["label"] == t
              for p, t in zip(pred.predict(test_texts), test_labels, strict=True)) / 100
    assert acc >= 0.95, acc  # it learned the rule, so its attributions have something to show
    return pred


def test_the_deciding_word_gets_the_top_attribution(planted_predictor):
    for text in ("the old dreadful big of it", "splendid and the new a today",
                 "in on that was splendid"):
        r = explain(planted_predictor, text)
        top = r["tokens"][max(range(len(r["tokens"])), key=r["attributions"].__getitem__)]
        assert top in CUES.values(), (text, r)
        assert r["label"] == ("pos" if "splendid" in text else "neg")
        assert len(r["attributions"]) == len(r["tokens"]) == len(text.split())


def test_attributions_are_complete(planted_predictor):
    """sum(attributions) = f(x) - f(baseline), within 1 % of |f(x)| (f: the label's logit)."""
    pred = planted_predictor
    for text in ("the old dreadful big of it", "splendid and the new a today"):
        r = explain(pred, text, steps=64)
        ids = torch.tensor([pred.vocab.encode(r["tokens"])])
        lengths = torch.tensor([ids.size(1)])
        k = pred.labels.index(r["label"])
        with torch.no_grad():
            fx = pred.net(ids, lengths)[0, k]
            fb = pred.net(torch.zeros_like(ids), lengths)[0, k]
        assert abs(sum(r["attributions"]) - float(fx - fb)) <= 0.01 * abs(float(fx))
        assert abs(r["delta"]) <= 0.01 * abs(float(fx))


def _jumping(planted: Predictor, text: str) -> Predictor:
    """The planted predictor with a network whose logit steps from 0 to 10 halfway along the
    straight path from the baseline to `text`: no number of steps integrates that."""
    import copy

    class Jump(torch.nn.Module):
        def __init__(self, embedding):
            super().__init__()
            self.embedding = embedding
            ids = torch.tensor([planted.vocab.encode(text.split())])
            self.full = float(embedding(ids).sum().detach())  # the text's end of the path

        def forward(self, ids, lengths):
            s = self.embedding(ids).sum((1, 2))  # (B,)
            jump = 10 * torch.sigmoid(1e4 * (s / self.full - 0.5))
            return torch.stack([jump, torch.zeros_like(jump)], 1)  # (B, 2)

    pred = copy.copy(planted)
    pred.net = Jump(planted.net.embedding)
    return pred


def test_a_logit_that_jumps_along_the_path_is_reported_not_hidden(planted_predictor, caplog):
    """Long texts can make an LSTM's logit jump along the straight path (docs/benchmarks.md);
    no number of steps makes those attributions complete, and the user is told so."""
    text = "splendid and the new a today"
    pred = _jumping(planted_predictor, text)
    with caplog.at_level("WARNING", logger="textlstm"):
        r = explain(pred, text, steps=64, max_steps=256)
    assert abs(r["delta"]) > 1  # incomplete even at the most steps allowed ...
    assert "as a ranking of the words" in caplog.text  # ... and said so
    caplog.clear()
    with caplog.at_level("WARNING", logger="textlstm"):
        explain(planted_predictor, text)
    assert "ranking" not in caplog.text  # a complete explanation carries no warning


def test_a_report_says_once_how_many_error_explanations_are_incomplete(planted_predictor,
                                                                       caplog, tmp_path):
    """`make train` explains several test errors for the report: incomplete ones make one short
    console line that points to report.html, where the reason stands beside the shaded texts."""
    from textlstm.tracking.attributions import explain_errors
    from textlstm.tracking.report import _errors

    text = "splendid and the new a today"
    errors = [{"text": text, "true": "neg", "predicted": "neg", "confidence": 0.9}] * 3
    with caplog.at_level("WARNING", logger="textlstm"):
        out = explain_errors(_jumping(planted_predictor, text), errors, steps=32, max_steps=64)
    assert all(len(e["attributions"]) == 6 for e in out)  # every text is still explained
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "3 of 3 explained test errors" in warnings[0], warnings
    assert "report.html" in warnings[0] and len(warnings[0]) <= 100
    assert all(e["attribution_gap"] > 0.05 for e in out)  # errors.json keeps each one's gap
    page = "".join(_errors(out))
    assert "approximate-attributions" in page and "3 of 3 shaded errors" in page
    assert "as a ranking of the words" in page and page.count("≈</span>") == 3
    caplog.clear()
    with caplog.at_level("WARNING", logger="textlstm"):
        complete = explain_errors(planted_predictor, errors[:1])
    assert not caplog.records  # complete explanations: nothing to say
    assert "attribution_gap" not in complete[0]
    assert "approximate-attributions" not in "".join(_errors(complete))


def test_padding_gets_no_attribution_and_changes_nothing(planted_predictor):
    pred = planted_predictor
    short, long_ = "dreadful day", "the old new big small splendid of it today"
    ids = [pred.vocab.encode(t.split()) for t in (short, long_)]
    T = max(map(len, ids))
    batch = torch.tensor([x + [0] * (T - len(x)) for x in ids])  # (2, T), short one padded
    lengths = torch.tensor([len(x) for x in ids])
    targets = torch.tensor([0, 1])
    attr, _ = attribute_ids(pred.net, batch, lengths, targets)
    assert torch.all(attr[0, len(ids[0]):] == 0)
    alone, _ = attribute_ids(pred.net, batch[:1, : len(ids[0])], lengths[:1], targets[:1])
    assert torch.allclose(attr[0, : len(ids[0])], alone[0], atol=1e-5)


def test_attributions_are_deterministic(planted_predictor):
    a = explain(planted_predictor, "the splendid old it")
    b = explain(planted_predictor, "the splendid old it")
    assert a == b


def test_explain_cli_json_html_png(tiny_run, tmp_path):
    code, out, err = run_cli("explain", tiny_run, "Shares rose after strong results", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert set(r) == {"label", "probabilities", "tokens", "attributions", "delta"}
    assert len(r["tokens"]) == len(r["attributions"]) == 5 and r["label"] in r["probabilities"]
    html_out, png_out = tmp_path / "why.html", tmp_path / "why.png"
    code, out, err = run_cli("explain", tiny_run, "Shares rose after strong results",
                             "--out", html_out)
    assert code == 0, err and "label:" in out
    page = html_out.read_text()
    assert page.count("<span title=") == 5 and "alt=\"gate heatmaps\"" in page
    code, _, err = run_cli("explain", tiny_run, "Shares rose", "--out", png_out)
    assert code == 0, err
    assert png_out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--label", "nope"], "is not one of this model's labels"),
    (["--out", "x.txt"], "must end in .html or .png"),
    (["--steps", "0"], "at least 1 integration step"),
])
def test_explain_cli_refuses_bad_arguments(tiny_run, args, message):
    code, out, err = run_cli("explain", tiny_run, "some text", *args)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1


def test_a_run_explains_its_worst_errors(tiny_run):
    errors = json.loads((tiny_run / "errors.json").read_text())
    explained = [e for e in errors if "attributions" in e]
    assert explained and len(explained) == min(10, len(errors))
    assert all(len(e["tokens"]) == len(e["attributions"]) for e in explained)
    assert (tiny_run / "report.html").read_text().count("<span title=") >= len(
        explained[0]["tokens"]
    )
