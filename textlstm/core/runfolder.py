"""The run folder `textlstm train` writes, and reading it back safely.

    runs/<config>/<timestamp>/
        config.yaml  vocab.json  labels.json  metrics.json  wandb_id  report.html  errors.json
        checkpoints/{best,last,step}.ckpt   logs/metrics.csv   gates/*.png   wandb/

`textlstm pretrain` writes runs/<config>-pretrain/<timestamp>/ with config.yaml, vocab.json,
metrics.json and lm.ckpt (the language model's weights, read by `read_lm`).

Every reader of a run (predict, evaluate, inspect, report, resume, export) checks it here, so
a wrong folder gets the same one sentence wherever it is passed. Nothing here unpickles code:
checkpoints are read with `torch.load(weights_only=True)`, the rest is JSON and YAML.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from textlstm.core.config import load_config
from textlstm.core.errors import UserError

CONFIG, VOCAB, LABELS, METRICS = "config.yaml", "vocab.json", "labels.json", "metrics.json"
LM = "lm.ckpt"  # a pretrain run's language model: {"state_dict": ..., "textlstm": ...}
# Under DDP the ranks Lightning starts (or torchrun/SLURM starts) join the folder rank 0 made.
RUN_DIR_ENV = "TEXTLSTM_RUN_DIR"


def new_run_dir(root: str | Path, name: str) -> Path:
    """runs/<name>/<timestamp>[-k]: created atomically, so two runs never share a folder."""
    base = Path(root) / name
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the run folder {base} ({e.strerror}); set run_root to a "
                        "folder you can write to.") from None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        d = base / (stamp if k == 0 else f"{stamp}-{k}")
        try:
            d.mkdir()
            return d
        except FileExistsError:
            continue
    raise UserError(f"could not create a new run directory under {base}; clean it up.")


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newer of the epoch-end `last.ckpt` and the step-interval `step.ckpt`."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    found = [p for p in (ckpt_dir / "last.ckpt", ckpt_dir / "step.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def resume_target(run_dir: str | Path) -> tuple[Path, Path]:
    """The run directory to continue and its latest checkpoint, or a clear error."""
    run_dir = require_run_dir(run_dir, "resume")
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise UserError(f"cannot resume {run_dir}: it has no checkpoint yet (it stopped before its "
                        "first epoch ended); start it again with `textlstm train`.")
    read_checkpoint(ckpt)  # refuses a corrupt checkpoint, or one carrying code, in one sentence
    if (run_dir / METRICS).is_file():
        raise UserError(f"cannot resume {run_dir}: it already finished ({METRICS} exists); "
                        "raise trainer.max_epochs in a new run instead.")
    return run_dir, ckpt


def require_run_dir(path: str | Path, doing: str | None = None) -> Path:
    """`path` as a run folder, or one sentence saying why it is not one. `doing`: the verb for
    the message ("resume" -> "cannot resume X: it is not a run directory ...")."""
    path = Path(path)
    if not path.is_dir():
        problem = "does not exist"
    elif not (path / CONFIG).is_file():
        problem = f"is not a run directory (no {CONFIG})"
    else:
        return path
    head = f"cannot {doing} {path}: it" if doing else f"run directory {path}"
    raise UserError(f"{head} {problem}; pass a folder printed by `textlstm train`.")


def load_run_config(run_dir: Path, overrides: list[str] | None = None) -> DictConfig:
    return load_config(require_run_dir(run_dir) / CONFIG, overrides)


def read_config_text(run_dir: Path) -> str:
    """config.yaml as written, for a report to show ("" when the folder has none)."""
    path = Path(run_dir) / CONFIG
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def load_labels(run_dir: Path) -> list[str]:
    return read_labels(Path(run_dir) / LABELS,
                       missing="the run directory is incomplete, retrain or copy it back",
                       corrupt="restore it from the original run")


def read_labels(path: Path, missing: str, corrupt: str) -> list[str]:
    """A labels.json (a run's or a bundle's): the label strings in the network's output order.
    `missing`, `corrupt`: the fix each message gives."""
    try:
        labels = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"labels file {path} is missing; {missing}.") from None
    except ValueError:
        raise UserError(f"labels file {path} is corrupt; {corrupt}.") from None
    if not isinstance(labels,
                      list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels):
        raise UserError(f"labels file {path} must be a JSON list of at least two label strings.")
    return labels


def loadable_files(run_dir: Path) -> list[Path]:
    """What `textlstm.load` reads besides the checkpoint (a W&B model artifact carries them;
    metrics.json holds the calibration temperature)."""
    return [Path(run_dir) / name for name in (VOCAB, LABELS, CONFIG, METRICS)]


def read_metrics(run_dir: Path, missing_ok: bool = False) -> dict[str, Any]:
    """metrics.json, which a run writes when it finishes: scores, calibration, thresholds, the
    training summary. `missing_ok`: an unfinished run reads as {} instead of an error."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        if missing_ok:
            return {}
        raise UserError(f"{run_dir} has no {METRICS} (it did not finish); pass a finished run "
                        "directory printed by `textlstm train`.")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        metrics = None
    if not isinstance(metrics, dict):
        raise UserError(f"{path} is corrupt; it is rewritten only by `textlstm train`.")
    return metrics


def load_temperature(run_dir: Path) -> float:
    """The calibration temperature fitted when the run finished (1.0: none, or a run made
    before calibration existed)."""
    path = Path(run_dir) / METRICS
    try:
        calib = read_metrics(run_dir, missing_ok=True).get("calibration") or {}
        temperature = float(calib.get("temperature", 1.0))
    except (ValueError, TypeError, AttributeError):
        raise UserError(f"{path} is corrupt; it is rewritten only by `textlstm train`.") from None
    if not temperature > 0:
        raise UserError(f"{path} has calibration.temperature={temperature}; it must be positive.")
    return temperature


def load_thresholds(run_dir: Path, labels: list[str]) -> list[float] | None:
    """A multi-label run's per-label decision thresholds, in `labels` order (tuned on
    validation when the run finished); None when metrics.json has none (a multi-class run, or
    an unfinished one: 0.5 each)."""
    path = Path(run_dir) / METRICS
    saved = read_metrics(run_dir, missing_ok=True).get("thresholds")
    if saved is None:
        return None
    ok = isinstance(saved, dict) and all(
        isinstance(saved.get(lab), int | float) and 0 < saved[lab] <= 1 for lab in labels)
    if not ok:
        raise UserError(f"{path} has thresholds that are not one number in (0, 1] per label of "
                        f"{LABELS}; restore it from the original run.")
    return [float(saved[lab]) for lab in labels]


def find_checkpoint(run_dir: Path, which: str = "best") -> Path:
    ckpt = Path(run_dir) / "checkpoints" / f"{which}.ckpt"
    if not ckpt.is_file():
        ckpt = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise UserError(f"run {run_dir} has no checkpoints/best.ckpt or last.ckpt; train it first "
                        "or pass another run.")
    return ckpt


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint as plain data, refusing anything that would run code."""
    import torch  # here, not at the top: a bundle's reader must not import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported" in str(e) or "global" in str(e).lower():
            raise UserError(f"checkpoint {path} contains code or objects that are not plain "
                            "weights, so it was refused; only load checkpoints written by "
                            "textlstm.") from None
        raise UserError(f"checkpoint {path} is corrupt ({_first_line(e)}); use another "
                        "checkpoint.") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise UserError(f"checkpoint {path} is truncated or corrupt ({_first_line(e)}); "
                        "use last.ckpt/best.ckpt from an intact run.") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise UserError(f"checkpoint {path} has no state_dict; it was not written by textlstm.")
    return ckpt


def read_lm(run_dir: str | Path, key: str = "model.init_from") -> tuple[Path, dict]:
    """A `textlstm pretrain` run folder and its language model's weights; `key`: the config key
    that named the folder, for the message."""
    run_dir = Path(run_dir)
    if not (run_dir / LM).is_file():
        problem = "does not exist" if not run_dir.exists() else f"has no {LM}"
        raise UserError(f"{key} {run_dir} {problem}; pass a folder printed by `textlstm "
                        "pretrain`.")
    return run_dir, read_checkpoint(run_dir / LM)["state_dict"]


def read_state_dict(path: Path) -> dict:
    """The network's weights (`net.` prefix removed) from a Lightning checkpoint."""
    state = read_checkpoint(path)["state_dict"]
    return {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:120]
