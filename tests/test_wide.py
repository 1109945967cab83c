"""`model.wide: tfidf` (models/wide.py, training/wide.py): its features and fit are
scikit-learn's TF-IDF and class-balanced logistic regression, the mixture is the weighted mean
of the two models' probabilities (the network alone while it trains), the network reads the
ids it would read without the part, and a real run learns classes from words seen once in
training, which the network cannot read, then predicts, explains and exports the mixture."""

import json
import random

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, TINY, run_cli
from textlstm.core.config import load_config
from textlstm.models.wide import TfidfLinear, smooth_idf
from textlstm.training.wide import (
    choose_share,
    fit_logistic,
    one_se,
    resampled_f1,
    tfidf_matrix,
    word_counts,
)

DOCS = [[2, 3, 3, 4], [4, 5, 1], [2, 2, 2, 6, 7], [7, 1, 1], [3, 5, 6, 6]]  # ids; 1 is <unk>
V = 8


def _ragged(docs):
    flat = np.array([i for d in docs for i in d])
    rows = np.repeat(np.arange(len(docs)), [len(d) for d in docs])
    return flat, rows


def _padded(docs):
    ids = torch.zeros(len(docs), max(map(len, docs)), dtype=torch.long)  # (B, T), 0 = <pad>
    for i, d in enumerate(docs):
        ids[i, : len(d)] = torch.tensor(d)
    return ids


def _sklearn_tfidf(docs):
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(sublinear_tf=True, lowercase=False,
                          analyzer=lambda d: [w for w in d if w >= 2],
                          vocabulary=list(range(2, V)))
    return vec.fit_transform(docs).toarray()  # (N, V - 2): ids 2..7


def test_features_are_scikit_learns_sublinear_tfidf_in_both_paths():
    """The fit's sparse rows and the module's dense rows (what predict and ONNX compute) are
    scikit-learn's TfidfVectorizer(sublinear_tf=True): smooth idf, 1 + ln(count), L2 norm;
    <pad> and <unk> weigh nothing."""
    pairs = word_counts(*_ragged(DOCS), V)
    idf = smooth_idf(torch.from_numpy(np.bincount(pairs[1], minlength=V)), len(DOCS))
    sparse = tfidf_matrix(*pairs, len(DOCS), idf.double().numpy(), V)
    wide = TfidfLinear(V, 2)
    wide.idf.copy_(idf)
    dense = wide.features(_padded(DOCS))
    want = _sklearn_tfidf(DOCS)
    np.testing.assert_allclose(sparse.to_dense()[:, 2:].numpy(), want, atol=1e-6)
    np.testing.assert_allclose(dense[:, 2:].numpy(), want, atol=1e-6)
    assert float(dense[:, :2].abs().sum()) == 0.0


def test_the_fit_is_scikit_learns_class_balanced_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    docs = [list(rng.integers(2, V, rng.integers(2, 9))) for _ in range(60)]
    y = np.array([int(3 in d) + int(5 in d and 6 in d) for d in docs])  # 3 classes, unequal
    pairs = word_counts(*_ragged(docs), V)
    idf = smooth_idf(torch.from_numpy(np.bincount(pairs[1], minlength=V)), len(docs))
    x = tfidf_matrix(*pairs, len(docs), idf.double().numpy(), V)
    for C in (1.0, 30.0):
        w, b = fit_logistic(x, torch.from_numpy(y), 3, C)
        ours = torch.softmax(torch.sparse.mm(x, w.T) + b, -1).numpy()
        ref = LogisticRegression(C=C, class_weight="balanced", tol=1e-8, max_iter=10_000)
        theirs = ref.fit(_sklearn_tfidf(docs), y).predict_proba(_sklearn_tfidf(docs))
        np.testing.assert_allclose(ours, theirs, atol=2e-3)


def test_the_mixture_is_the_weighted_mean_of_both_probabilities():
    torch.manual_seed(0)
    wide = TfidfLinear(V, 3)
    wide.idf.uniform_(1, 2)
    wide.weight.normal_()
    ids, logits = _padded(DOCS), torch.randn(len(DOCS), 3)
    assert wide.combine(logits, ids) is logits  # share 1: the network's logits untouched
    q = torch.softmax(wide(ids), -1)
    for m in (0.3, 0.0):
        wide.mix.fill_(m)
        p = torch.softmax(wide.combine(logits, ids), -1)
        torch.testing.assert_close(p, m * torch.softmax(logits, -1) + (1 - m) * q)
    kept = torch.softmax(wide.combine(logits, ids, keep_network=True), -1)
    torch.testing.assert_close(kept, q)


def test_token_contributions_add_up_to_the_logit_above_the_bias():
    torch.manual_seed(1)
    wide = TfidfLinear(V, 3)
    wide.idf.uniform_(1, 2)
    wide.idf[:2] = 0
    wide.weight.normal_()
    wide.bias.normal_()
    ids, targets = _padded(DOCS), torch.tensor([0, 1, 2, 0, 1])
    c = wide.contributions(ids, targets)  # (B, T)
    want = wide(ids).gather(1, targets[:, None])[:, 0] - wide.bias[targets]
    torch.testing.assert_close(c.sum(1), want)
    assert float(c[ids == 0].abs().sum()) == 0.0 and float(c[ids == 1].abs().sum()) == 0.0
    # a word met twice shares its contribution evenly between its occurrences
    assert float(c[0, 1]) == pytest.approx(float(c[0, 2]))


def test_choices_take_the_first_candidate_within_one_standard_error_of_the_best():
    """C and the share are chosen by the one-standard-error rule: the first (simplest)
    candidate whose validation macro-F1 is at least the best's minus the paired bootstrap
    standard error of their difference; a clear gap still goes to the best."""
    from torchmetrics.functional.classification import multiclass_f1_score

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (300,), generator=g)
    noisy = torch.where(torch.rand(300, generator=g) < 0.75, y, (y + 1) % 3)  # ~75 % right
    wrong, right = (noisy != y).nonzero().squeeze(1), (noisy == y).nonzero().squeeze(1)
    a_bit_better = noisy.clone()  # 10 texts more right, 8 others wrong: within the noise
    a_bit_better[wrong[:10]] = y[wrong[:10]]
    a_bit_better[right[:8]] = (y[right[:8]] + 1) % 3
    much_better = noisy.clone()
    much_better[wrong[:50]] = y[wrong[:50]]  # 50 more: well beyond it
    pick, f1s = one_se([noisy, a_bit_better], y, 3)
    assert f1s[1] > f1s[0] and pick == 0  # the top score would take the second
    assert one_se([noisy, much_better], y, 3)[0] == 1
    assert one_se([a_bit_better, noisy], y, 3)[0] == 0  # the best first: itself
    assert f1s[0] == pytest.approx(float(multiclass_f1_score(noisy, y, 3, average="macro")))
    # the resampled scores: paired (equal predictions, equal scores on every resample),
    # reproducible, and centred on the score of the texts as they are
    boot = resampled_f1([noisy, noisy.clone(), a_bit_better], y, 3)
    assert boot.shape == (3, 400) and torch.equal(boot[0], boot[1])
    assert torch.equal(boot, resampled_f1([noisy, noisy, a_bit_better], y, 3))
    assert float(boot[0].mean()) == pytest.approx(f1s[0], abs=0.01)
    assert 0.005 < float(boot[0].std()) < 0.05
    # a resample scores only the classes it holds or predicts, as torchmetrics does
    two = torch.tensor([0, 1, 0, 1])
    assert float(resampled_f1([two], two, 5, resamples=3)[0].min()) == 1.0
    # the share: the TF-IDF part alone (listed first) when validation cannot tell it from the
    # best share; else the best share itself, not a share in between within its noise
    assert choose_share([noisy, noisy, a_bit_better], y, 3)[:2] == (0, 2)
    assert choose_share([noisy, a_bit_better, much_better], y, 3)[:2] == (2, 2)
    assert choose_share([much_better, a_bit_better, much_better], y, 3)[:2] == (0, 0)


# -- a real run ----------------------------------------------------------------------------

FILLER = [f"w{i}" for i in range(30)]
COMMON = {"sport": "goal", "politics": "vote"}
RARE = {"opera": "soprano", "chess": "gambit", "sailing": "regatta"}


def _rows(n_common: int, n_rare: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for label, n in [*((k, n_common) for k in COMMON), *((k, n_rare) for k in RARE)]:
        key = COMMON.get(label) or RARE[label]
        for _ in range(n):
            words = rng.sample(FILLER, 3)
            words.insert(rng.randrange(4), key)
            rows.append({"text": " ".join(words), "label": label})
    rng.shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def wide_run(tmp_path_factory):
    """Each rare class has one training text, so its keyword is seen once: below the
    network's data.min_freq=2, <unk> to the network, a feature to the TF-IDF part."""
    from textlstm.commands.train import train

    d = tmp_path_factory.mktemp("wide")
    for split, (n_common, n_rare, seed) in {"train": (40, 1, 0), "validation": (6, 4, 1),
                                            "test": (6, 4, 2)}.items():
        with open(d / f"{split}.jsonl", "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in _rows(n_common, n_rare, seed))
    cfg = load_config(ROOT / "configs" / "bbc_news.yaml", [
        *(f"data.{s}_file={d / (s + '.jsonl')}" for s in ("train", "validation", "test")),
        f"data.data_dir={d / 'data'}", f"run_root={d / 'runs'}", "model.embedding.vectors=null",
        "wandb.mode=offline", *TINY, "data.min_freq=2", "optim.lr=0.01", "seed=0",
        "model.wide=tfidf"])
    return train(cfg)


def test_a_run_learns_classes_from_words_the_network_cannot_read(wide_run):
    from textlstm.serving.loader import load

    m = json.loads((wide_run / "metrics.json").read_text())
    wide = m["wide"]
    assert wide["mix"] < 1.0  # the mixture was chosen, not the network alone
    assert wide["validation_f1"]["mixture"] > wide["validation_f1"]["network"] + 0.2
    assert m["validation"]["f1_macro"] == pytest.approx(wide["validation_f1"]["mixture"], abs=1e-4)
    recall = {c: m["test"]["per_class"][c]["recall"] for c in RARE}
    assert all(r >= 0.5 for r in recall.values()), recall  # the network alone: unk, no clue
    pred = load(wide_run, device="cpu")
    vocab, net = pred.vocab, pred.net
    assert all(k in vocab for k in RARE.values())  # kept for the TF-IDF part
    assert net.embedding.num_embeddings == net.network_vocab < len(vocab)
    assert all(vocab.stoi[k] >= net.network_vocab for k in RARE.values())
    # the network's ids are those of a run without the part: the common words come first
    assert all(vocab.stoi[k] < net.network_vocab for k in COMMON.values())
    row = pred.predict([" ".join([*FILLER[:3], "regatta"])])[0]
    assert row["label"] == "sailing"


def test_a_wide_run_shows_its_share_on_the_dashboard_and_the_report(wide_run):
    from textlstm.tracking.wandb_reader import summarize

    wide = json.loads((wide_run / "metrics.json").read_text())["wide"]
    files = list((wide_run / "wandb").glob("offline-run-*/run-*.wandb"))
    summary = summarize(files[0])["summary"]
    assert summary["wide/share"] == wide["mix"] and summary["wide/C"] == wide["C"]
    assert summary["wide/validation_f1_network"] == wide["validation_f1"]["network"]
    page = (wide_run / "report.html").read_text()
    assert "TF-IDF part (model.wide)" in page and f"C = {wide['C']:g}" in page
    assert page.count("<th>0.") == 10  # every share's validation score, 0.0 to 0.9 and 1.0


def test_a_wide_run_explains_and_exports_its_mixture(wide_run, tmp_path):
    """explain: the words of both parts, weighted by their shares, add up to what they
    explain; export: onnxruntime gives the mixture (the check inside export compares), and an
    opset without ScatterElements' sum is refused in one line."""
    from textlstm.models.explain import explain, explained_score
    from textlstm.serving.loader import load

    pred = load(wide_run, device="cpu")
    text = " ".join([*FILLER[:3], "gambit"])
    out = explain(pred, text)
    assert out["label"] == "chess"
    top = max(zip(out["attributions"], out["tokens"], strict=True))[1]
    assert top == "gambit"
    ids = torch.tensor([pred.vocab.encode(out["tokens"])])
    lengths = torch.tensor([ids.size(1)])
    target = pred.labels.index("chess")
    m = float(pred.net.wide.mix)
    empty = m * float(pred.net.forward_network(torch.zeros_like(ids), lengths)[0, target]) \
        + (1 - m) * float(pred.net.wide.bias[target])
    assert sum(out["attributions"]) == pytest.approx(
        explained_score(pred.net, ids, lengths, target) - empty, abs=0.02)

    code, _, err = run_cli("export", wide_run, "--out", tmp_path / "b15", "--opset", "15")
    assert code == 2 and "opset 16" in err and "Traceback" not in err
    assert not (tmp_path / "b15").exists()
    code, _, err = run_cli("export", wide_run, "--out", tmp_path / "b")
    assert code == 0, err
    check = json.loads((tmp_path / "b" / "export_check.json").read_text())
    assert check["argmax_agreement"] == 1.0
    code, out_, err = run_cli("predict", tmp_path / "b", text)
    assert code == 0 and json.loads(out_.splitlines()[0])["label"] == "chess", err


@pytest.mark.parametrize("override,needs", [
    ("model.wide=bow", "use none, tfidf or auto"), ("task=multilabel", "task=multiclass"),
    ("data.streaming=true", "data.streaming=false")])
def test_wide_refuses_what_it_cannot_do(override, needs, tmp_path):
    code, _, err = run_cli("train", "--config", ROOT / "configs" / "bbc_news.yaml",
                           "model.wide=tfidf", override, f"run_root={tmp_path}")
    assert code == 2 and needs in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_at_share_0_the_answers_come_without_running_the_network():
    """The TF-IDF part alone (share 0, as BBC's runs answer): the BiLSTM is not run, and the
    answers are what the mixture gives; at any other share it runs."""
    from textlstm.models.classifier import TextClassifier

    cfg = load_config(None, ["model.wide=tfidf", "model.network_vocab_size=6",
                             "model.embedding.dim=8", "model.encoder.hidden_size=6"])
    torch.manual_seed(0)
    net = TextClassifier(V, 3, cfg.model).train(False)
    net.wide.idf.uniform_(1, 2)
    net.wide.weight.normal_()
    ids, lengths = _padded(DOCS), torch.tensor([len(d) for d in DOCS])
    runs = []
    net.encoder.register_forward_hook(lambda *_: runs.append(1))
    net.wide.mix.fill_(0.0)
    with torch.no_grad():
        alone = net(ids, lengths)
        assert not runs
        assert torch.equal(alone, net.wide.combine(net.forward_network(ids, lengths), ids))
        runs.clear()
        net.wide.mix.fill_(0.3)
        net(ids, lengths)
    assert runs


def test_attributions_with_both_parts_add_up_to_their_weighted_logits():
    """A share between 0 and 1: the network's integrated gradients and the TF-IDF part's
    exact contributions, each times its share, sum to the weighted logits above an empty
    text (within the integration's error, which the delta reports)."""
    from textlstm.models.classifier import TextClassifier
    from textlstm.models.explain import attribute_ids, explained_score

    cfg = load_config(None, ["model.wide=tfidf", "model.network_vocab_size=6",
                             "model.embedding.dim=8", "model.encoder.hidden_size=6"])
    torch.manual_seed(0)
    net = TextClassifier(V, 3, cfg.model).eval()
    assert net.embedding.num_embeddings == 6
    net.wide.idf.uniform_(1, 2)
    net.wide.idf[:2] = 0
    net.wide.weight.normal_()
    net.wide.mix.fill_(0.4)
    ids = torch.tensor([[2, 7, 3, 6, 6]])  # 6 and 7: the TF-IDF part's own words
    lengths, target = torch.tensor([5]), 1
    attr, delta = attribute_ids(net, ids, lengths, torch.tensor([target]), steps=256)
    empty = 0.4 * float(net.forward_network(torch.zeros_like(ids), lengths)[0, target]) \
        + 0.6 * float(net.wide.bias[target])
    total = explained_score(net, ids, lengths, target) - empty
    assert float(attr.sum()) == pytest.approx(total, abs=1e-3 + abs(float(delta[0])))
    # the network reads the part's own words as <unk>: 7 and 1 give the same network logits
    same = torch.tensor([[2, 1, 3, 1, 1]])
    torch.testing.assert_close(net.forward_network(ids, lengths),
                               net.forward_network(same, lengths))


def test_auto_is_tfidf_where_it_can_run_and_none_elsewhere():
    from textlstm.core.config import resolve_wide

    for config, overrides, want in (
            ("auto.yaml", [], "tfidf"), ("auto.yaml", ["task=multilabel"], "none"),
            ("bbc_news.yaml", ["model.wide=auto", "data.streaming=true"], "none")):
        cfg = load_config(ROOT / "configs" / config, overrides)
        assert resolve_wide(cfg) == want and cfg.model.wide == want


def test_suggest_ranks_with_the_mixture_and_says_when_a_run_lacks_it(wide_run, tiny_run,
                                                                      tmp_path, caplog):
    """suggest ranks by the run's probabilities, the mixture's for a run with the part (the
    tweets loop's 68 % of random's labels came from those); a run without it is told once."""
    from textlstm.commands.suggest import suggest
    from textlstm.serving.loader import load

    pool = tmp_path / "pool.txt"
    texts = [" ".join([*FILLER[i: i + 3], k]) for i, k in enumerate(["goal", "gambit", "vote"])]
    pool.write_text("\n".join(texts) + "\n")
    probs = np.sort(load(wide_run).predict_proba(texts).numpy(), axis=1)
    with caplog.at_level("WARNING", logger="textlstm"):
        suggest(wide_run, pool, k=3, out=tmp_path / "w.csv")
    assert "model.wide" not in caplog.text
    rows = (tmp_path / "w.csv").read_text().splitlines()[1:]
    scores = sorted(float(r.rsplit(",", 2)[1]) for r in rows)
    np.testing.assert_allclose(scores, np.sort(probs[:, -1] - probs[:, -2]), atol=1e-5)
    with caplog.at_level("WARNING", logger="textlstm"):
        suggest(tiny_run, pool, k=3, out=tmp_path / "t.csv", text_field="text")
    assert "without model.wide=tfidf" in caplog.text
