"""The model-architecture version, in a module of its own so that a bundle's reader can check it
without importing torch (textlstm.models.classifier re-exports it)."""

# Bump when a change to the network makes an older checkpoint's weights mean something else
# (new or renamed parameters, a different layout): runs and bundles store the version they were
# trained with, and loading a different one is refused instead of silently mis-predicting.
ARCH_VERSION = 1
