"""Property-based: tokenization -> vocabulary -> collate holds for arbitrary Unicode."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from textlstm.batches.collate import collate
from textlstm.tokens.tokenize import SMALL_BATCH, encode_texts, tokenize_texts
from textlstm.tokens.vocab import Vocab

texts = st.lists(
    st.text(max_size=120) | st.sampled_from(["<pad>", "<unk>", " \t\n", "🙂🙂", "e\u0301", "\x00"]),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(texts, st.integers(1, 30), st.booleans())
def test_any_unicode_survives_tokenize_vocab_collate(batch_texts, max_length, lowercase):
    toks = tokenize_texts(batch_texts, lowercase)
    assert len(toks) == len(batch_texts)
    assert all(isinstance(w,
                          str) and w.strip() for t in toks for w in t)  # no empty or space tokens

    vocab = Vocab.build(toks, min_freq=1)
    again = Vocab(json.loads(json.dumps(vocab.to_dict(), ensure_ascii=False))["itos"])
    ids = [vocab.encode(t, max_length) for t in toks]
    assert ids == [again.encode(t, max_length) for t in toks]  # the JSON round trip changes nothing
    assert all(
        len(i) <= max_length and all(x >= 1 for x in i) for i in ids
    )  # nothing real becomes <pad>

    batch = collate([{"ids": i, "label_id": 0} for i in ids])
    B, T = batch["ids"].shape
    assert B == len(batch_texts) and int(batch["lengths"].max()) == T
    for row, i in enumerate(ids):
        n = int(batch["lengths"][row])
        if i:
            assert n == len(i) and batch["ids"][row, :n].tolist() == i
        else:  # an empty text is one <unk>, so every row has a last token
            assert n == 1 and batch["ids"][row, 0] == 1
        assert (batch["ids"][row, n:] == 0).all()


# words spaCy keeps as fixed symbols (ids below 10,000, not hashes), case pairs whose lower
# case is longer than the word, and surrogates
SPECIAL = ["Mark", "_", "the", "İstanbul", "ΣΑΣ", "Straße", "ǅ", "caf\udfff", "\ud83d\ude00 ok"]


# pieces of spaCy's special cases (emoticons, abbreviations, contractions), which its last pass
# matches over several tokens: texts made of them probe whether texts tokenized together (one
# Doc per batch, `encode_arrays`) ever change each other's tokens
ATOMS = [":)", ":)x", ")", "(", "band)", ":", "-", "(:", "):", ":-)", "a.m.", "a.m", ".", "'s",
         "n't", "'", "cause", "Mr", "e.g", "x", "\x8a", "<3", "=)", "\n", "--", "..."]
atom_texts = st.lists(st.lists(st.sampled_from(ATOMS), min_size=1, max_size=3).map("".join),
                      max_size=8).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(texts, st.lists(st.text(max_size=40) | st.sampled_from(SPECIAL), max_size=12),
       st.integers(1, 30) | st.none(), st.booleans())
def test_ids_straight_from_spacy_equal_ids_from_token_strings(batch_texts, known, max_length,
                                                              lowercase):
    """`encode_texts` (predict's path: spaCy's own ids looked up) gives the ids of
    `vocab.encode` over `tokenize_texts` (training's path: token strings)."""
    batch_texts = batch_texts + SPECIAL + ["band) :)\x8a\x97\x9d", ":)\x8a\x97\x9d", "(:"]
    vocab = Vocab.build(tokenize_texts(known + SPECIAL[::2], lowercase), min_freq=1)
    want = [vocab.encode(t, max_length) for t in tokenize_texts(batch_texts, lowercase)]
    # both of encode_arrays' paths: a batch tokenized as one Doc, and a Doc per text
    assert encode_texts(batch_texts * 2, vocab, lowercase, max_length) == want * 2
    assert len(batch_texts) * 2 >= SMALL_BATCH
    assert [encode_texts([t], vocab, lowercase, max_length)[0] for t in batch_texts] == want
    assert any(i > 1 for row in want for i in row)  # some words are known, so ids are compared


@settings(max_examples=100, deadline=None)
@given(st.lists(atom_texts, min_size=1, max_size=20), st.booleans())
def test_texts_of_special_case_pieces_encode_as_each_alone(batch_texts, lowercase):
    vocab = Vocab.build(tokenize_texts(ATOMS + [" ".join(ATOMS)], lowercase), min_freq=1)
    want = [vocab.encode(t) for t in tokenize_texts(batch_texts, lowercase)]
    assert encode_texts(batch_texts * SMALL_BATCH, vocab, lowercase) == want * SMALL_BATCH


def test_a_text_never_changes_its_neighbours_tokens(monkeypatch):
    """spaCy alone keeps ":" ")" in "band) :)x" but makes ":)" of ":)x": tokenized together,
    "band)" and ":)x" as two texts must still get their own tokens (encode_arrays' separator),
    in one Doc or cut into several."""
    import textlstm.tokens.tokenize as tk

    batch = ["band)", ":)\x8a\x97\x9d", "", " \n"] * SMALL_BATCH
    vocab = Vocab.build(tokenize_texts(batch + ["band) :)\x8a\x97\x9d"]), min_freq=1)
    assert tokenize_texts([":)\x8a\x97\x9d", "band) :)\x8a\x97\x9d"]) == [
        [":)", "\x8a\x97\x9d"], ["band", ")", ":", ")", "\x8a\x97\x9d"]]
    want = [vocab.encode(t) for t in tokenize_texts(batch)]
    assert encode_texts(batch, vocab) == want
    monkeypatch.setattr(tk, "JOIN_CHARS", 12)  # a Doc every few texts
    assert encode_texts(batch, vocab, max_length=1) == [w[:1] for w in want]
