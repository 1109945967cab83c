"""`textlstm export` and bundles: the ONNX model labels texts as the run does (fp32 within 1e-4,
int8 by agreement), a bundle loads and predicts without torch, predict/evaluate take a bundle,
and mistakes end in one line with nothing left behind. Real onnxruntime, the session's tiny run."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, TINY, run_cli

CONTRACT = {"quantize", "texts", "max_abs_logit_diff", "argmax_agreement", "accuracy", "size_bytes"}
BUNDLE_FILES = {"model.onnx", "vocab.json", "labels.json", "textlstm.json", "README.md",
                "export_check.json"}
# texts that probe the edges of tokenizing and padding, besides the test split's
ODD = ["", "   ", "<pad> <unk>", "Ünïcode — “quotes” 🙂", "word " * 300, "a", "\n\tTabs\n"]


def _quiet(_msg):
    pass


@pytest.fixture(scope="module")
def bundle(tiny_run, tmp_path_factory):
    from textlstm.commands.export import export

    out = tmp_path_factory.mktemp("bundles") / "fp32"
    export(tiny_run, out, log=_quiet)
    return out


@pytest.fixture(scope="module")
def test_texts(small_csvs):
    import csv

    with open(small_csvs / "test.csv", newline="") as fh:
        return [r["review"] for r in csv.DictReader(fh)]


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def test_export_writes_the_bundle_and_a_passing_check(bundle, tiny_run):
    import onnx

    from textlstm import __version__
    from textlstm.models.classifier import ARCH_VERSION

    assert {p.name for p in bundle.iterdir()} == BUNDLE_FILES
    check = json.loads((bundle / "export_check.json").read_text())
    assert set(check) == CONTRACT
    assert set(check["accuracy"]) == {"torch", "onnx"}
    assert set(check["size_bytes"]) == {"onnx", "fp32"}
    assert check["quantize"] == "none" and check["texts"] == 60  # the whole test split
    assert check["max_abs_logit_diff"] <= 1e-4 and check["argmax_agreement"] == 1.0
    assert check["accuracy"]["onnx"] == check["accuracy"]["torch"]
    size = (bundle / "model.onnx").stat().st_size
    assert check["size_bytes"]["onnx"] == check["size_bytes"]["fp32"] == size

    meta = json.loads((bundle / "textlstm.json").read_text())
    run_metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert meta["task"] == "multiclass" and meta["arch_version"] == ARCH_VERSION
    assert meta["textlstm_version"] == __version__
    assert meta["tokenizer"]["lowercase"] is True and meta["tokenizer"]["max_length"] == 40
    assert meta["tokenizer"]["spacy_version"]
    run_t = json.loads((tiny_run / "metrics.json").read_text())["calibration"]["temperature"]
    assert meta["calibration"] == {"temperature": run_t, "thresholds": None}  # the run's T
    assert meta["metrics"]["test"] == run_metrics["test"]
    labels = json.loads((tiny_run / "labels.json").read_text())
    assert json.loads((bundle / "labels.json").read_text()) == labels

    # the graph: ONNX's own LSTM with sequence_lens, inputs (B, T) and (B,) int64, logits (B, C)
    model = onnx.load(str(bundle / "model.onnx"))
    lstm = [n for n in model.graph.node if n.op_type == "LSTM"]
    assert len(lstm) == 1 and len(lstm[0].input) >= 5 and lstm[0].input[4]
    ins = {i.name: i.type.tensor_type for i in model.graph.input}
    assert ins["ids"].elem_type == ins["lengths"].elem_type == onnx.TensorProto.INT64
    assert len(ins["ids"].shape.dim) == 2 and len(ins["lengths"].shape.dim) == 1

    card = (bundle / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "textlstm"
    assert front["license"] and front["datasets"] and "text-classification" in front["tags"]
    result = front["model-index"][0]["results"][0]
    assert result["metrics"][0] == {"type": "accuracy", "name": "Test accuracy",
                                    "value": round(run_metrics["test"]["accuracy"], 4)}
    assert "## What it is for" in card and "## What it is not for" in card


def test_bundle_predicts_what_its_run_predicts(bundle, tiny_run, test_texts):
    import textlstm

    run, exported = textlstm.load(tiny_run), textlstm.load(bundle)
    assert (run.engine, exported.engine) == ("torch", "onnx") and exported.labels == run.labels
    texts = test_texts + ODD
    want, got = run.predict(texts), exported.predict(texts)
    for w, g in zip(want, got, strict=True):
        assert g["label"] == w["label"]
        assert g["probabilities"] == pytest.approx(w["probabilities"], abs=1e-5)
    # the pipelined stream (worker processes) gives the same rows in the same order; a text's
    # batch partners differ from one call's, which moves a probability by ~1e-7, so up to the
    # sixth decimal
    def same(rows):
        rows = list(rows)
        assert [r["label"] for r in rows] == [r["label"] for r in got]
        for r, g in zip(rows, got, strict=True):
            assert r["probabilities"] == pytest.approx(g["probabilities"], abs=2e-6)

    streamed = list(exported.predict_stream(iter(texts), chunk_size=7, workers=2))
    assert [t for t, _ in streamed] == texts
    same(r for _, r in streamed)
    # `predict --input`'s lines, written in the worker processes, are those rows as JSON, and
    # joined a chunk at a time (what `predict --input` writes): every text once, in order
    for workers in (2, 1):
        lines = list(exported.predict_lines(iter(texts), chunk_size=7, workers=workers))
        assert [json.loads(x)["text"] for x in lines] == texts
        same({k: v for k, v in json.loads(x).items() if k != "text"} for x in lines)
        blocks = list(exported.predict_blocks(iter(texts), chunk_size=7, workers=workers))
        assert "".join(b for _, b in blocks) == "".join(lines)
        assert [n for n, _ in blocks] == [b.count("\n") for _, b in blocks]
        assert sum(n for n, _ in blocks) == len(texts)


def test_a_bundle_runs_onnxruntime_in_small_batches_unless_told(bundle, test_texts):
    """onnxruntime's LSTM on CPU is fastest in small batches (docs/benchmarks.md, "Predict at
    scale"), so a bundle labels ONNX_BATCH texts a call, not the run's eval_batch_size;
    data.eval_batch_size=N still sets it."""
    from textlstm.serving.bundle import ONNX_BATCH, BundlePredictor

    def batch_sizes(b):
        seen, run = [], b.session.run

        class Spy:  # onnxruntime's session type cannot take a new attribute
            def run(self, names, feeds):
                seen.append(len(next(iter(feeds.values()))))
                return run(names, feeds)
        b.session = Spy()
        b.predict_proba(test_texts * 20)
        return seen

    default, told = BundlePredictor(bundle), BundlePredictor(bundle, ["data.eval_batch_size=5"])
    assert ONNX_BATCH == 32 and default.batch_size == ONNX_BATCH and told.batch_size == 5
    n = len(test_texts) * 20
    assert n > ONNX_BATCH and max(batch_sizes(default)) == ONNX_BATCH
    assert sum(batch_sizes(told)) == n and max(batch_sizes(told)) == 5


def test_a_run_and_its_bundle_answer_through_one_contract(bundle, tiny_run, test_texts):
    """Both predictors are `models.contract.Predictions`: a caller's methods take the same
    parameters in the same order (a bundle's stream adds `workers`), the answers of a run and
    its bundle have one shape (keys, label strings in the network's order, the label the most
    probable one), streams give the same rows, and bad input gets the same sentence."""
    import inspect

    import textlstm
    from textlstm.core.errors import UserError
    from textlstm.models.contract import Predictions

    run, exported = textlstm.load(tiny_run), textlstm.load(bundle)
    for method in ("predict", "predict_proba", "predict_stream", "predict_lines"):
        want = list(inspect.signature(getattr(Predictions, method)).parameters)[1:]  # no self
        for p in (run, exported):
            assert isinstance(p, Predictions) and all(
                isinstance(getattr(p, a), str) for a in ("engine", "text_field", "label_field"))
            assert list(inspect.signature(getattr(p, method)).parameters)[:len(want)] == want
    texts = test_texts[:6]
    answers = {"torch": run.predict(texts), "onnx": exported.predict(texts)}
    for p in (run, exported):
        rows = answers[p.engine]
        best = [max(range(len(r)), key=r.__getitem__) for r in p.predict_proba(texts).tolist()]
        assert [list(a) for a in rows] == [["label", "probabilities"]] * len(texts)
        assert [list(a["probabilities"]) for a in rows] == [run.labels] * len(texts)
        assert [a["label"] for a in rows] == [p.labels[i] for i in best]
        streamed = p.predict_stream(iter(texts), 4, **({"workers": 1} if p is exported else {}))
        assert [r for _, r in streamed] == rows
        with pytest.raises(UserError, match=r"^text #2 is a int, not a string"):
            p.predict(["fine", 3])
        with pytest.raises(UserError, match="^min_labels is -1"):
            p.predict(["fine"], min_labels=-1)
    assert [a["label"] for a in answers["torch"]] == [a["label"] for a in answers["onnx"]]


def test_a_bundle_loads_and_predicts_without_torch_lightning_or_wandb(bundle, test_texts):
    code = (
        "import json, sys, textlstm\n"
        f"p = textlstm.load({str(bundle)!r})\n"
        f"texts = {test_texts[:20]!r}\n"
        "stream = p.predict_stream(texts * 3, chunk_size=16, workers=2)\n"
        "rows = p.predict(texts) + [r for _, r in stream]\n"
        "heavy = [m for m in ('torch', 'lightning', 'wandb') if m in sys.modules]\n"
        "print(json.dumps({'engine': p.engine, 'n': len(rows), 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"engine": "onnx", "n": 80, "heavy": []}


def test_serving_a_bundle_loads_neither_torch_nor_lightning(bundle):
    """`textlstm serve BUNDLE` on a serving image with the `serve` extra: the command, its
    server and the model it labels with never import torch, Lightning or wandb (the socket
    handling is swapped for one prediction, so no port is held)."""
    from benchmarks.serve_bench import free_port

    code = (
        "import json, sys\n"
        "import textlstm.commands.serve as C\n"
        "def one_request(sock, app, workers):\n"
        "    rows = app.load().predict(['a good flight'])\n"
        "    heavy = [m for m in ('torch', 'lightning', 'wandb') if m in sys.modules]\n"
        "    print(json.dumps({'label': rows[0]['label'], 'heavy': heavy}), flush=True)\n"
        "C.run_workers = one_request\n"
        "from textlstm.cli import main\n"
        f"main(['serve', {str(bundle)!r}, '--port', '{free_port()}'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["heavy"] == [] and answer["label"]


def test_predict_and_evaluate_take_a_bundle(bundle, tiny_run, small_csvs, test_texts, tmp_path):
    import textlstm

    f = tmp_path / "texts.txt"
    f.write_text("\n".join(test_texts[:6]) + "\n")
    code, out, err = run_cli("predict", bundle, "--input", f)
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert [r["text"] for r in rows] == test_texts[:6]
    want = textlstm.load(tiny_run).predict(test_texts[:6])
    assert [r["label"] for r in rows] == [r["label"] for r in want]

    # the tiny run's test split is test.csv: the bundle scores it as the run's best checkpoint did
    code, out, err = run_cli("evaluate", bundle, "--data", small_csvs / "test.csv")
    assert code == 0, err
    got, want = json.loads(out), json.loads((tiny_run / "metrics.json").read_text())["test"]
    assert got["accuracy"] == pytest.approx(want["accuracy"])
    assert got["confusion_matrix"] == want["confusion_matrix"]
    assert got["loss"] == pytest.approx(want["loss"], abs=1e-4)  # with the run's temperature
    assert got["ece"] == pytest.approx(want["ece"], abs=1e-4)


@pytest.fixture(scope="module")
def keyword_run(tmp_path_factory):
    """A tiny run whose classes are told apart by their own keywords among 3,000 filler words:
    its logits stand far apart, so int8 must keep every label (the session's tiny run is too
    close to chance for the 99 % check to pass reliably), and its vocabulary is large enough
    for int8 to shrink the file below 0.35x."""
    import csv
    import random

    from textlstm.commands.train import train
    from textlstm.core.config import load_config

    root = tmp_path_factory.mktemp("keywords")
    keys = {"sport": "goal match team coach league striker".split(),
            "tech": "chip software phone server code robot".split(),
            "business": "shares bank profit market merger stock".split()}
    rng = random.Random(0)
    for split, n in (("train", 240), ("validation", 60), ("test", 60)):
        with open(root / f"{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "label"])
            for i in range(n):
                label = list(keys)[i % 3]
                words = [f"w{rng.randrange(3000)}" for _ in range(8)]
                words += rng.choices(keys[label], k=6)
                rng.shuffle(words)
                w.writerow([" ".join(words), label])
    cfg = load_config(ROOT / "configs" / "bbc_news.yaml", [
        *(f"data.{s}_file={root / f'{s}.csv'}" for s in ("train", "validation", "test")),
        f"data.data_dir={root / 'data'}", f"run_root={root}", "model.embedding.vectors=null",
        "wandb.mode=disabled", *TINY, "trainer.max_epochs=4", "optim.lr=0.02"])
    return train(cfg)


def test_int8_export_agrees_with_the_run(keyword_run, tmp_path):
    from textlstm.commands.export import export
    from textlstm.serving import export as ex

    out = tmp_path / "int8"
    check = export(keyword_run, out, quantize="int8", log=_quiet)
    assert check == json.loads((out / "export_check.json").read_text())
    assert set(check) == CONTRACT and check["quantize"] == "int8"
    assert check["argmax_agreement"] >= ex.INT8_MIN_AGREEMENT
    assert abs(check["accuracy"]["onnx"] - check["accuracy"]["torch"]) <= ex.INT8_MAX_ACCURACY_DROP
    assert check["size_bytes"]["onnx"] <= ex.INT8_MAX_SIZE_RATIO * check["size_bytes"]["fp32"]
    assert {p.name for p in out.iterdir()} == BUNDLE_FILES and _leftovers(tmp_path) == []
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert "DynamicQuantizeLSTM" in ops


def test_a_failed_int8_check_keeps_the_bundle_it_would_replace(keyword_run, tmp_path,
                                                                monkeypatch):
    from textlstm.commands.export import export
    from textlstm.core.errors import UserError
    from textlstm.serving import export as ex

    out = tmp_path / "b"
    export(keyword_run, out, log=_quiet)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(ex, "INT8_MIN_AGREEMENT", 1.01)  # no model can pass
    with pytest.raises(UserError, match="export check failed.*int8"):
        export(keyword_run, out, quantize="int8", overwrite=True, log=_quiet)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert json.loads((out / "export_check.json").read_text())["quantize"] == "none"
    assert _leftovers(tmp_path) == []


def test_the_product_checks_use_the_issue_thresholds():
    from textlstm.serving import export as ex

    assert (ex.FP32_MAX_ABS_DIFF, ex.INT8_MIN_AGREEMENT, ex.INT8_MAX_ACCURACY_DROP,
            ex.INT8_MAX_SIZE_RATIO, ex.CHECK_TEXTS) == (1e-4, 0.99, 0.005, 0.35, 2000)
    ok = {"quantize": "int8", "argmax_agreement": 0.99, "accuracy": {"torch": 0.9, "onnx": 0.895},
          "size_bytes": {"onnx": 35, "fp32": 100}}
    assert ex.check_failures(ok) is None
    assert "agrees" in ex.check_failures({**ok, "argmax_agreement": 0.989})
    assert "points" in ex.check_failures({**ok, "accuracy": {"torch": 0.9, "onnx": 0.8949}})
    assert "size" in ex.check_failures({**ok, "size_bytes": {"onnx": 36, "fp32": 100}})
    fp32 = {"quantize": "none", "max_abs_logit_diff": 1e-4, "argmax_agreement": 1.0}
    assert ex.check_failures(fp32) is None
    assert ex.check_failures({**fp32, "max_abs_logit_diff": 1.1e-4})
    assert ex.check_failures({**fp32, "argmax_agreement": 0.9995})


def test_a_failed_check_leaves_nothing_behind(tiny_run, tmp_path, monkeypatch):
    from textlstm.commands.export import export
    from textlstm.core.errors import UserError
    from textlstm.serving import export as ex

    monkeypatch.setattr(ex, "FP32_MAX_ABS_DIFF", -1.0)  # no model can pass: the failure path
    with pytest.raises(UserError, match="export check failed.*no bundle was written"):
        export(tiny_run, tmp_path / "b", log=_quiet)
    assert list(tmp_path.iterdir()) == []


def test_export_mistakes_are_one_line_and_leave_nothing(tiny_run, bundle, tmp_path):
    before = sorted(p.name for p in bundle.iterdir())
    cases = [
        (("export", tiny_run, "--out", bundle), "already exists"),
        (("export", tmp_path, "--out", tmp_path / "b"), "not a run directory"),
        (("export", tiny_run, "--out", tmp_path / "b", "--quantize", "int4"), "--quantize int4"),
        (("export", tiny_run, "--out", tmp_path / "b", "--opset", "9"), "--opset 9"),
    ]
    for args, says in cases:
        code, out, err = run_cli(*args)
        assert code == 2 and out == "" and err.count("\n") == 1 and says in err, (args, err)
    assert list(tmp_path.iterdir()) == [] and sorted(p.name for p in bundle.iterdir()) == before


def test_a_peephole_run_is_refused_in_one_line(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("wandb", "gates", "logs"))
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text().replace("cell: lstm", "cell: peephole_lstm"))
    code, out, err = run_cli("export", run, "--out", tmp_path / "b")
    assert code == 2 and err.count("\n") == 1 and "peephole_lstm" in err and "lstm or gru" in err
    assert not (tmp_path / "b").exists() and _leftovers(tmp_path) == []


def test_a_bundle_of_another_architecture_version_is_refused(bundle, tmp_path):
    from textlstm.models.classifier import ARCH_VERSION

    other = tmp_path / "other"
    shutil.copytree(bundle, other)
    meta = json.loads((other / "textlstm.json").read_text())
    (other / "textlstm.json").write_text(json.dumps({**meta, "arch_version": ARCH_VERSION + 1}))
    code, out, err = run_cli("predict", other, "a text")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "retrain" in err
    assert f"architecture version {ARCH_VERSION + 1}" in err


@pytest.mark.parametrize("pooling,chunk_pooling,overlap,regions", [
    ("max", "max", 0, 1), ("mean", "attention", 2, 1), ("last", "mean", 3, 1),
    ("max_mean", "max", 1, 1), ("max", "max", 2, 3), ("max", "max", 0, 5)])
def test_a_chunked_network_exports_with_the_same_logits(pooling, chunk_pooling, overlap,
                                                        regions, tmp_path):
    """model.long_text=chunks: the exported graph gives every document data.max_chunks windows
    and masks the ones it lacks; onnxruntime must match the network on documents of one
    window, several, and the longest the bundle feeds, in one batch (with model.regions, the
    pieces cut from each document's length in the graph too; 1 and 2 tokens are fewer than
    5 pieces)."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from textlstm.core.config import chunking, load_config
    from textlstm.models.classifier import TextClassifier
    from textlstm.serving.export import write_onnx

    cfg = load_config(None, ["model.long_text=chunks", "data.chunk_length=8",
                             f"data.chunk_overlap={overlap}", "data.max_chunks=4",
                             f"model.pooling={pooling}", f"model.chunk_pooling={chunk_pooling}",
                             f"model.regions={regions}",
                             "model.embedding.dim=8", "model.encoder.hidden_size=6"])
    torch.manual_seed(0)
    net = TextClassifier(60, 3, cfg.model, chunking(cfg)).eval()
    write_onnx(net, tmp_path / "m.onnx", 17, cfg.data.max_chunks)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(0)
    for lens in ([3, cfg.data.max_length, 9, 20, 8, 1], [2, 5]):
        ids = np.zeros((len(lens), max(lens)), np.int64)  # (B, T)
        for i, n in enumerate(lens):
            ids[i, :n] = rng.integers(2, 60, n)
        lengths = np.array(lens, np.int64)
        with torch.no_grad():
            ref = net(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
        got = session.run(None, {"ids": ids, "lengths": lengths})[0]
        assert np.abs(ref - got).max() < 1e-5


def test_a_network_with_regions_exports_with_the_same_logits(tmp_path):
    """model.regions without windows: the piece bounds are traced from `lengths` (arange
    comparisons), so one graph serves every length and batch."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from textlstm.core.config import load_config
    from textlstm.models.classifier import TextClassifier
    from textlstm.serving.export import write_onnx

    cfg = load_config(None, ["model.regions=4", "model.embedding.dim=8",
                             "model.encoder.hidden_size=6"])
    torch.manual_seed(0)
    net = TextClassifier(60, 3, cfg.model).eval()
    write_onnx(net, tmp_path / "m.onnx", 17)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(0)
    for lens in ([3, 40, 9, 1, 2], [7], [13, 13]):
        ids = np.zeros((len(lens), max(lens)), np.int64)  # (B, T)
        for i, n in enumerate(lens):
            ids[i, :n] = rng.integers(2, 60, n)
        lengths = np.array(lens, np.int64)
        with torch.no_grad():
            ref = net(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
        got = session.run(None, {"ids": ids, "lengths": lengths})[0]
        assert np.abs(ref - got).max() < 1e-5

