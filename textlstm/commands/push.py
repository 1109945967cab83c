"""`textlstm push RUN_OR_BUNDLE OWNER/NAME [--private]`: a bundle onto the Hugging Face Hub.

A bundle folder (it has textlstm.json) is uploaded as it is; a run folder is exported first
(fp32, into a temporary folder). The bundle is also logged as a W&B artifact of type "model"
(offline unless WANDB_MODE says otherwise; WANDB_MODE=disabled skips it)."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path

from textlstm.core.runfolder import require_run_dir
from textlstm.serving import hub

BUNDLE_MARK = "textlstm.json"
log = logging.getLogger(__name__)


def push(path: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload `path` to the Hub repository `repo_id`; returns the repository's URL."""
    hub.check_repo_id(repo_id)
    token = hub.require_hub()  # before any export work: without a token nothing can happen
    path = Path(path)
    if (path / BUNDLE_MARK).is_file():
        return _push_bundle(path, repo_id, private, token)
    require_run_dir(path, "push")
    from textlstm.serving.export import export_run

    with tempfile.TemporaryDirectory(prefix="textlstm-push-") as tmp:
        bundle = Path(tmp) / "bundle"
        export_run(path, bundle, quantize="none", log=lambda m: print(m, file=sys.stderr))
        return _push_bundle(bundle, repo_id, private, token)


def _push_bundle(bundle: Path, repo_id: str, private: bool, token: str) -> str:
    url = hub.upload(bundle, repo_id, private, token)
    log_artifact(bundle, repo_id)
    return url


def log_artifact(bundle: Path, repo_id: str) -> None:
    """The bundle as a W&B model artifact. The upload has already succeeded by now, so a W&B
    problem is a warning, not a failed push."""
    from textlstm.tracking.wandb_logger import resolve_mode

    mode = resolve_mode("offline")
    if mode == "disabled":
        return
    try:
        import wandb

        # dir passed explicitly: wandb keeps the settings of its first run in this process
        run = wandb.init(project="textlstm", job_type="push", mode=mode,
                         dir=os.environ.get("WANDB_DIR") or ".",
                         settings=wandb.Settings(console="off", x_disable_stats=True))
        artifact = wandb.Artifact(repo_id.replace("/", "--"), type="model",
                                  metadata={"hub": f"hf://{repo_id}"})
        artifact.add_dir(str(bundle))
        run.log_artifact(artifact)
        run.finish()
    except Exception as e:  # noqa: BLE001 - see the docstring
        log.warning("the bundle was pushed but not logged to W&B (%s)", str(e).splitlines()[:1])
