"""textlstm: text classification with an embedding + BiLSTM encoder, trained with Lightning.

    import textlstm
    model = textlstm.load("runs/bbc_news/20261123-101500")
    model.predict(["Shares rose after the results", "The striker scored twice"])
"""

__version__ = "0.1.0"


def load(run_dir, overrides=None, which="best", device=None):
    """Load a trained run folder (textlstm.serving.loader.load); imported lazily to keep
    `import textlstm` fast."""
    from textlstm.serving.loader import load as _load

    return _load(run_dir, overrides, which, device)


__all__ = ["load", "__version__"]
