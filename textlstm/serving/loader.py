"""`textlstm.load(PATH)`: a run folder or a bundle folder -> a predictor ready to label texts.

A bundle (a folder with textlstm.json, written by `textlstm export`) loads as a
`serving.bundle.BundlePredictor` on onnxruntime, without importing torch; a run folder loads
as a `models.predictor.Predictor`. Both are `models.contract.Predictions` (`predict`,
`predict_stream`, `labels`, `text_field`, `label_field`) and say their `engine` ("onnx" |
"torch").

Nothing here unpickles code: the checkpoint is read with `torch.load(weights_only=True)`,
vocabulary and labels are JSON, the config is YAML, and the network is rebuilt from them
(after checking the checkpoint's model-architecture version)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textlstm.core import runfolder
from textlstm.serving.bundle import BundlePredictor, is_bundle
from textlstm.serving.hub import resolve
from textlstm.tokens.vocab import Vocab

if TYPE_CHECKING:
    from textlstm.models.predictor import Predictor


def load(path: str | Path, overrides: list[str] | None = None, which: str = "best",
         device: str | None = None, threads: int = 0) -> Predictor | BundlePredictor:
    """Load a bundle folder, a run folder written by `textlstm train` (its best checkpoint by
    default; `which` and `device` apply to runs only), or hf://OWNER/NAME (downloaded first).
    `threads`: a bundle's onnxruntime threads (0: the usable cores); a run's torch threads are
    the process's own (torch.set_num_threads)."""
    path = resolve(path)
    if is_bundle(path):
        return BundlePredictor(path, overrides, threads=threads)
    return load_run(path, overrides, which, device)


def load_run(run_dir: str | Path, overrides: list[str] | None = None, which: str = "best",
             device: str | None = None) -> Predictor:
    # torch and the network code are imported here, so that loading a bundle never imports them
    from textlstm.core.config import chunking
    from textlstm.models.classifier import network_from_checkpoint
    from textlstm.models.predictor import Predictor

    run_dir = runfolder.require_run_dir(run_dir)
    cfg = runfolder.load_run_config(run_dir, overrides)
    vocab = Vocab.load(run_dir / runfolder.VOCAB)
    labels = runfolder.load_labels(run_dir)
    checkpoint = runfolder.read_checkpoint(runfolder.find_checkpoint(run_dir, which))
    net = network_from_checkpoint(checkpoint, len(vocab), len(labels), cfg.model, str(run_dir),
                                  chunking(cfg))
    if device is None:
        device = _device_for(cfg.trainer.accelerator)
    return Predictor(net, vocab, labels, cfg, run_dir, device, runfolder.load_temperature(run_dir),
                     runfolder.load_thresholds(run_dir, labels))


def _device_for(accelerator: str) -> str:
    """Where a run predicts: its `trainer.accelerator` names where it trained, so a run trained
    on a GPU and copied to a machine without one predicts on the CPU rather than failing."""
    import torch

    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return "cuda"
    return "cpu"
