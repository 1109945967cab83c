"""`textlstm bench`: the bench.json contract, and the FLOP counting it rests on."""

import json
import statistics

import pytest
import torch

from benchmarks.bench import NaiveLSTMClassifier, lstm_gemms, naive_loader
from tests.conftest import run_cli
from textlstm.core.config import load_config
from textlstm.models.classifier import TextClassifier


def test_lstm_gemm_flops_match_the_gate_equations():
    # forward: 4 gates, each W_i x (H x E) and W_h h (H x H) per token -> 2*4H*(E+H) FLOPs;
    # backward does twice that (grad of inputs, grad of weights)
    B, T, E, H = 3, 5, 7, 11
    g = lstm_gemms(B, T, E, H, gates=4)
    flops = {k: 2 * m * k_ * n * times for k, (m, k_, n, times) in g.items()}
    fwd = flops["ih_fwd"] + flops["hh_fwd"]
    assert fwd == 2 * 4 * H * (E + H) * B * T
    assert sum(flops.values()) == 3 * fwd


def test_naive_path_pads_every_batch_to_max_length():
    from datasets import Dataset

    ds = Dataset.from_dict({"ids": [[5, 6], [7] * 30, [8, 9, 10]], "label_id": [0, 1, 0]})
    batch = next(iter(naive_loader(ds, 3, 20, seed=0)))
    assert batch["ids"].shape == (3, 20)
    assert sorted(batch["lengths"].tolist()) == [2, 3, 30]  # real length kept; ids cut at 20
    cfg = load_config(None,
                      ["model.embedding.dim=4", "model.encoder.hidden_size=3",
                       "model.pooling=mean"])
    naive = NaiveLSTMClassifier(11, 2, cfg.model).eval()
    # it reads the padding: a padded text scores differently from the same text alone
    alone = naive(torch.tensor([[5, 6]]), torch.tensor([2]))
    with_pads = naive(torch.tensor([[5, 6, 0, 0]]), torch.tensor([2]))
    assert with_pads.shape == (1, 2) and not torch.allclose(alone, with_pads)


def _number(x) -> bool:
    import math

    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def test_bench_writes_the_contract(tmp_path):
    """Structure and sane types only: every figure here is a timing on a shared machine, so no
    assertion compares two timings or bounds a timed ratio."""
    out = tmp_path / "bench.json"
    code, stdout, stderr = run_cli("bench", "--datasets", "tweets_sentiment", "--steps", "2",
                                   "--no-alternatives", "--epochs", "0",
                                   "--out", out, "model.encoder.hidden_size=16",
                                   "model.embedding.vectors=null")
    assert code == 0, stderr
    r = json.loads(out.read_text())["tweets_sentiment"]
    t = r["train_tokens_per_second"]
    assert all(_number(t[k]) and t[k] > 0 for k in ("naive", "textlstm", "ratio"))
    assert (
        abs(t["ratio"] - t["textlstm"] / t["naive"]) < 1e-2
    )  # the ratio is the quotient it claims to be
    assert _number(r["lstm_flop_fraction"]) and r["lstm_flop_fraction"] > 0
    assert _number(r["infer_docs_per_second"]) and r["infer_docs_per_second"] > 0
    raw = r["infer_raw_docs_per_second"]  # predict --input: torch, fp32 bundle, int8 bundle
    assert set(raw) == {"torch", "onnx_fp32", "onnx_int8"} and min(raw.values()) > 0
    floor = r["predict_floor"]  # what tokenizing and the int8 network allow on these cores
    # each round's floor is cores / (1/tokenize + 1/network) of that round, so it stays under
    # the cores times the slower of the two; the reported floor is the rounds' median (a busy
    # machine moves the rounds apart, so no figure is compared with another timing)
    assert floor["texts_per_second"] == pytest.approx(
        statistics.median(floor["floor_by_round"]), abs=0.1)
    slower = min(floor["tokenize_texts_per_second"], floor["network_texts_per_second"])
    assert 0 < min(floor["floor_by_round"]) and floor["texts_per_second"] > 0
    assert floor["cores"] >= 1 and slower > 0
    # medians of rounds: each share is the median of the rounds' shares, near the quotient
    # spaCy's tokenizer alone is faster than tokenize_texts, so its floor is the higher one
    assert floor["spacy_floor_texts_per_second"] >= floor["texts_per_second"] * 0.999
    assert min(floor["share_by_round"]) <= floor["onnx_int8_share"] <= max(floor["share_by_round"])
    assert floor["onnx_int8_share_of_spacy_floor"] <= floor["onnx_int8_share"] * 1.001
    # the network's floor is its fastest batch size, not the bundle's own
    by_batch = floor["network_by_batch_size"]
    assert str(floor["network_batch_size"]) == max(by_batch, key=by_batch.get)
    # the share is the median of the rounds' own quotients; the median stream over the median
    # floor is a different quotient that a busy machine pulls apart (CI saw 0.637 vs 0.530),
    # so only the arithmetic is checked here, never the agreement of two timings
    assert floor["onnx_int8_share"] == pytest.approx(
        statistics.median(floor["share_by_round"]), abs=1e-3)
    assert raw["onnx_int8"] > 0 and all(s > 0 for s in floor["share_by_round"])
    tok = r["tokenize"]
    assert _number(tok["cold_tokens_per_second"]) and tok["cold_tokens_per_second"] > 0
    assert (
        _number(tok["cached_seconds"])
        and _number(tok["cold_seconds"])
        and min(tok["cached_seconds"], tok["cold_seconds"]) >= 0
    )
    assert _number(r["peak_rss_mb"]) and r["peak_rss_mb"] > 50
    assert r["device"] == ("cpu" if not torch.cuda.is_available() else r["device"])
    # padding is counted, not timed: the naive path pads to max_length, textlstm buckets
    assert r["details"]["padding_fraction"]["naive"] > r["details"]["padding_fraction"]["textlstm"]
    assert "ratio" in stdout and "tweets_sentiment" in stdout


def test_the_flop_fraction_alternates_lstm_and_reference_rounds(monkeypatch):
    """The reference is measured between LSTM passes, once per round, and the reported
    fraction is one round's own quotient (the median), not LSTM and reference from different
    moments."""
    import benchmarks.bench as bench

    cfg = load_config(None,
                      ["model.embedding.dim=4", "model.encoder.hidden_size=3",
                       "model.encoder.num_layers=1"])
    net = TextClassifier(20, 2, cfg.model)
    batches = [{"ids": torch.randint(1, 20, (4, 6)),
                "lengths": torch.tensor([6, 5, 3, 1])} for _ in range(2)]
    events = []
    real_run = net.encoder.forward
    monkeypatch.setattr(net.encoder, "forward", lambda *a: events.append("lstm") or real_run(*a))
    monkeypatch.setattr(bench, "_mm_rate", lambda m, k, n,
                        min_seconds=0.15: events.append("mm") or 1e9)
    r = bench.lstm_flop_fraction(net, batches, cfg, rounds=3)
    squeezed = [e for i, e in enumerate(events) if i == 0 or e != events[i - 1]]
    assert squeezed == ["lstm", "mm"] * 3  # warm-up and round 1 LSTM passes, then mm, alternating
    assert len(r["round_fractions"]) == 3 and r["fraction"] == pytest.approx(
        sorted(r["round_fractions"])[1], abs=1e-3
    )


def test_the_predict_floor_adds_core_seconds_per_text():
    from benchmarks.predict_stream import floor_rate

    # 1,000 texts/s to tokenize and 1,000 through the network: 2 ms a text on one core
    assert floor_rate(1000.0, 1000.0, 1) == pytest.approx(500.0)
    assert floor_rate(1000.0, 1000.0, 2) == pytest.approx(1000.0)
    assert floor_rate(3000.0, 1500.0, 2) == pytest.approx(2000.0)


def test_bench_refuses_an_unknown_data_set(tmp_path):
    code, _, stderr = run_cli("bench", "--datasets", "imdb", "--out", tmp_path / "b.json")
    assert code == 2 and "not a benchmark data set" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "b.json").exists()


@pytest.mark.slow
def test_bench_scale_reports_memory_and_throughput_per_size(tmp_path):
    out = tmp_path / "scale.json"
    code, stdout, err = run_cli("bench-scale", "--sizes", "2k,4k", "--steps", "2",
                                "--eval-size", "300",
                                "--data-dir", tmp_path, "--out", out)
    assert code == 0, err[-3000:]
    doc = json.loads(out.read_text())
    assert set(doc["summary"]) >= {"peak_rss_growth", "peak_anon_growth",
                                   "prepare_throughput_ratio",
                                   "rss_target_met", "anon_target_met", "throughput_target_met"}
    for n in ("2000", "4000"):
        r = doc["results"][n]
        assert r["train_docs"] == int(n) and r["peak_rss_mb"] >= r["peak_anon_mb"] > 100
        assert set(r["prepare_steps_seconds"]) == {"load", "tokenize", "vocab", "encode", "stats"}
        assert all(_number(v) and v >= 0 for v in r["prepare_steps_seconds"].values())
        assert _number(r["prepare_docs_per_second"]) and r["prepare_docs_per_second"] > 0
    # the summary is computed from the two sizes' results, and each verdict from its figure
    s, small, large = doc["summary"], doc["results"]["2000"], doc["results"]["4000"]
    assert s["peak_rss_growth"] == pytest.approx(
        large["peak_rss_mb"] / small["peak_rss_mb"] - 1, abs=1e-4
    )
    assert s["peak_anon_growth"] == pytest.approx(
        large["peak_anon_mb"] / small["peak_anon_mb"] - 1, abs=1e-4
    )
    assert s["prepare_throughput_ratio"] == pytest.approx(
        large["prepare_docs_per_second"] / small["prepare_docs_per_second"], abs=1e-3)
    assert s["rss_target_met"] == (s["peak_rss_growth"] < 0.20)
    assert s["anon_target_met"] == (s["peak_anon_growth"] < 0.20)
    assert s["throughput_target_met"] == (s["prepare_throughput_ratio"] >= 0.95)
    # the corpus is a function of (size, seed): written once, then reused
    first = (tmp_path / "scale" / "2000-seed0" / "train.jsonl").read_text()
    from benchmarks.bench_scale import _documents, _tweet_model

    again = list(_documents(_tweet_model(tmp_path), 2000, 0))
    assert [json.loads(x)["text"] for x in first.splitlines()] == [t for t, _ in again]
    assert "peak RSS growth" in stdout
