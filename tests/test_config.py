import pytest

from tests.conftest import ROOT
from textlstm.core.config import load_config, parse_overrides
from textlstm.core.errors import UserError


def test_yaml_defaults_and_overrides():
    cfg = load_config(ROOT / "configs" / "tweets_sentiment.yaml",
                      ["trainer.max_epochs=3", "model.encoder.hidden_size=64", "optim.lr=1e-4"])
    assert cfg.name == "tweets_sentiment"
    assert cfg.data.source == "tweets_sentiment"
    assert cfg.trainer.max_epochs == 3 and cfg.model.encoder.hidden_size == 64
    assert cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.trainer.patience == 3  # from base.yaml


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")))
def test_every_config_loads_and_says_how_to_run_it(path):
    load_config(path)
    text = path.read_text()
    # the leading comment, up to the command line
    header = text[: text.index("\n", text.index("train"))]
    assert text.startswith("#") and ("textlstm train" in header or "make train" in header)


def test_unknown_key_names_closest():
    with pytest.raises(UserError,
                       match=r"model\.encoder\.hiden_size.*did you mean "
                       r"'model\.encoder\.hidden_size'"):
        load_config(None, ["model.encoder.hiden_size=3"])


def test_wrong_type_names_key():
    with pytest.raises(UserError, match=r"trainer\.max_epochs"):
        load_config(None, ["trainer.max_epochs=abc"])


@pytest.mark.parametrize("override,key", [
    ("model.encoder.dropout=1.0", "model.encoder.dropout"),
    ("model.encoder.hidden_size=-3", "model.encoder.hidden_size"),
    ("model.pooling=median", "model.pooling"),
    ("data.source=nope", "data.source"),
])
def test_out_of_range(override, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_train_file_implies_files():
    cfg = load_config(ROOT / "configs" / "bbc_news.yaml", ["data.train_file=x.csv"])
    assert cfg.data.source == "files"


def test_override_syntax():
    assert parse_overrides(["a.b=[1,2]", "x.y=null"]) == [("a.b", [1, 2]), ("x.y", None)]
    with pytest.raises(UserError):
        parse_overrides(["novalue"])


# values YAML would read as something else than typed: block scalars, anchors, aliases, tags,
# reserved characters, a comment, a bare colon, null, a YAML 1.1 bool, hex, a list or mapping
AS_TYPED = ["|", ">", "&a", "*a", "!x", "%", "@", "`", ":", "~", "null", "yes", "0x10", "#x",
            "- a", "[a", "{a", "a: b", "|+", "1e3"]


@pytest.mark.parametrize("value", AS_TYPED)
def test_a_text_key_takes_its_value_as_typed(value):
    """`textlstm train ... 'data.label_separator=|'` as a shell passes it: the separator is the
    character typed, not what YAML makes of it (an empty block scalar)."""
    cfg = load_config(ROOT / "configs" / "base.yaml",
                      ["task=multilabel", f"data.label_separator={value}",
                       f"data.text_field={value}", f"wandb.project={value}",
                       f"data.hf_splits.train={value}", f"data.hf_splits.extra={value}"])
    assert cfg.data.label_separator == value and cfg.data.text_field == value
    assert cfg.wandb.project == value
    assert cfg.data.hf_splits.train == value and cfg.data.hf_splits.extra == value


def test_quotes_and_null_on_text_keys():
    cfg = load_config(ROOT / "configs" / "base.yaml",
                      ["data.label_separator='|'", 'data.text_field="a b"',
                       "data.validation_file=null", "data.test_file=~", "wandb.project=null",
                       "data.label_field='null'"])
    assert cfg.data.label_separator == "|" and cfg.data.text_field == "a b"
    # an optional text key (null by default) takes null as null; a required one as the word
    assert cfg.data.validation_file is None and cfg.data.test_file is None
    assert cfg.wandb.project == "null" and cfg.data.label_field == "null"


def test_numbers_lists_and_bools_still_read_as_yaml():
    cfg = load_config(ROOT / "configs" / "base.yaml",
                      ["trainer.max_epochs=3", "optim.lr=1e-3", "model.encoder.bidirectional=no",
                       "trainer.patience=0x10"])
    assert cfg.trainer.max_epochs == 3 and cfg.optim.lr == 1e-3
    assert cfg.model.encoder.bidirectional is False and cfg.trainer.patience == 16


def test_a_value_yaml_empties_is_named_as_typed_in_the_error():
    with pytest.raises(UserError, match=r"'\|'.*could not be converted"):
        load_config(None, ["model.encoder.hidden_size=|"])


def _help_blocks(text: str) -> dict[str, tuple[str, str]]:
    """`  key = default` lines of `textlstm train --help`, each with its wrapped help joined."""
    blocks, key = {}, None
    for line in text.splitlines():
        if line.startswith("      ") and key:
            default, words = blocks[key]
            blocks[key] = (default, f"{words} {line.strip()}".strip())
        elif line.startswith("  ") and " = " in line and not line.startswith("   "):
            key, default = line.strip().split(" = ", 1)
            blocks[key] = (default, "")
        else:
            key = None
    return blocks


def test_every_key_is_documented_in_train_help(capsys):
    from textlstm.cli import main
    from textlstm.core.config import key_help, schema_keys

    helps = key_help()
    keys = [*schema_keys(), "data.hf_splits"]  # hf_splits is a mapping, so schema_keys skips it
    undocumented = [k for k in keys if not helps.get(k, "").strip()]
    assert not undocumented, f"config keys without a help text: {undocumented}"
    assert set(helps) >= set(keys)

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    blocks = _help_blocks(out)
    for key in keys:
        assert key in blocks, f"{key} missing from `textlstm train --help`"
        default, text = blocks[key]
        assert text == " ".join(helps[key].split()), f"{key}'s help is missing or garbled"
    assert blocks["data.max_length"][0] == "400" and blocks["data.train_file"][0] == "null"
    # the sections say what they are about, and the help fits a 100-column terminal
    for section in ("data", "model", "model.encoder", "trainer", "wandb"):
        assert helps[section].strip() and f"\n{section}: {helps[section]}" in out
    epilog = out[out.index("config keys"):]
    assert max(len(line) for line in epilog.splitlines()) <= 100
