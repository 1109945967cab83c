"""Temperature scaling: fitted on validation logits, stored with the run, used by every
reader of the run, never changing a predicted label; ECE and reliability bins as torchmetrics."""

import json

import pytest
import torch

from textlstm.training.calibration import ece, ece_floor, fit_temperature, nll, reliability


def _calibrated_logits(n: int, classes: int = 4,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits whose softmax is exactly calibrated: labels are drawn from those probabilities."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, classes, generator=g) * 2.0
    y = torch.multinomial(z.softmax(-1), 1, generator=g).squeeze(1)
    return z, y


def test_logits_scaled_by_three_give_a_temperature_of_three():
    z, y = _calibrated_logits(40_000)
    assert fit_temperature(3 * z, y) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(z / 2, y) == pytest.approx(0.5, rel=0.05)


def test_the_fitted_temperature_lowers_nll_and_ece_on_data_it_was_not_fitted_on():
    z, y = _calibrated_logits(40_000, seed=1)
    fit_z, fit_y, held_z, held_y = 3 * z[:20_000], y[:20_000], 3 * z[20_000:], y[20_000:]
    T = fit_temperature(fit_z, fit_y)
    assert nll(held_z, held_y, T) < nll(held_z, held_y) - 0.05
    assert ece(held_z, held_y, T) < 0.02 < ece(held_z, held_y)


def test_reliability_bins_add_up_to_torchmetrics_ece():
    z, y = _calibrated_logits(5_000, seed=2)
    for T in (1.0, 2.5):
        r = reliability(3 * z, y, T)
        assert sum(r["count"]) == 5_000 and r["bins"] == 15
        manual = sum(n / 5_000 * abs(a - c) for n, a,
                     c in zip(r["count"], r["accuracy"], r["confidence"],
                                                               strict=True) if n)
        assert manual == pytest.approx(ece(3 * z, y, T), abs=1e-5)


def test_the_ece_floor_is_what_a_calibrated_model_scores_on_that_many_texts():
    """Labels drawn from the probabilities themselves: exactly calibrated, yet the 15-bin ECE
    of a small sample is far from 0. The floor must match that ECE (averaged over draws), at
    the given temperature, and shrink as the sample grows."""
    for n in (200, 3_000):
        z, _ = _calibrated_logits(n, seed=3)
        z = 3 * z  # confident: its floor at T = 1 is about 2/3 of that at T = 3
        g = torch.Generator().manual_seed(4)
        for T in (1.0, 3.0):
            p = (z / T).softmax(-1)
            drawn = [ece(z, torch.multinomial(p, 1, generator=g).squeeze(1), T)
                     for _ in range(300)]
            assert ece_floor(z, T) == pytest.approx(sum(drawn) / len(drawn), rel=0.08)
    small, large = _calibrated_logits(200, seed=5)[0], _calibrated_logits(20_000, seed=5)[0]
    assert ece_floor(small) > 3 * ece_floor(large) > 0
    assert ece_floor(small) == ece_floor(small)  # seeded: the same figure every time


def test_a_run_stores_its_temperature_and_every_reader_uses_it(tiny_run):
    import textlstm

    metrics = json.loads((tiny_run / "metrics.json").read_text())
    T = metrics["calibration"]["temperature"]
    assert metrics["calibration"]["method"] == "temperature" and 0.05 <= T <= 20 and T != 1.0
    assert 0 <= metrics["test"]["ece"] <= 1 and 0 <= metrics["test"]["ece_uncalibrated"] <= 1
    # measured with T and without it
    assert metrics["test"]["ece"] != metrics["test"]["ece_uncalibrated"]
    assert 0 < metrics["test"]["ece_floor"] < 1
    nll_ = metrics["calibration"]["validation_nll"]
    assert nll_["calibrated"] <= nll_["uncalibrated"] + 1e-9  # T minimises validation NLL
    pred = textlstm.load(tiny_run)
    assert pred.temperature == pytest.approx(T)
    texts = ["shares rose after the results", "the striker scored twice", "a new phone", "rain"]
    calibrated = pred.predict_proba(texts)
    pred.temperature = 1.0
    raw = pred.predict_proba(texts)
    assert torch.equal(calibrated.argmax(-1), raw.argmax(-1))  # labels never change
    expected = (raw.log() / T).softmax(-1)  # softmax(logits / T) from softmax(logits)
    assert torch.allclose(calibrated, expected, atol=1e-5)
    page = (tiny_run / "report.html").read_text()
    assert "id=\"reliability\"" in page and "A perfectly calibrated model would" in page


def test_evaluate_reports_ece_with_the_runs_temperature(tiny_run, small_csvs, tmp_path):
    from conftest import run_cli

    code, out, err = run_cli("evaluate", tiny_run, "--data", small_csvs / "test.csv",
                             "data.text_field=review",
                             "data.label_field=stars", f"data.data_dir={tmp_path}")
    assert code == 0, err
    report = json.loads(out)
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert report["ece"] == pytest.approx(metrics["test"]["ece"], abs=1e-6)
    assert report["ece_uncalibrated"] == pytest.approx(
        metrics["test"]["ece_uncalibrated"], abs=1e-6
    )
    assert report["ece_floor"] == pytest.approx(metrics["test"]["ece_floor"], abs=1e-3)


def test_calibration_none_keeps_temperature_one(tmp_path, small_csvs):
    from conftest import ROOT, TINY

    from textlstm.commands.train import train
    from textlstm.core.config import load_config

    cfg = load_config(ROOT / "configs" / "bbc_news.yaml", [
        f"data.train_file={small_csvs / 'train.csv'}",
        f"data.validation_file={small_csvs / 'validation.csv'}",
        f"data.test_file={small_csvs / 'test.csv'}", "data.text_field=review",
        "data.label_field=stars",
        f"data.data_dir={tmp_path / 'data'}", f"run_root={tmp_path}",
        "model.embedding.vectors=null",
        "wandb.mode=disabled", "model.calibration=none", *TINY, "trainer.max_epochs=1"])
    run = train(cfg)
    metrics = json.loads((run / "metrics.json").read_text())
    assert (
        metrics["calibration"]["temperature"] == 1.0 and metrics["calibration"]["method"] == "none"
    )
    assert metrics["test"]["ece"] == metrics["test"]["ece_uncalibrated"]
