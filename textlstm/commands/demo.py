"""Sine-wave regression demo, as in the LSTM articles textlstm started from: a 2-layer LSTM
predicts the next value of y = sin(x).

    from textlstm.commands.demo import run_sine_demo
    run_sine_demo("sine.png")   # -> {"test_mse": ..., "baseline_mse": ..., "plot": "sine.png", ...}

The setup is the seed's, reproduced as is: x = linspace(0, 1000, 1000) steps ~1.0 rad, so the
series is an aliased sine (about 6 samples a period), not a smooth curve. The model still learns
it, because the next value is a fixed function of the last two:
sin(x+h) = 2cos(h)sin(x) - sin(x-h).
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from textlstm.core.errors import UserError
from textlstm.core.io import save_figure
from textlstm.core.logs import quiet_libraries


def make_windows(n_points: int = 1000, window: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """X (N, window, 1), y (N, 1) float32 with N = n_points - window.

    Each window predicts the next value.
    """
    x = np.linspace(0, 1000, n_points)
    series = np.sin(x)
    n = n_points - window
    # row i holds series[i : i + window]; its target is series[i + window]
    idx = np.arange(window)[None, :] + np.arange(n)[:, None]  # (N, T)
    X = series[idx][..., None].astype(np.float32)  # (N, T, 1)
    y = series[window:][:, None].astype(np.float32)  # (N, 1)
    return X, y


def split_indices(n: int, test_size: float = 0.2, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, test_idx): the rows of sklearn's train_test_split(test_size, random_state=seed).

    sklearn is not a dependency, so its ShuffleSplit rule is reproduced: one RandomState
    permutation, the first ceil(test_size * n) rows are the test set, the rest the training set.
    """
    n_test = math.ceil(test_size * n)
    perm = np.random.RandomState(seed).permutation(n)
    return perm[n_test:], perm[:n_test]


class SineLSTM(nn.Module):
    """nn.LSTM(1 -> hidden, num_layers) then Linear(hidden, 1) on the last time step's output."""

    def __init__(self, hidden_size: int = 50, num_layers: int = 2):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.lstm = nn.LSTM(input_size=1, hidden_size=hidden_size, num_layers=num_layers,
                            batch_first=True)
        self.fc = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, T, 1)
        # zero initial states, as in the seed (nn.LSTM would default to zeros too; explicit for
        # clarity)
        h0 = x.new_zeros(self.num_layers, x.size(0), self.hidden_size)  # (layers, B, H)
        c0 = torch.zeros_like(h0)
        out, _ = self.lstm(x, (h0, c0))  # (B, T, H)
        return self.fc(out[:, -1])  # (B, 1): only the last step predicts the next value


class LitSine(L.LightningModule):
    """MSE regression around an injected SineLSTM; Adam."""

    def __init__(self, net: nn.Module, lr: float = 1e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self.lr = lr
        self.loss = nn.MSELoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def _eval_step(self, batch, split: str):
        x, y = batch
        # logged per epoch, weighted by batch size, so the value is the MSE over the whole split
        self.log(f"{split}/mse", self.loss(self(x), y), on_step=False, on_epoch=True,
                 batch_size=len(x))

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def plot_predictions(path: str | Path, t: np.ndarray, actual: np.ndarray, predicted: np.ndarray,
                     mse: float, baseline_mse: float, zoom: int = 60) -> Path:
    """Actual vs predicted test values: in series order, and folded onto one period.

    The series steps ~1 rad, so in x order the sine is a zigzag; folding x onto its phase
    (x mod 2*pi) puts every actual value on one sine curve, and the errors show as offsets from it.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display needed; safe in tests and on servers
    import matplotlib.pyplot as plt

    order = np.argsort(t)
    t, actual, predicted = t[order], actual[order], predicted[order]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(14, 4.8), dpi=110, width_ratios=[2.2, 1])
    actual_style = dict(color="tab:blue", marker="o", ms=3.5, label="actual sin(x)")
    pred_style = dict(ls="none", marker="o", ms=5, mfc="none", mew=1.1, color="tab:orange",
                      label="predicted")

    # left: test points in the order they occur in the series; the first `zoom` only, since all
    # of them over x in [50, 1000] are too dense to pair by eye; grey ticks join each pair
    k = min(zoom, len(t))
    ax.vlines(t[:k], actual[:k], predicted[:k], color="0.7", lw=0.8, zorder=0)
    ax.plot(t[:k], actual[:k], lw=0.8, alpha=0.7, **actual_style)
    ax.plot(t[:k], predicted[:k], **pred_style)
    ax.set(xlabel="x (position in the series)", ylabel="y",
           title=f"first {k} of {len(t)} test values in series order")

    # right: the same points against their phase, where the sine shape is visible
    phase = np.mod(t, 2 * np.pi)
    grid = np.linspace(0, 2 * np.pi, 200)
    ax2.plot(grid, np.sin(grid), color="0.6", lw=1, zorder=0, label="sin(phase)")
    ax2.plot(phase, actual, ls="none", **actual_style)
    ax2.plot(phase, predicted, **pred_style)
    ax2.set_title("all test values folded onto one period")
    ax2.set(xlabel="phase: x mod 2π")
    ax2.set_xticks(np.arange(5) * np.pi / 2, ["0", "π/2", "π", "3π/2", "2π"])

    for a in (ax, ax2):
        a.set_ylim(-1.45, 1.45)
        a.grid(alpha=0.3)
    ax2.legend(loc="upper right", fontsize="small", framealpha=0.9)
    fig.suptitle(f"LSTM next-value prediction on {len(t)} test windows: MSE {mse:.4f} "
                 f"(always predicting the training mean: {baseline_mse:.3f})")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
    plt.close(fig)
    return path


def run_sine_demo(out: str | Path | None = None, epochs: int = 5, seed: int = 42,
                  batch_size: int = 64,
                  lr: float = 1e-3, hidden_size: int = 50, num_layers: int = 2, window: int = 50,
                  quiet: bool = True) -> dict:
    """Train the seed's sine LSTM with a Lightning Trainer on CPU; optionally plot to `out`."""
    t0 = time.perf_counter()
    if quiet:
        quiet_libraries()
    L.seed_everything(seed, workers=True, verbose=not quiet)

    X, y = make_windows(window=window)
    tr, te = split_indices(len(X), test_size=0.2, seed=seed)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    train_dl = DataLoader(TensorDataset(X[tr], y[tr]), batch_size=batch_size, shuffle=True)
    test_dl = DataLoader(TensorDataset(X[te], y[te]), batch_size=batch_size)

    model = LitSine(SineLSTM(hidden_size, num_layers), lr=lr)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False,
                        enable_checkpointing=False, enable_progress_bar=not quiet,
                        enable_model_summary=not quiet, deterministic=True)
    # One intra-op thread: this LSTM is tiny, so threads only add sync cost, and on a busy
    # 2-core machine 2 threads made an epoch ~200x slower (0.3 s vs 56 s for 12 batches).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            # the seed has no validation split; LitSine.validation_step is for callers with one
            if quiet:
                warnings.filterwarnings("ignore", message=".*no `val_dataloader`")
            if epochs > 0:
                trainer.fit(model, train_dataloaders=train_dl)
            test_mse = float(trainer.test(model, dataloaders=test_dl,
                                          verbose=not quiet)[0]["test/mse"])
    finally:
        torch.set_num_threads(threads)

    # the bar to beat: always predicting the training mean scores about var(sin) = 0.5
    baseline_mse = float(((y[te] - y[tr].mean()) ** 2).mean())
    plot = None
    if out is not None:
        model.train(False)
        with torch.no_grad():
            pred = model(X[te]).squeeze(1).numpy()
        # a window starting at row i predicts the point at index i + window of the series
        x_axis = np.linspace(0, 1000, len(X) + window)[te + window]
        plot = str(plot_predictions(out, x_axis, y[te].squeeze(1).numpy(), pred, test_mse,
                                    baseline_mse))
    return {"test_mse": test_mse, "baseline_mse": baseline_mse, "epochs": epochs,
            "train_size": len(tr),
            "test_size": len(te), "seconds": time.perf_counter() - t0, "plot": plot}


if __name__ == "__main__":
    print(run_sine_demo("sine_demo.png", quiet=False))


def run_demo(name: str, out: str | Path | None = None, epochs: int = 5, seed: int = 42) -> dict:
    """`textlstm demo NAME`: the demos by name (today: sine)."""
    if name != "sine":
        raise UserError(f"unknown demo '{name}'; the demos are: sine.")
    return run_sine_demo(out=out, epochs=epochs, seed=seed, quiet=True)
