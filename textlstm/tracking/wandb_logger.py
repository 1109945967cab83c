"""Weights & Biases through Lightning's WandbLogger: offline by default, never blocking.

Mode resolution: the user's `WANDB_MODE` environment variable wins, then `wandb.mode` from
config. We pass the mode to `wandb.init` ourselves instead of `WandbLogger(offline=True)`,
which would set WANDB_MODE=dryrun and override a user's `WANDB_MODE=disabled`.
"""

from __future__ import annotations

import os
from pathlib import Path

from textlstm.core.errors import UserError
from textlstm.core.io import write_text


def resolve_mode(cfg_mode: str) -> str:
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("offline", "dryrun"):
        return "offline"
    if env in ("online", "run"):
        return "online"
    if env == "disabled":
        return "disabled"
    return cfg_mode


def make_wandb_logger(cfg, run_dir: Path, run_id: str | None = None):
    """A WandbLogger writing under `run_dir/wandb`, or None when disabled."""
    mode = resolve_mode(cfg.wandb.mode)
    if mode == "disabled":
        return None
    from lightning.pytorch.loggers import WandbLogger
    from omegaconf import OmegaConf

    if mode == "online" and not (os.environ.get("WANDB_API_KEY") or _has_netrc_key()):
        raise UserError("wandb.mode is online but no W&B API key is configured; run `wandb login`, "
                        "set WANDB_API_KEY, or use wandb.mode=offline.")
    os.environ.setdefault("WANDB_SILENT", "true")
    enc = cfg.model.encoder
    # the config's tags plus data set, encoder and pooling, so runs filter and group cleanly
    tags = list(dict.fromkeys([*cfg.wandb.tags, cfg.data.source.split(":")[0], enc.cell,
                               f"pool-{cfg.model.pooling}"]))
    logger = WandbLogger(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        name=f"{cfg.name}/{run_dir.name}",
        group=cfg.wandb.group or cfg.name,
        tags=tags,
        save_dir=str(run_dir),
        id=run_id,
        mode=mode,
        config=OmegaConf.to_container(cfg, resolve=True),
        settings={"console": "off", "disable_git": True, "x_disable_stats": True},
    )
    # Lightning passes `anonymous` to wandb.init on every run, and wandb (0.31 here) warns that
    # the setting does nothing (wandb/wandb#10909): a line on every `make train` that the user
    # can do nothing about. Lightning has no argument to leave it out, so it is dropped here.
    logger._wandb_init.pop("anonymous", None)
    return logger


def start_wandb(cfg, run_dir: Path):
    """The run's WandbLogger (None when disabled). A resumed run continues the W&B run whose id
    the run folder keeps in `wandb_id`."""
    id_file = run_dir / "wandb_id"
    wb = make_wandb_logger(cfg, run_dir, id_file.read_text().strip() if id_file.is_file() else None)
    if wb is not None:
        write_text(id_file, wb.experiment.id)
        wb.experiment.define_metric("val/f1_macro", summary="max")
        wb.experiment.define_metric("val/loss", summary="min")
    return wb


def _has_netrc_key() -> bool:
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
