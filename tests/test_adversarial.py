"""`optim.adversarial_eps`: adversarial training on the word vectors (Miyato et al. 2017).
The step's single returned loss must carry the gradients of the clean loss and of the loss on
the perturbed vectors, and the perturbation must be the loss-raising direction of norm eps."""

import json

import pytest
import torch

from tests.conftest import ROOT, TINY
from tests.test_learning import synthetic_texts, write_csv


def _parts(eps: float, extra=()):
    from textlstm.core.config import load_config
    from textlstm.models.classifier import TextClassifier
    from textlstm.training.module import LitTextClassifier

    # no dropout: the reference below and the step must see the same network twice
    cfg = load_config(ROOT / "configs" / "bbc_news.yaml", [
        *TINY, "model.embedding.vectors=null", "model.embedding.dropout=0",
        "model.head.dropout=0", f"optim.adversarial_eps={eps}", *extra])
    torch.manual_seed(0)
    net = TextClassifier(40, 3, cfg.model)
    lit = LitTextClassifier(net, ["a", "b", "c"], dict(cfg.optim))
    lit.train()
    ids = torch.tensor([[5, 9, 11, 3, 7, 2], [4, 8, 0, 0, 0, 0], [12, 13, 14, 0, 0, 0]])
    batch = {"ids": ids, "lengths": torch.tensor([6, 2, 3]), "labels": torch.tensor([0, 1, 2])}
    return net, lit, batch


def _grads(net):
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def test_the_step_back_propagates_the_clean_and_the_perturbed_loss():
    net, lit, batch = _parts(0.5)
    total, _, logits, clean = lit._adversarial_step(batch, 0.5)
    total.backward()
    ours = _grads(net)

    # the plain way, three backward passes: direction, then both losses
    net.zero_grad()
    x = net.embedding(batch["ids"])
    ce = torch.nn.functional.cross_entropy
    loss = ce(net.forward_embedded(x, batch["lengths"]), batch["labels"])
    g, = torch.autograd.grad(loss, x, retain_graph=True)
    r = 0.5 * g / g.flatten(1).norm(dim=1)[:, None, None]
    adv = ce(net.forward_embedded(x + r, batch["lengths"]), batch["labels"])
    (loss + adv).backward()
    ref = _grads(net)

    assert set(ours) == set(ref) and "embedding.weight" in ours
    for name in ref:
        torch.testing.assert_close(ours[name], ref[name], rtol=1e-4, atol=1e-6, msg=name)
    assert clean.item() == pytest.approx(loss.item(), abs=1e-6)
    # the value returned is the perturbed loss: above the clean one (the direction raises it)
    assert total.item() == pytest.approx(adv.item(), abs=1e-5) and adv.item() > loss.item()
    torch.testing.assert_close(r.flatten(1).norm(dim=1), torch.full((3,), 0.5))
    assert float(r[1, 2:].abs().sum()) == 0.0  # padding is never moved


def test_frozen_vectors_are_perturbed_but_not_trained():
    net, lit, batch = _parts(1.0, ["model.embedding.freeze=true"])
    net.embedding.weight.requires_grad_(False)  # what load_vectors(freeze=True) does
    total, *_ = lit._adversarial_step(batch, 1.0)
    total.backward()
    assert net.embedding.weight.grad is None
    assert net.head[-1].weight.grad.abs().sum() > 0


def test_a_run_with_adversarial_training_uses_it_and_learns(tmp_path, monkeypatch):
    from textlstm.commands.train import train
    from textlstm.core.config import load_config
    from textlstm.training.module import LitTextClassifier

    calls = []
    real = LitTextClassifier._adversarial_step
    monkeypatch.setattr(LitTextClassifier, "_adversarial_step",
                        lambda self, batch, eps: calls.append(eps) or real(self, batch, eps))
    files = {s: write_csv(tmp_path / f"{s}.csv", synthetic_texts(n, seed)) for s, n, seed in
             (("train", 300, 0), ("validation", 60, 1), ("test", 60, 2))}
    run = train(load_config(ROOT / "configs" / "bbc_news.yaml", [
        *(f"data.{s}_file={p}" for s, p in files.items()), f"data.data_dir={tmp_path / 'data'}",
        f"run_root={tmp_path / 'runs'}", "model.embedding.vectors=null", "wandb.mode=disabled",
        *TINY, "trainer.max_epochs=4", "optim.lr=0.01", "trainer.patience=10",
        "optim.adversarial_eps=1.0"]))
    assert calls and set(calls) == {1.0}  # every training step, none outside training
    assert len(calls) == 4 * 19  # 300 texts in batches of 16, 4 epochs
    m = json.loads((run / "metrics.json").read_text())
    assert m["test"]["accuracy"] >= 0.9, m["test"]
