"""`textlstm.load(PATH)`: a run folder -> a Predictor ready to label texts.

Nothing here unpickles code: the checkpoint is read with `torch.load(weights_only=True)`,
vocabulary and labels are JSON, the config is YAML, and the network is rebuilt from them
(after checking the checkpoint's model-architecture version)."""

from __future__ import annotations

from pathlib import Path

from textlstm.core import runfolder
from textlstm.models.classifier import network_from_checkpoint
from textlstm.models.predictor import Predictor
from textlstm.serving.hub import resolve
from textlstm.tokens.vocab import Vocab


def load(run_dir: str | Path, overrides: list[str] | None = None, which: str = "best",
         device: str | None = None) -> Predictor:
    """Load a run folder written by `textlstm train` (its best checkpoint by default), or
    hf://OWNER/NAME (downloaded first)."""
    run_dir = runfolder.require_run_dir(resolve(run_dir))
    cfg = runfolder.load_run_config(run_dir, overrides)
    vocab = Vocab.load(run_dir / runfolder.VOCAB)
    labels = runfolder.load_labels(run_dir)
    checkpoint = runfolder.read_checkpoint(runfolder.find_checkpoint(run_dir, which))
    net = network_from_checkpoint(checkpoint, len(vocab), len(labels), cfg.model, str(run_dir))
    if device is None:
        device = _device_for(cfg.trainer.accelerator)
    return Predictor(net, vocab, labels, cfg, run_dir, device, runfolder.load_temperature(run_dir),
                     runfolder.load_thresholds(run_dir, labels))


def _device_for(accelerator: str) -> str:
    import torch

    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"
