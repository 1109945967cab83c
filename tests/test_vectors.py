import numpy as np

from textlstm.tokens.vectors import load_vectors
from textlstm.tokens.vocab import Vocab


def test_builtin_glove():
    vecs, found, coverage = load_vectors("glove-6b-50d", Vocab(["<pad>", "<unk>", "the", "zzqxq"]))
    assert vecs.shape == (4, 50) and found.tolist() == [False, False, True, False]
    assert np.allclose(vecs[2][:3], [0.418, 0.24968, -0.41242], atol=1e-5)
    assert coverage == 0.5


def test_text_file_with_word2vec_header(tmp_path):
    p = tmp_path / "v.txt"
    p.write_text("2 3\ncat 1 2 3\ndog 4 5 6\n")
    vecs, found, _ = load_vectors(str(p), Vocab(["<pad>", "<unk>", "dog", "emu"]))
    assert vecs[2].tolist() == [4, 5, 6] and found.tolist() == [False, False, True, False]
