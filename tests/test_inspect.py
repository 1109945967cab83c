"""The gate inspector on a real trained run."""

import torch

from tests.conftest import run_cli
from textlstm.serving.loader import load
from textlstm.tracking.gates import trace


def test_inspect_writes_png_and_html(tiny_run, tmp_path):
    png, page = tmp_path / "g.png", tmp_path / "g.html"
    code, out, err = run_cli("inspect", tiny_run, "shares in the bank fell", "--out", png,
                             "--html", page)
    assert code == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000
    assert "data:image/png;base64," in page.read_text()


def test_trace_matches_model_and_gates_are_sigmoids(tiny_run):
    pred = load(tiny_run)
    tr = trace(pred, "the film won an award")
    assert tr["max_abs_diff"] < 1e-5
    assert set(tr["gates"]) == {"forward", "backward"}
    g = tr["gates"]["forward"]
    T = len(tr["tokens"])
    assert g["i"].shape == (pred.cfg.model.encoder.hidden_size, T)
    assert torch.all((g["f"] > 0) & (g["f"] < 1))
    assert tr["label"] == pred.predict(["the film won an award"])[0]["label"]


def test_training_logs_gate_figures_for_validation_texts(tiny_run):
    pngs = sorted((tiny_run / "gates").glob("gates_*.png"))
    assert len(pngs) == 3 and all(p.stat().st_size > 10_000 for p in pngs)
    logged = [
        p
        for p in (tiny_run / "wandb").glob("offline-run-*/files/media/images/**/*.png")
        if "gates" in str(p)
    ]
    assert len(logged) == 3
