"""Behaviours the README promises that no other fast test pins down: the vocabulary comes from
train only, the config refuses unknown keys in files, DDP ranks train on disjoint batches,
`predict --input` holds a bounded number of texts, the tokenization cache key, thread counts
from cores and cgroup quotas, truncation, streaming's refusals and restarts, TEXTLSTM_RUN_DIR,
and every rank's random generators in a checkpoint."""

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from textlstm.batches.sampler import BucketBatchSampler
from textlstm.core.config import load_config
from textlstm.core.errors import UserError


def _csv(path: Path, rows) -> Path:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def _rows(n, extra=""):
    return [(f"shared words here {extra} {i}".strip(), "ab"[i % 2]) for i in range(n)]


# ------------------------------------------------------------------ vocabulary from train only
def test_prepared_vocabulary_comes_from_train_only(tmp_path):
    from textlstm.batches.datamodule import TextDataModule

    files = {"train": _csv(tmp_path / "train.csv", _rows(40)),
             "validation": _csv(tmp_path / "validation.csv", _rows(10, "onlyinvalidation")),
             "test": _csv(tmp_path / "test.csv", _rows(10, "onlyintest"))}
    cfg = load_config(None,
                      [*(f"data.{s}_file={p}" for s, p in files.items()),
                       f"data.data_dir={tmp_path / 'd'}",
                             "data.min_freq=1"])
    dm = TextDataModule(cfg.data)
    dm.setup()
    assert "shared" in dm.vocab and "39" in dm.vocab
    assert "onlyinvalidation" not in dm.vocab and "onlyintest" not in dm.vocab
    assert dm.stats["validation_oov_rate"] > 0 and dm.stats["test_oov_rate"] > 0


def test_vocabulary_min_freq_and_max_size():
    from textlstm.tokens.vocab import Vocab

    v = Vocab.build([["a", "a", "a", "b", "b", "c"]], min_freq=2)
    assert v.itos == ["<pad>", "<unk>", "a", "b"]
    assert (Vocab.build([["a", "a", "b", "c"]], min_freq=1, max_size=3).itos
            == ["<pad>", "<unk>", "a"])


# ------------------------------------------------------------------ config files are strict
@pytest.mark.parametrize("body,needle", [
    ("optimiser:\n  lr: 0.1\n", "optimiser"),                      # unknown top-level section
    ("model:\n  encoder:\n    hiden_size: 8\n", "hiden_size"),     # unknown key inside a section
    ("data:\n  batchsize: 8\n", "batchsize"),
], ids=["section", "nested", "data"])
def test_unknown_keys_in_a_yaml_file_are_refused(tmp_path, body, needle):
    path = tmp_path / "c.yaml"
    path.write_text(body)
    with pytest.raises(UserError, match=needle):
        load_config(path)


def test_unknown_top_level_override_is_refused():
    with pytest.raises(UserError, match="optimizer"):
        load_config(None, ["optimizer.lr=0.1"])


# ------------------------------------------------------------------ DDP shards of training batches
@pytest.mark.parametrize("n", [320, 333])  # 20 batches of 16 (even), and 21 (rank 1 repeats one)
def test_ddp_ranks_train_on_disjoint_batches_that_cover_the_epoch(monkeypatch, n):
    import textlstm.batches.sampler as sampler_mod

    lengths = np.random.default_rng(0).integers(1, 50, size=n)
    single = BucketBatchSampler(lengths, 16, shuffle=True, seed=5)
    single.set_epoch(1)
    whole = [tuple(b) for b in single]
    shards = {}
    for rank in (0, 1):
        # the sampler asks core/hardware.rank_and_world (through _world) who it is
        monkeypatch.setattr(sampler_mod, "rank_and_world", lambda r=rank: (r, 2))
        s = BucketBatchSampler(lengths, 16, shuffle=True, seed=5)
        s.set_epoch(1)
        shards[rank] = [tuple(b) for b in s]
        assert len(s) == len(shards[rank]) == -(-len(whole) // 2)
    # together the ranks train on exactly the single-process epoch's batches
    assert set(shards[0]) | set(shards[1]) == set(whole)
    repeated = len(shards[0]) + len(shards[1]) - len(whole)  # padding so both ranks step equally
    assert repeated == len(whole) % 2
    assert len(set(shards[0]) & set(shards[1])) == repeated
    if repeated == 0:
        assert not {i for b in shards[0] for i in b} & {i for b in shards[1] for i in b}


# ------------------------------------------------------------------ predict --input streams
def _fake_run(tmp_path: Path) -> Path:
    """A run folder with an untrained network: enough for predict, no training needed."""
    from textlstm.core.config import to_yaml
    from textlstm.models.classifier import ARCH_VERSION, TextClassifier
    from textlstm.tokens.vocab import Vocab

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    cfg = load_config(None,
                      ["model.embedding.dim=8", "model.encoder.hidden_size=8",
                       "model.embedding.vectors=null"])
    (run / "config.yaml").write_text(to_yaml(cfg))
    vocab = Vocab(["<pad>", "<unk>", "good", "bad"])
    vocab.save(run / "vocab.json")
    (run / "labels.json").write_text(json.dumps(["neg", "pos"]))
    torch.manual_seed(0)
    net = TextClassifier(len(vocab), 2, cfg.model)
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
                "textlstm": {"arch_version": ARCH_VERSION}}, run / "checkpoints" / "best.ckpt")
    return run


@pytest.mark.parametrize("to_file", [False, True], ids=["stdout", "file"])
def test_predict_input_holds_a_bounded_number_of_texts(tmp_path, monkeypatch, capsys, to_file):
    import textlstm.commands.predict as predict_mod
    from textlstm.models.predictor import Predictor

    run = _fake_run(tmp_path)
    src = tmp_path / "in.txt"
    src.write_text("".join(f"{'good' if i % 3 else 'bad'} text {i}\n" for i in range(600)))
    chunk = 50
    real_blocks = Predictor.predict_blocks
    held = []  # texts read but not yet written, at each written chunk
    read = {"n": 0}
    real_iter = predict_mod.iter_texts

    def counting_iter(*a, **k):
        for t in real_iter(*a, **k):
            read["n"] += 1
            yield t

    def counting_blocks(self, texts, chunk_size=8192, **kw):
        written = 0
        for count, block in real_blocks(self, texts, chunk_size=chunk, **kw):
            held.append(read["n"] - written)
            written += count
            yield count, block

    monkeypatch.setattr(predict_mod, "iter_texts", counting_iter)
    monkeypatch.setattr(Predictor, "predict_blocks", counting_blocks)
    out = tmp_path / "out.jsonl" if to_file else None
    n = predict_mod.predict(run, input_file=str(src), output=str(out) if out else None)
    assert n == 600 and read["n"] == 600
    lines = (out.read_text() if out else capsys.readouterr().out).splitlines()
    assert [json.loads(x)["text"] for x in lines] == [x for x in src.read_text().splitlines()]
    assert held[0] <= chunk  # the first row is written after one chunk was read, not the file
    assert max(held) <= chunk


def test_predict_lines_are_json_dumps_of_the_answers_to_the_character():
    """`answer_lines` writes a multi-class line from a template: it must be the very text
    json.dumps writes of the answer, for odd texts, odd label names, ties, tiny and exact
    probabilities."""
    from textlstm.models.contract import Predictions, json_line

    p = Predictions()
    p.labels = ["neg %s 100%", 'quo"te', "ünï\\", "tab\t"]  # '%': the template's own sign
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=200).astype(np.float32).tolist()
    probs += [[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [5e-07, 1e-05, 0.4999995, 0.5],
              [0.1, 0.7, 0.1, 0.1]]
    texts = ["plain", "", 'a "quote" \\ back', "tab\tnew\nline", "\u00e9\U0001f600", "\x00\x1f",
             "\ud800 lone", "x" * 5000] * 30
    texts = texts[: len(probs)]
    want = [json_line(t, a) for t, a in zip(texts, p.answers(probs), strict=True)]
    assert p.answer_lines(texts, probs) == want
    p.multilabel, p.thresholds = True, [0.3] * 4
    assert p.answer_lines(texts, probs, 1) == [
        json_line(t, a) for t, a in zip(texts, p.answers(probs, 1), strict=True)]


# ------------------------------------------------------------------ tokenization cache key
def test_the_tokenization_cache_key_includes_the_spacy_version(tmp_path, monkeypatch):
    import spacy

    import textlstm.tokens.tokenize as tk
    from textlstm.data.sources import read_file

    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": f"text number {i}",
                                        "label": "a"}) + "\n" for i in range(20)))
    first = tk.tokenize_dataset(read_file(path, str(tmp_path / "cache")))
    calls = []
    real = tk.tokenize_texts
    monkeypatch.setattr(tk, "tokenize_texts", lambda *a, **k: calls.append(1) or real(*a, **k))
    tk.tokenize_dataset(read_file(path, str(tmp_path / "cache")))
    assert not calls  # same inputs and versions: read from the cache
    monkeypatch.setattr(spacy, "__version__", spacy.__version__ + ".post-upgrade")
    again = tk.tokenize_dataset(read_file(path, str(tmp_path / "cache")))
    assert calls and again["tokens"] == first["tokens"]  # an upgraded spaCy tokenizes again


# ------------------------------------------------------------------ threads from cores and quotas
@pytest.mark.parametrize("affinity,cpu_max,expected", [
    (8, "max 100000\n", 8),        # no quota: the affinity
    (8, "200000 100000\n", 2),     # --cpus=2
    (8, "150000 100000\n", 1),     # --cpus=1.5 rounds down
    (8, "50000 100000\n", 1),      # never below one
    (3, "800000 100000\n", 3),     # the quota above the affinity: the affinity
    (4, None, 4),                  # no cgroup file (cgroup v1, macOS)
    (4, "garbage\n", 4),           # unreadable: ignored
], ids=["no-quota", "two", "round-down", "at-least-one", "affinity-below-quota",
        "no-file", "garbage"])
def test_usable_cores_from_affinity_and_cgroup_quota(
    tmp_path, monkeypatch, affinity, cpu_max, expected
):
    from textlstm.core import hardware

    f = tmp_path / "cpu.max"
    if cpu_max is not None:
        f.write_text(cpu_max)
    monkeypatch.setattr(hardware, "CGROUP_CPU_MAX", f)
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: set(range(affinity)),
                        raising=False)
    assert hardware.usable_cores() == expected
    before = torch.get_num_threads()
    try:
        assert hardware.set_threads(0) == expected and torch.get_num_threads() == expected
        assert (
            hardware.set_threads(1) == 1 and torch.get_num_threads() == 1
        )  # an explicit count wins
    finally:
        torch.set_num_threads(before)


# ------------------------------------------------------------------ truncation (data.max_length)
def test_long_documents_are_truncated_to_max_length(tmp_path):
    from textlstm.batches.datamodule import TextDataModule
    from textlstm.tokens.vocab import Vocab

    rows = _rows(20)
    rows[0] = (" ".join(f"w{i}" for i in range(500)), "a")
    files = {s: _csv(tmp_path / f"{s}.csv", rows) for s in ("train", "validation", "test")}
    cfg = load_config(None,
                      [*(f"data.{s}_file={p}" for s, p in files.items()),
                       f"data.data_dir={tmp_path / 'd'}",
                             "data.max_length=7", "data.min_freq=1"])
    dm = TextDataModule(cfg.data)
    dm.setup()
    for split in ("train", "validation", "test"):
        lengths = list(dm.splits[split]["length"])
        assert max(lengths) == 7 and all(
            len(x) == n for x, n in zip(dm.splits[split]["ids"], lengths, strict=True)
        )
    first = dm.splits["train"][0]["ids"]
    assert first == [dm.vocab.stoi[f"w{i}"] for i in range(7)]  # the head of the text is kept
    batch = next(iter(dm.loader("train")))
    assert batch["ids"].shape[1] <= 7
    v = Vocab(["<pad>", "<unk>", "a"])
    assert v.encode(["a"] * 50, max_length=7) == [2] * 7


def test_the_predictor_truncates_too(tmp_path):
    from textlstm.serving.loader import load

    pred = load(_fake_run(tmp_path), ["data.max_length=5"])
    assert pred.encode(["good " * 1000]) == [[2] * 5]


# ------------------------------------------------------------------ streaming
@pytest.mark.parametrize("override,key",
                         [("data.max_tokens_per_batch=1000", "data.max_tokens_per_batch"),
                                          ("data.bucketing=exact", "data.bucketing")],
                         ids=["max_tokens", "exact"])
def test_streaming_refuses_token_budgets_and_exact_bucketing(override, key):
    load_config(None, [override])  # fine without streaming
    with pytest.raises(UserError, match=key.replace(".", r"\.") + ".*data.streaming=true"):
        load_config(None, ["data.streaming=true", override])


def test_a_resumed_streamed_epoch_starts_from_the_beginning_of_the_stream():
    """The stream's loader has no position to resume from: whatever epoch the trainer is in
    when it asks (a run resumed mid-epoch included), it gets that epoch whole, in the order an
    uninterrupted run saw it."""
    from datasets import Dataset

    from textlstm.batches.streaming import StreamBatches, _EpochLoader
    from textlstm.tokens.vocab import Vocab

    n = 60
    ds = Dataset.from_list([{"text": f"t{i} " + "x " * (i % 7),
                             "label": "ab"[i % 2]} for i in range(n)])
    vocab = Vocab(["<pad>", "<unk>", "x"] + [f"t{i}" for i in range(n)])
    cfg = load_config(None, ["data.batch_size=8", "data.streaming=true"]).data

    def rows(batches):
        return [int(r) - 3 for b in batches for r in b["ids"][:, 0]]

    fresh = StreamBatches(ds.to_iterable_dataset(), vocab, ["a", "b"], cfg, seed=3, rows=n)
    fresh.set_epoch(2)
    uninterrupted = rows(list(fresh))
    interrupted = StreamBatches(ds.to_iterable_dataset(), vocab, ["a", "b"], cfg, seed=3, rows=n)
    loader = _EpochLoader(interrupted, lambda: 2)
    it = iter(loader)
    next(it), next(it)  # killed after two steps of epoch 2
    resumed = rows(list(_EpochLoader(interrupted, lambda: 2)))
    assert resumed == uninterrupted and sorted(resumed) == list(range(n))


# ------------------------------------------------------------------ TEXTLSTM_RUN_DIR
def test_ranks_started_by_a_launcher_join_the_folder_in_textlstm_run_dir(tmp_path, monkeypatch):
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    import textlstm.commands.train as train_mod
    from textlstm.core.runfolder import RUN_DIR_ENV
    from textlstm.tokens.vocab import Vocab

    cfg = load_config(None, [f"run_root={tmp_path / 'runs'}"])
    shared = tmp_path / "shared"
    shared.mkdir()
    Vocab(["<pad>", "<unk>", "w"]).save(shared / "vocab.json")
    (shared / "labels.json").write_text('["a", "b"]')
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    with pytest.raises(UserError, match=RUN_DIR_ENV):
        train_mod._starting_point(cfg)
    monkeypatch.setenv(RUN_DIR_ENV, str(shared))
    start = train_mod._starting_point(cfg)
    assert start.run_dir == shared and start.checkpoint is None
    assert start.vocab.itos == ["<pad>", "<unk>", "w"] and start.labels == ["a", "b"]
    # rank 0 started by the same launcher writes into that folder, not a new one under run_root
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    target = tmp_path / "launcher-named"
    monkeypatch.setenv(RUN_DIR_ENV, str(target))

    class DM:
        vocab, labels = Vocab(["<pad>", "<unk>", "w"]), ["a", "b"]

    assert train_mod._open_run_dir(cfg, DM, train_mod._Start()) == target
    assert (target / "config.yaml").is_file() and (target / "vocab.json").is_file()
    assert not (tmp_path / "runs").exists()


def test_fit_tells_the_ranks_it_starts_where_the_run_folder_is(tmp_path, monkeypatch):
    from textlstm.core.runfolder import RUN_DIR_ENV
    from textlstm.training import trainer as trainer_mod

    seen = {}

    class FakeTrainer:
        def fit(self, *a, **k):
            import os

            seen["env"] = os.environ.get(RUN_DIR_ENV)

    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    trainer_mod.fit(FakeTrainer(), None, None, tmp_path / "run")
    assert seen["env"] == str(tmp_path / "run")
    import os

    assert RUN_DIR_ENV not in os.environ  # restored afterwards


# ------------------------------------------------------------------ every rank's generators
def test_rng_state_saves_every_rank_and_gives_each_its_own_back(monkeypatch):
    import torch.distributed as dist

    import textlstm.training.checkpoints as ck

    def state_of(seed):
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        return ck.RNGState._local()

    local = {0: state_of(100), 1: state_of(101)}
    monkeypatch.setattr(ck, "rank_and_world", lambda: (0, 2))
    monkeypatch.setattr(dist, "all_gather_object",
                        lambda out, obj: out.__setitem__(slice(None), [local[0], local[1]]))
    saved = ck.RNGState().state_dict()
    assert len(saved["ranks"]) == 2
    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    for rank in (0, 1):
        state_of(100 + rank)
        expected = draws()  # what this rank would have drawn next, uninterrupted
        state_of(999)  # a restarted process: other generator states
        monkeypatch.setattr(ck, "rank_and_world", lambda r=rank: (r, 2))
        ck.RNGState().load_state_dict(saved)
        assert draws() == expected, rank


# ------------------------------------------------------------------ atomic writes
def test_atomic_write_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    from textlstm.core.io import atomic_write, write_json

    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(path) as fh:
            fh.write('{"a": 2, "half')
            raise KeyboardInterrupt  # stands in for Ctrl-C
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]
    write_json(path, {"a": 3})
    assert json.loads(path.read_text()) == {"a": 3} and sorted(
        p.name for p in tmp_path.iterdir()
    ) == ["metrics.json"]


def test_a_kill_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    from textlstm.training.checkpoints import AtomicCheckpointIO

    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def dies_halfway(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_the_trainer_writes_checkpoints_atomically(tmp_path):
    from textlstm.training.checkpoints import AtomicCheckpointIO
    from textlstm.training.trainer import build_trainer

    cfg = load_config(None, ["trainer.progress_bar=false", "trainer.checkpoint_every_n_steps=5"])
    trainer, ckpts = build_trainer(cfg, tmp_path / "run")
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    names = sorted(c.filename for c in trainer.checkpoint_callbacks)
    assert (names == ["best", "last", "step"] and ckpts.best.monitor == "val/f1_macro"
            and ckpts.best.mode == "max")
    stop = trainer.early_stopping_callback
    assert (
        stop.monitor == "val/f1_macro"
        and stop.mode == "max"
        and stop.patience == cfg.trainer.patience
    )



# ------------------------------------------------------------------ class weights
def test_balanced_class_weights_and_explicit_ones():
    from textlstm.training.build import class_weights

    ids = [0] * 6 + [1] * 3 + [2] * 1  # n=10, k=3: n / (k * count)
    cfg = load_config(None, ["model.class_weights=balanced"])
    assert class_weights(cfg, ["a", "b", "c"], ids) == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    cfg = load_config(None, ["model.class_weights=[1, 2.5, 0]"])
    assert class_weights(cfg, ["a", "b", "c"], ids) == [1.0, 2.5, 0.0]
    assert class_weights(load_config(None, []), ["a", "b", "c"], ids) is None
    with pytest.raises(UserError, match="model.class_weights"):
        class_weights(load_config(None, ["model.class_weights=[1, -1, 1]"]), ["a", "b", "c"], ids)


def test_class_weights_reach_the_loss():
    from textlstm.training.module import LitTextClassifier

    lit = LitTextClassifier(torch.nn.Linear(1, 2), ["a", "b"], {}, [1.0, 3.0])
    assert lit.criterion.weight.tolist() == [1.0, 3.0]


# ------------------------------------------------------------------ the cosine schedule
def test_cosine_schedule_warms_up_then_decays_to_five_percent():
    from types import SimpleNamespace

    from textlstm.training.module import LitTextClassifier

    lit = LitTextClassifier(torch.nn.Linear(2, 2), ["a", "b"],
                            {"name": "adamw", "lr": 1.0, "weight_decay": 0.0, "scheduler": "cosine",
                             "warmup_steps": 4})
    lit._trainer = SimpleNamespace(estimated_stepping_batches=104)
    conf = lit.configure_optimizers()
    sched = conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(104):
        lrs.append(sched.get_last_lr()[0])
        conf["optimizer"].step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])  # linear warm-up to the peak
    # half way: the middle of the cosine
    assert lrs[4 + 50] == pytest.approx(0.05 + 0.95 * 0.5, abs=1e-6)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))  # then never rising
    assert lrs[-1] == pytest.approx(0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * 99 / 100)), abs=1e-6)
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.05, abs=1e-6)  # ends at 5 % of the peak


# ------------------------------------------------------------------ run folders
def test_run_folder_checks(tmp_path):
    import os

    from textlstm.core import runfolder

    with pytest.raises(UserError, match="does not exist"):
        runfolder.require_run_dir(tmp_path / "nope")
    (tmp_path / "r" / "checkpoints").mkdir(parents=True)
    run = tmp_path / "r"
    with pytest.raises(UserError, match="not a run directory"):
        runfolder.require_run_dir(run)
    (run / "config.yaml").write_text("seed: 1\n")
    assert runfolder.require_run_dir(run) == run
    with pytest.raises(UserError, match="no checkpoint yet"):
        runfolder.resume_target(run)
    for name, t in (("last.ckpt", 1_000_000_000), ("step.ckpt", 2_000_000_000)):
        torch.save({"state_dict": {}, "epoch": 0}, run / "checkpoints" / name)
        os.utime(run / "checkpoints" / name, ns=(t, t))
    assert runfolder.latest_checkpoint(run).name == "step.ckpt"  # the newer one
    os.utime(run / "checkpoints" / "last.ckpt", ns=(3_000_000_000, 3_000_000_000))
    assert runfolder.resume_target(run) == (run, run / "checkpoints" / "last.ckpt")
    (run / "metrics.json").write_text("{}")
    with pytest.raises(UserError, match="already finished"):
        runfolder.resume_target(run)
    (run / "labels.json").write_text('["only"]')
    with pytest.raises(UserError, match="at least two"):
        runfolder.load_labels(run)
    assert runfolder.find_checkpoint(run).name == "last.ckpt"  # no best.ckpt: the last one
    (run / "checkpoints" / "bad.ckpt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(UserError, match="truncated or corrupt"):
        runfolder.read_checkpoint(run / "checkpoints" / "bad.ckpt")


def test_new_run_dirs_never_collide(tmp_path):
    from textlstm.core.runfolder import new_run_dir

    dirs = {new_run_dir(tmp_path, "x") for _ in range(3)}
    assert len(dirs) == 3 and all(d.parent == tmp_path / "x" and d.is_dir() for d in dirs)


# ------------------------------------------------------------------ file formats
def test_file_formats(tmp_path):
    from textlstm.data.formats import builder_for, count_rows, iter_texts, loader_for

    (tmp_path / "a.tsv").write_text("text\tlabel\nhello, world\tx\nbye\ty\n")
    (tmp_path / "a.csv").write_text('text,label\n"hello, world",x\nbye,y\n')
    (tmp_path / "a.jsonl").write_text('{"text": "hello, world", "label": "x"}\n\n"bye"\n')
    (tmp_path / "a.txt").write_text("hello, world\nbye\n")
    for name in ("a.tsv", "a.csv", "a.jsonl", "a.txt"):
        assert list(iter_texts(tmp_path / name, "text")) == ["hello, world", "bye"], name
    assert loader_for(tmp_path / "a.tsv") == ("csv", {"delimiter": "\t"})
    assert loader_for(tmp_path / "a.csv") == ("csv", {})
    assert builder_for(Path("x.PARQUET")) == "parquet" and builder_for(Path("x.ndjson")) == "json"
    assert count_rows(tmp_path / "a.tsv") == 2 and count_rows(tmp_path / "a.jsonl") == 3
    with pytest.raises(UserError, match="unknown format '.xlsx'"):
        builder_for(Path("x.xlsx"))
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(UserError, match="is empty"):
        loader_for(tmp_path / "e.csv")
    from textlstm.data.sources import read_file

    ds = read_file(tmp_path / "a.tsv", str(tmp_path / "cache"))
    assert ds.column_names == ["text", "label"] and ds["text"] == ["hello, world", "bye"]


# ------------------------------------------------------------------ hub errors
def test_hub_errors_are_one_sentence(monkeypatch):
    import datasets

    from textlstm.data import hub

    def boom(*a, **k):
        raise FileNotFoundError("Couldn't find a dataset script\nmore")

    monkeypatch.setattr(datasets, "load_dataset", boom)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(UserError,
                       match=r"hub dataset 'org/name' could not be streamed \(Couldn't "
                       r"find a dataset "
                                        r"script\); check the name and your network"):
        hub.open_hub("hf:org/name:cfg", streaming=True)
    assert (hub.parse_source("hf:org/name:cfg") == ("org/name", "cfg")
            and hub.parse_source("hf:x") == ("x", None))
    with pytest.raises(UserError, match="no split 'train'.*data.hf_splits.train"):
        hub.check_train_split("hf:x", ["test"], "train")


# ------------------------------------------------------------------ architecture version
def test_a_checkpoint_of_another_architecture_version_is_refused():
    from textlstm.models.classifier import ARCH_VERSION, TextClassifier, network_from_checkpoint

    cfg = load_config(None, ["model.embedding.dim=4", "model.encoder.hidden_size=3"])
    net = TextClassifier(10, 2, cfg.model)
    ck = {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
          "textlstm": {"arch_version": ARCH_VERSION}}
    again = network_from_checkpoint(ck, 10, 2, cfg.model, "run")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in net.state_dict().items())
    ck["textlstm"]["arch_version"] = ARCH_VERSION + 1
    with pytest.raises(UserError, match=f"architecture version {ARCH_VERSION + 1}"):
        network_from_checkpoint(ck, 10, 2, cfg.model, "run")
    ck["textlstm"]["arch_version"] = ARCH_VERSION
    with pytest.raises(UserError, match="does not match"):
        network_from_checkpoint(ck, 11, 2, cfg.model, "run")


# ------------------------------------------------------------------ errors end in exit code 2
def test_user_errors_exit_with_code_2(capsys):
    from textlstm.cli import main

    assert main(["predict", "/nonexistent/run", "hello"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("textlstm: error: ") and len(err.strip().splitlines()) == 1
