"""`data.source=hf:<name>[:<config>]`: opening a Hugging Face hub dataset, prepared or streamed.

Both paths open the hub here so that an unreachable hub, a wrong name or `HF_HUB_OFFLINE=1`
end in the same one sentence. (`hf:<local folder>` goes through the same code, which is how
the tests exercise it without a network.)"""

from __future__ import annotations

import os

from textlstm.core.errors import UserError


def parse_source(source: str) -> tuple[str, str | None]:
    """'hf:repo[:config]' -> (repo, config or None)."""
    repo, _, subset = source[3:].partition(":")
    return repo, subset or None


def open_hub(source: str, cache_dir: str | None = None, streaming: bool = False):
    """The dataset's splits by hub name (a DatasetDict, or an IterableDatasetDict when
    streaming: then nothing is read yet)."""
    from datasets import load_dataset

    repo, subset = parse_source(source)
    try:
        if streaming:
            return load_dataset(repo, subset, streaming=True)
        return load_dataset(repo, subset, cache_dir=cache_dir)
    except Exception as e:  # the loaders raise many types; all mean "cannot open this dataset"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        offline = (os.environ.get("HF_DATASETS_OFFLINE") == "1"
                   or os.environ.get("HF_HUB_OFFLINE") == "1")
        hint = ("the hub is switched off (HF_*_OFFLINE=1)" if offline
                else "check the name and your network, or download it and use data.source=files")
        verb = "streamed" if streaming else "loaded"
        raise UserError(f"hub dataset '{repo}' could not be {verb} ({first}); {hint}.") from None


def check_train_split(repo_source: str, available, train_split: str) -> None:
    if train_split not in available:
        raise UserError(f"hub dataset '{parse_source(repo_source)[0]}' has no split "
                        f"'{train_split}' (splits: {', '.join(available)}); set "
                        "data.hf_splits.train.")
