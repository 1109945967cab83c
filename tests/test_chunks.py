"""Reading long documents whole (model.long_text=chunks) and the auto recipe's decisions."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from textlstm.batches import recipe
from textlstm.core.config import chunking, load_config
from textlstm.core.errors import UserError
from textlstm.models.chunks import window_counts, windows
from textlstm.models.classifier import TextClassifier

CHUNKS = ["model.long_text=chunks", "data.chunk_length=8", "data.chunk_overlap=2",
          "data.max_chunks=5", "model.embedding.dim=8", "model.encoder.hidden_size=6"]


def _net(*overrides, seed=0):
    cfg = load_config(None, [*CHUNKS, *overrides])
    torch.manual_seed(seed)
    return TextClassifier(60, 3, cfg.model, chunking(cfg)).eval(), cfg


def _batch(lengths, T=None, seed=1):
    g = torch.Generator().manual_seed(seed)
    T = T or max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)  # (B, T)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(2, 60, (n,), generator=g)
    return ids, torch.tensor(lengths)


def test_windows_cover_the_document_in_order_with_overlap():
    x = torch.arange(1, 23, dtype=torch.float).view(1, 22, 1)  # token k holds value k
    xw, wlen, owner, slot = windows(x, torch.tensor([22]), 8, 2)
    # starts 0, 6, 12, 18: 4 windows, the last one 4 tokens long
    assert wlen.tolist() == [8, 8, 8, 4] and owner.tolist() == [0] * 4
    assert slot.tolist() == [0, 1, 2, 3]
    assert xw[1, :, 0].tolist() == list(range(7, 15))
    assert xw[3, :, 0].tolist() == [19, 20, 21, 22, 0, 0, 0, 0]  # zero past the window's end
    assert window_counts(torch.tensor([1, 8, 9, 14, 15]), 8, 2).tolist() == [1, 1, 2, 2, 3]


@pytest.mark.parametrize("pooling", ["max", "mean", "max_mean", "attention", "last"])
@pytest.mark.parametrize("chunk_pooling", ["max", "mean", "attention"])
def test_a_document_alone_or_in_a_batch_gives_the_same_logits(pooling, chunk_pooling):
    net, _ = _net(f"model.pooling={pooling}", f"model.chunk_pooling={chunk_pooling}")
    ids, lengths = _batch([3, 32, 9, 20, 8, 1], T=32)
    with torch.no_grad():
        together = net(ids, lengths)
        alone = torch.cat([net(ids[i:i + 1, :n], lengths[i:i + 1])
                           for i, n in enumerate(lengths.tolist())])
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("regions", [2, 3, 7])
def test_a_document_alone_or_in_a_batch_gives_the_same_logits_with_regions(regions):
    """model.regions: pieces come from each document's own length, so neither padding nor a
    longer neighbour (which sends the batch down the window path) moves them; 1 and 2 tokens
    are fewer than K."""
    net, _ = _net(f"model.regions={regions}")
    ids, lengths = _batch([3, 32, 9, 20, 8, 1, 2], T=32)
    with torch.no_grad():
        together = net(ids, lengths)
        alone = torch.cat([net(ids[i:i + 1, :n], lengths[i:i + 1])
                           for i, n in enumerate(lengths.tolist())])
    assert torch.isfinite(together).all()
    assert torch.allclose(together, alone, atol=1e-5)


def test_every_window_counts_and_nothing_past_max_length_does():
    net, cfg = _net()
    assert cfg.data.max_length == 8 + 4 * 6  # what 5 windows of 8 overlapping by 2 cover
    ids, lengths = _batch([32])
    later = ids.clone()
    later[0, 30] = 59 if int(ids[0, 30]) != 59 else 58  # a token in the fifth window only
    with torch.no_grad():
        assert not torch.allclose(net(ids, lengths), net(later, lengths))
    # truncation reads the first window's worth of tokens only: a late token changes nothing
    cfg.data.max_length = 8
    cut = TextClassifier(60, 3, cfg.model, None).eval()
    cut.load_state_dict(net.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(cut(ids[:, :8], torch.tensor([8])),
                              cut(later[:, :8], torch.tensor([8])))


def test_short_batches_take_the_plain_path_with_the_same_numbers():
    net, _ = _net("model.chunk_pooling=attention", "model.pooling=attention")
    ids, lengths = _batch([5, 8, 2])
    calls = []
    hook = net.chunk_pooling.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        plain = net(ids, lengths)
        assert calls == []  # every text fits one window: no window pooling ran
        windowed = net.head(net._encode_windows(net.embedding(ids), lengths, 8, 2))
    hook.remove()
    assert torch.allclose(plain, windowed, atol=1e-6)


def test_chunked_network_trains_and_attributes_per_token():
    from textlstm.models.explain import attribute_ids

    net, _ = _net()
    ids, lengths = _batch([30, 12, 4], T=30)
    net.train()
    loss = torch.nn.functional.cross_entropy(net(ids, lengths), torch.tensor([0, 1, 2]))
    loss.backward()
    assert net.embedding.weight.grad.abs().sum() > 0
    attr, delta = attribute_ids(net, ids, lengths, torch.tensor([0, 1, 2]), steps=64)
    assert attr.shape == (3, 30)
    assert float(attr[1, 12:].abs().sum()) == 0.0  # padding gets nothing
    assert float(attr[0, 20:].abs().sum()) > 0  # tokens of later windows do get some


@pytest.mark.parametrize("override,fragment", [
    ("data.chunk_length=1", "data.chunk_length"),
    ("data.chunk_length=often", "data.chunk_length"),
    ("data.max_chunks=0", "data.max_chunks"),
    ("data.chunk_overlap=8", "data.chunk_overlap"),
    ("model.long_text=summarize", "model.long_text"),
    ("model.chunk_pooling=sum", "model.chunk_pooling"),
    ("data.max_tokens_per_batch=plenty", "data.max_tokens_per_batch"),
    ("trainer.max_minutes=0", "trainer.max_minutes"),
    ("trainer.ema_decay=1", "trainer.ema_decay"),
    ("trainer.average_from_epoch=0", "trainer.average_from_epoch"),
    ("optim.adversarial_eps=-1", "optim.adversarial_eps"),
    ("model.pooling=maxmean", "model.pooling"),
    ("model.regions=0", "model.regions"),
    ("model.regions=2.5", "model.regions"),
])
def test_bad_chunk_settings_name_the_key(override, fragment):
    with pytest.raises(UserError, match=fragment.replace(".", r"\.")):
        load_config(None, [*CHUNKS, override])


def test_auto_needs_the_prepared_path():
    with pytest.raises(UserError, match="model.long_text.*data.streaming=false"):
        load_config(None, ["model.long_text=auto", "data.streaming=true"])


def _auto_data():
    return OmegaConf.create({"chunk_length": "auto", "chunk_overlap": 0, "max_chunks": "auto",
                             "max_length": 400, "batch_size": 32,
                             "max_tokens_per_batch": "auto"})


def test_recipe_reads_short_texts_whole_without_windows():
    d = _auto_data()
    lengths = np.arange(1, 41)  # p99 ~ 39.6 tokens
    picked = recipe.pick(d, "auto", lengths)
    assert picked["long_text"] == "truncate"
    assert d.chunk_length == 40 and d.max_length == 40  # p99 rounded up to a multiple of 8
    assert picked["train_tokens"]["cut_off_fraction"] == 0.0
    assert d.max_tokens_per_batch == 32 * np.percentile(lengths, 75)


def test_recipe_chunks_long_documents_and_covers_the_99th_percentile():
    d = _auto_data()
    rng = np.random.default_rng(0)
    lengths = rng.integers(200, 1200, size=1000)
    picked = recipe.pick(d, "auto", lengths)
    p99 = np.percentile(lengths, 99)
    assert picked["long_text"] == "chunks" and d.chunk_length == recipe.LONGEST_WINDOW
    assert d.max_length >= p99 and d.max_length - d.chunk_length < p99  # no window to spare
    assert picked["train_tokens"]["cut_off_fraction"] <= 0.01
    assert d.max_tokens_per_batch == int(32 * np.percentile(lengths, 75))
    # the numbers it picked are in the result, for metrics.json
    assert json.loads(json.dumps(picked))["max_chunks"] == d.max_chunks


def test_recipe_keeps_what_the_config_fixed():
    d = _auto_data()
    d.chunk_length, d.max_chunks, d.max_tokens_per_batch = 64, 3, None
    picked = recipe.pick(d, "chunks", np.full(100, 1000))
    assert (d.chunk_length, d.max_chunks, d.max_length) == (64, 3, 192)
    assert picked["max_tokens_per_batch"] is None
    assert picked["train_tokens"]["cut_off_fraction"] == 1.0


def test_auto_learning_rate_falls_as_one_over_the_root_of_the_planned_steps():
    assert recipe.pick_lr(recipe.BASE_STEPS) == recipe.BASE_LR == 0.003
    assert recipe.pick_lr(4 * recipe.BASE_STEPS) == pytest.approx(0.0015)  # tweets: 3,832
    assert recipe.pick_lr(3832) == 0.001533
    assert recipe.pick_lr(40) == 0.003  # never faster than the presets' rate
    assert recipe.pick_lr(10**9) == recipe.LOWEST_LR
    with pytest.raises(UserError, match="optim.lr.*data.streaming=false"):
        load_config(None, ["optim.lr=auto", "data.streaming=true"])
    assert load_config(None, ["optim.lr=1e-3"]).optim.lr == 0.001  # YAML 1.1: a string
    with pytest.raises(UserError, match="optim.lr' is fast; use auto or a positive"):
        load_config(None, ["optim.lr=fast"])


def test_auto_recipe_trains_reloads_and_predicts_long_documents(small_csvs, tmp_path):
    """A real tiny run with the auto recipe on texts longer than a window: it picks chunks, says
    so in metrics.json, saves numbers (not `auto`) in config.yaml, and the reloaded run reads
    each document the same way alone or in a batch."""
    import textlstm
    from tests.conftest import ROOT
    from textlstm.commands.train import train

    cfg = load_config(ROOT / "configs" / "auto.yaml", [
        f"data.train_file={small_csvs / 'train.csv'}",
        f"data.validation_file={small_csvs / 'validation.csv'}",
        f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
        "data.label_field=stars", f"data.data_dir={tmp_path / 'data'}", f"run_root={tmp_path}",
        "model.embedding.vectors=null", "model.embedding.dim=16", "model.encoder.hidden_size=16",
        "data.min_freq=1", "trainer.max_epochs=1", "trainer.progress_bar=false",
        "wandb.mode=disabled", "data.chunk_length=24",  # texts are ~60 tokens: 3 windows
        "optim.lr=auto"])
    run = train(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    picked = metrics["recipe"]
    assert picked["long_text"] == "chunks" and picked["chunk_length"] == 24
    assert picked["max_chunks"] >= 2 and picked["batch_size"] == 8  # sqrt(300) / 2.6 -> 8
    saved = OmegaConf.load(run / "config.yaml")
    assert saved.model.long_text == "chunks"
    # model.regions=auto: windows mean long documents, pooled in LONG_REGIONS pieces
    assert picked["regions"] == saved.model.regions == recipe.LONG_REGIONS == 4
    # optim.adversarial_eps=auto: no adversarial steps for documents read in windows
    assert picked["adversarial_eps"] == saved.optim.adversarial_eps == recipe.LONG_EPS == 0
    # optim.lr=auto: planned from the steps the epoch really had, and the optimizer ran at it
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert picked["planned_steps"] == last["global_step"] > 0  # one epoch
    assert saved.optim.lr == picked["lr"] == recipe.pick_lr(picked["planned_steps"])
    assert last["optimizer_states"][0]["param_groups"][0]["initial_lr"] == picked["lr"]
    assert saved.data.max_length == picked["max_length"] == 24 * picked["max_chunks"]
    assert saved.data.max_tokens_per_batch == picked["max_tokens_per_batch"]
    pred = textlstm.load(run)
    assert pred.net.chunking == (24, 0) and pred.net.pooling.regions == 4
    texts = [" ".join(["market"] * 70), "a short one", " ".join(["match goal"] * 20)]
    together = pred.predict(texts)
    for text, row in zip(texts, together, strict=True):
        alone = pred.predict([text])[0]
        for k, v in row["probabilities"].items():
            assert abs(alone["probabilities"][k] - v) < 1e-5



def test_a_long_document_is_its_windows_encoded_apart_and_pooled():
    """The window path by hand: each window through the encoder and pooling on its own, then
    the max over windows, then the head."""
    net, _ = _net()  # windows of 8 tokens starting every 6; max pooling, max chunk pooling
    ids, lengths = _batch([20])
    with torch.no_grad():
        x = net.embedding(ids)  # (1, 20, E)
        vecs = []
        for start in (0, 6, 12):  # 3 windows: tokens 0-7, 6-13, 12-19
            w = x[:, start:start + 8]
            states, final = net.encoder(w, torch.tensor([w.size(1)]))
            vecs.append(net.pooling(states, torch.tensor([w.size(1)]), final))
        by_hand = net.head(torch.stack(vecs, 1).amax(1))
        assert torch.allclose(net(ids, lengths), by_hand, atol=1e-6)


def test_regions_of_a_long_document_are_cut_from_its_whole_length_across_windows():
    """The window path with model.regions by hand: each window encoded on its own, then piece
    k of the document (positions floor(kn/K) to ceil((k+1)n/K) - 1 of the whole document, n =
    20) is the max over those positions' states in every window that holds them."""
    net, _ = _net("model.regions=3")  # windows of 8 tokens starting every 6
    ids, lengths = _batch([20])
    with torch.no_grad():
        x = net.embedding(ids)  # (1, 20, E)
        by_piece = [[], [], []]
        for start in (0, 6, 12):
            w = x[:, start:start + 8]
            states, _ = net.encoder(w, torch.tensor([w.size(1)]))  # (1, 8, D)
            for k, (a, b) in enumerate(((0, 7), (6, 14), (13, 20))):  # pieces of 20 tokens
                lo, hi = max(a, start), min(b, start + 8)
                if lo < hi:
                    by_piece[k].append(states[0, lo - start:hi - start])
        pooled = torch.cat([torch.cat(p).amax(0) for p in by_piece]).unsqueeze(0)  # (1, 3D)
        assert torch.allclose(net(ids, lengths), net.head(pooled), atol=1e-6)


def test_regions_need_max_pooling_and_say_so_in_one_line():
    for overrides in (["model.regions=2", "model.pooling=mean"],
                      ["model.regions=2", "model.chunk_pooling=attention"]):
        with pytest.raises(UserError, match=r"model\.regions' is 2, which .*model\.regions=1"):
            load_config(None, [*CHUNKS, *overrides])
    load_config(None, ["model.regions=2", "model.chunk_pooling=mean"])  # no windows: fine
    from tests.conftest import run_cli
    code, out, err = run_cli("train", "--config", "configs/auto.yaml", "model.regions=2",
                             "model.pooling=attention")
    assert code == 2 and out == "" and err.count("\n") == 1 and "model.pooling=max" in err


def test_auto_regions_pool_long_documents_in_pieces_and_short_texts_whole():
    from types import SimpleNamespace

    for overrides, regions, picked in ((["model.regions=auto", "model.long_text=truncate"], 1,
                                        {"regions": 1}),
                                       (["model.regions=auto", *CHUNKS], 4, {"regions": 4}),
                                       (["model.regions=2", *CHUNKS], 2, {})):  # by hand: kept
        cfg, dm = load_config(None, overrides), SimpleNamespace(picked={})
        recipe.resolve_regions(cfg, dm)
        assert cfg.model.regions == regions and dm.picked == picked
    with pytest.raises(UserError, match=r"model\.regions' is auto, which .*model\.pooling=max"):
        load_config(None, ["model.regions=auto", "model.pooling=mean"])
    with pytest.raises(UserError, match=r"model\.regions' is four; .*or auto"):
        load_config(None, ["model.regions=four"])


def test_auto_adversarial_steps_for_short_texts_only():
    """optim.adversarial_eps=auto: SHORT_EPS for texts read in one window, LONG_EPS for
    documents read in windows; a number given by hand is kept; words and bad values are
    refused in one sentence."""
    from types import SimpleNamespace

    for overrides, eps, picked in ((["optim.adversarial_eps=auto", "model.long_text=truncate"],
                                    1.0, {"adversarial_eps": 1.0}),
                                   (["optim.adversarial_eps=auto", *CHUNKS], 0.0,
                                    {"adversarial_eps": 0.0}),
                                   (["optim.adversarial_eps=0.5", *CHUNKS], 0.5, {})):  # kept
        cfg, dm = load_config(None, overrides), SimpleNamespace(picked={})
        recipe.resolve_adversarial(cfg, dm)
        assert cfg.optim.adversarial_eps == eps and dm.picked == picked
    assert (recipe.SHORT_EPS, recipe.LONG_EPS) == (1.0, 0.0)
    assert load_config(None, ["optim.adversarial_eps=2e0"]).optim.adversarial_eps == 2.0
    for bad in ("strong", "-1", "true"):
        with pytest.raises(UserError, match=r"optim\.adversarial_eps' is .*or auto"):
            load_config(None, [f"optim.adversarial_eps={bad}"])


def test_max_minutes_becomes_the_trainers_wall_clock_budget(tmp_path):
    from lightning.pytorch.callbacks import Timer

    from textlstm.training.trainer import build_trainer

    cfg = load_config(None, ["trainer.max_minutes=1.5", "wandb.mode=disabled",
                             "trainer.progress_bar=false"])
    trainer, _ = build_trainer(cfg, tmp_path)
    timers = [c for c in trainer.callbacks if isinstance(c, Timer)]
    assert len(timers) == 1 and timers[0]._duration == 90.0
    cfg.trainer.max_minutes = None
    trainer, _ = build_trainer(cfg, tmp_path / "b")
    assert not any(isinstance(c, Timer) for c in trainer.callbacks)


def test_a_run_with_regions_reloads_explains_and_exports(small_csvs, tmp_path):
    """A real tiny chunked run with model.regions=3: config.yaml keeps the key, the reloaded
    network has the wider head and reads each document the same alone or in a batch, `explain`
    gives one attribution per token, and the export's own check (ONNX against the run) passes."""
    import textlstm
    from tests.conftest import ROOT, run_cli
    from textlstm.commands.train import train
    from textlstm.serving.export import export_run

    cfg = load_config(ROOT / "configs" / "auto.yaml", [
        f"data.train_file={small_csvs / 'train.csv'}",
        f"data.validation_file={small_csvs / 'validation.csv'}",
        f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
        "data.label_field=stars", f"data.data_dir={tmp_path / 'data'}", f"run_root={tmp_path}",
        "model.embedding.vectors=null", "model.embedding.dim=16", "model.encoder.hidden_size=8",
        "data.min_freq=1", "trainer.max_epochs=1", "trainer.progress_bar=false",
        "wandb.mode=disabled", "data.chunk_length=24", "model.regions=3"])
    run = train(cfg)
    assert OmegaConf.load(run / "config.yaml").model.regions == 3
    pred = textlstm.load(run)
    assert pred.net.pooling.regions == 3 and pred.net.head[-1].in_features == 3 * 16
    texts = [" ".join(["market"] * 70), "a", " ".join(["match goal"] * 20)]
    together = pred.predict(texts)
    for text, row in zip(texts, together, strict=True):
        alone = pred.predict([text])[0]
        for k, v in row["probabilities"].items():
            assert abs(alone["probabilities"][k] - v) < 1e-5
    code, out, err = run_cli("explain", run, "Shares rose after strong results", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert len(r["tokens"]) == len(r["attributions"]) == 5
    check = export_run(run, tmp_path / "bundle", log=lambda _m: None)  # raises if it fails
    assert check["max_abs_logit_diff"] <= 1e-4 and check["argmax_agreement"] == 1.0
