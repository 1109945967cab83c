"""textlstm: text classification with an embedding + BiLSTM encoder, trained with Lightning.

    import textlstm
    model = textlstm.load("runs/bbc_news/20261123-101500")
    model.predict(["Shares rose after the results", "The striker scored twice"])
"""

__version__ = "0.1.0"


def load(path, overrides=None, which="best", device=None):
    """Load a trained run folder or an exported bundle (textlstm.serving.loader.load); imported
    lazily to keep `import textlstm` fast (a bundle never imports torch)."""
    from textlstm.serving.loader import load as _load

    return _load(path, overrides, which, device)


__all__ = ["load", "__version__"]
