"""The Hugging Face Hub as a place for bundles: `hf://OWNER/NAME` paths and uploads.

`textlstm.load("hf://OWNER/NAME")` downloads the repository (huggingface_hub's cache, so a
second load is offline) and loads the folder; `textlstm push` uploads a bundle folder. Every
failure a user can fix (no token, no network, offline mode, a wrong name) is one sentence."""

from __future__ import annotations

import re
from pathlib import Path

from textlstm.core.errors import UserError

PREFIX = "hf://"
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.match(repo_id) or len(repo_id) > 96:
        raise UserError(f"{repo_id!r} is not a Hub repository name; write it as OWNER/NAME "
                        "(letters, digits, '-', '_', '.').")
    return repo_id


def resolve(path: str | Path) -> Path:
    """A local folder for `path`: itself, or the downloaded snapshot of an hf:// repository."""
    if isinstance(path, str) and path.startswith(PREFIX):
        return download(check_repo_id(path[len(PREFIX):].strip("/")))
    return Path(path)


def _hub_errors() -> tuple[type[BaseException], ...]:
    import httpx
    from huggingface_hub.errors import HFValidationError

    return OSError, httpx.HTTPError, HFValidationError


def download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo_id, repo_type="model"))
    except _hub_errors() as e:
        raise UserError(f"cannot download hf://{repo_id} ({_short(e)}); check the name, your "
                        "network and token (`hf auth login`), or unset HF_HUB_OFFLINE.") from None


def require_hub() -> str:
    """The token to upload with, or one sentence saying why there is none."""
    from huggingface_hub import constants, get_token

    if constants.is_offline_mode():
        raise UserError("HF_HUB_OFFLINE is set, so nothing can be uploaded; unset it and try again "
                        "with network access.")
    token = get_token()
    if not token:
        raise UserError("no Hugging Face token found; run `hf auth login` or set HF_TOKEN, then "
                        "push again.")
    return token


def upload(folder: Path, repo_id: str, private: bool, token: str) -> str:
    """Create the repository if needed and upload `folder` to it; returns its URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                          commit_message="textlstm push")
    except _hub_errors() as e:
        raise UserError(f"cannot upload to {repo_id} ({_short(e)}); check your network and that "
                        "your token may write to that repository.") from None
    return str(url)


def _short(e: BaseException) -> str:
    return ((str(e).splitlines() or [type(e).__name__])[0] or type(e).__name__)[:120]
