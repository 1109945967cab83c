"""What only a GPU can show, in one process with a deadline: the figures
docs/history/benchmarks-sessions.md records under "On a GPU".

    python benchmarks/experiments/gpu_checks.py OUT_DIR [--deadline-s 420]

1. cuDNN's packed path against the CPU padded path: the same weights give the same logits and
   the same gradients (every cell, pooling and chunking the model offers), and padding stays
   exact on the GPU.
2. Training on the GPU with `trainer.precision` 32-true, bf16-mixed and 16-mixed (BBC, the
   bbc_news preset without GloVe, 3 epochs): test accuracy, seconds, no NaN; then the same
   config on this machine's CPU cores for the ratio.
3. Explanations with cuDNN present: integrated gradients on the GPU (cuDNN switched off for
   the attribution pass) agree with the CPU's and are complete; the run's errors.json carries
   attributions (the report's explained mistakes ran on the GPU).
4. The GPU-trained run evaluated on the CPU and on the GPU gives the same metrics.

Each section writes its results to OUT_DIR/gpu_checks.json as soon as it ends, and a section
that would overrun the deadline is skipped and says so, so a partial run still reports.
Nothing here runs in the test suite (no GPU there); on a machine without CUDA it stops at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]  # the checkout: benchmarks/experiments/ is two below it
sys.path.insert(0, str(ROOT))

RESULTS: dict = {}
# `--cpu-dry-run` puts "cpu" here: the script's own plumbing checked where there is no GPU
DEV, ACCEL = "cuda", "gpu"
ONLY: set[str] = set()  # --only: the sections to run (empty: all)


def save(out: Path) -> None:
    (out / "gpu_checks.json").write_text(json.dumps(RESULTS, indent=2, default=str))


def section(name: str, need_s: float, deadline: float, out: Path):
    """Run the decorated function as a section: timed, guarded, saved."""
    def run(fn):
        left = deadline - time.monotonic()
        if ONLY and name not in ONLY:
            return fn
        if left < need_s:
            RESULTS[name] = {"skipped": f"{left:.0f} s left, needs about {need_s:.0f} s"}
            save(out)
            return fn
        t = time.perf_counter()
        try:
            RESULTS[name] = fn()
        except Exception as e:  # one broken section must not cost the others
            RESULTS[name] = {"error": f"{type(e).__name__}: {e}",
                             "traceback": traceback.format_exc()[-3000:]}
        RESULTS[name + "_seconds"] = round(time.perf_counter() - t, 1)
        print(f"[{name}] {json.dumps(RESULTS[name], default=str)[:1500]}", flush=True)
        save(out)
        return fn
    return run


def equality() -> dict:
    """Packed (cuDNN) on the GPU against padded on the CPU, float64 off: float32 as trained."""
    from textlstm.core.config import POOLINGS, load_config
    from textlstm.models.classifier import TextClassifier

    rows, worst = [], {"logits": 0.0, "grads": 0.0, "padding": 0.0}
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([200, 1, 37, 129, 64, 5, 180, 90, 2, 150, 33, 120, 77, 15, 199, 60])
    ids = torch.randint(2, 500, (16, 200), generator=g)
    ids[torch.arange(200)[None, :] >= lengths[:, None]] = 0
    labels = torch.randint(0, 4, (16,), generator=g)
    for cell in ("lstm", "gru"):
        for layers in (1, 2):
            for pooling in POOLINGS:
                for chunk in (None, (48, 8)):
                    torch.manual_seed(1)
                    cfg = load_config(None, [
                        "model.embedding.dim=32", "model.encoder.hidden_size=24",
                        f"model.encoder.cell={cell}", f"model.encoder.num_layers={layers}",
                        f"model.pooling={pooling}", "model.embedding.dropout=0",
                        "model.head.dropout=0", "model.encoder.dropout=0"])
                    cpu = TextClassifier(500, 4, cfg.model, chunk)
                    gpu = TextClassifier(500, 4, cfg.model, chunk)
                    gpu.load_state_dict(cpu.state_dict())
                    cpu.encoder.impl, gpu = "padded", gpu.to(DEV)
                    assert gpu.encoder.impl == "auto"  # packed on CUDA, the shipped default
                    out = {}
                    for name, net, dev in (("cpu", cpu, "cpu"), ("gpu", gpu, DEV)):
                        net.train()  # dropouts are 0: train mode so cuDNN runs its backward
                        logits = net(ids.to(dev), lengths.to(dev))
                        torch.nn.functional.cross_entropy(logits, labels.to(dev)).backward()
                        out[name] = (logits.detach().cpu(),
                                     {k: p.grad.detach().cpu() for k, p in net.named_parameters()
                                      if p.grad is not None})
                        net.train(False)
                        with torch.no_grad():  # document 3 alone against inside the batch
                            alone = net(ids[3:4, : lengths[3]].to(dev), lengths[3:4].to(dev))
                            batch = net(ids.to(dev), lengths.to(dev))[3:4]
                        out[name + "_pad"] = float((alone - batch).abs().max())
                    dl = float((out["cpu"][0] - out["gpu"][0]).abs().max())
                    dg = max(float((out["cpu"][1][k] - out["gpu"][1][k]).abs().max()
                                   / (out["cpu"][1][k].abs().max() + 1e-12))
                             for k in out["cpu"][1])
                    worst["logits"] = max(worst["logits"], dl)
                    worst["grads"] = max(worst["grads"], dg)
                    worst["padding"] = max(worst["padding"], out["gpu_pad"])
                    rows.append({"cell": cell, "layers": layers, "pooling": pooling,
                                 "chunks": chunk is not None, "max_abs_logit_diff": dl,
                                 "max_rel_grad_diff": dg, "gpu_padding_diff": out["gpu_pad"]})
    return {"cases": len(rows), "worst": worst,
            "pass": worst["logits"] < 1e-4 and worst["grads"] < 1e-3
            and worst["padding"] < 1e-5, "rows": rows}


def train_one(tmp: Path, accelerator: str, precision: str, extra: list[str]) -> tuple[Path, dict]:
    from textlstm.commands.train import train
    from textlstm.core.config import load_config

    cfg = load_config(ROOT / "configs" / "bbc_news.yaml", [
        f"data.data_dir={ROOT / 'data'}", f"run_root={tmp}", "model.embedding.vectors=null",
        "wandb.mode=disabled", "trainer.progress_bar=false", "trainer.max_epochs=3",
        f"trainer.accelerator={accelerator}", f"trainer.precision={precision}",
        f"name={accelerator}-{precision}", *extra])
    run = train(cfg)
    m = json.loads((run / "metrics.json").read_text())
    return run, {"test_accuracy": m["test"]["accuracy"], "test_f1_macro": m["test"]["f1_macro"],
                 "test_loss": m["test"]["loss"], "train_seconds": m["train"]["seconds"],
                 "epochs": m["train"]["epochs"], "ece": m["test"].get("ece"),
                 "temperature": m.get("calibration", {}).get("temperature")}


def training(a, tmp: Path, runs: dict, out: Path) -> dict:
    res = {}
    for precision in a.precisions.split(","):
        try:
            runs[precision], res[precision] = train_one(tmp, ACCEL, precision, a.overrides)
        except Exception as e:
            res[precision] = {"error": f"{type(e).__name__}: {e}"}
        print(f"  {ACCEL} {precision}: {res[precision]}", flush=True)
        save(out)
    return res


def explanations(run: Path) -> dict:
    from textlstm.models.explain import explain
    from textlstm.serving.loader import load

    texts = [json.loads(x)["text"] for x in
             (ROOT / "data" / "bbc_news" / "test.jsonl").read_text().splitlines()[:4]]
    on_gpu, on_cpu = load(run, device=DEV), load(run, device="cpu")
    rows = []
    for t in texts:
        g, c = explain(on_gpu, t), explain(on_cpu, t)
        ga, ca = torch.tensor(g["attributions"]), torch.tensor(c["attributions"])
        with torch.no_grad():
            ids = torch.tensor([on_gpu.vocab.encode(g["tokens"])], device=DEV)
            fx = float(on_gpu.net(ids, torch.tensor([ids.size(1)], device=DEV))[
                0, on_gpu.labels.index(g["label"])])
        rows.append({"tokens": len(g["tokens"]), "label_gpu": g["label"],
                     "label_cpu": c["label"], "delta_gpu": g["delta"],
                     "delta_over_fx": abs(g["delta"]) / abs(fx),
                     "max_abs_attr_diff": float((ga - ca).abs().max()),
                     "max_abs_attr": float(ca.abs().max())})
    errors = json.loads((run / "errors.json").read_text())
    explained = sum("attributions" in e for e in errors[:10])
    return {"rows": rows, "errors_json_explained": explained,
            "errors_json_first10": min(10, len(errors)),
            "pass": all(r["label_gpu"] == r["label_cpu"] and r["delta_over_fx"] <= 0.01
                        and r["max_abs_attr_diff"] <= 1e-3 * max(1.0, r["max_abs_attr"])
                        for r in rows) and explained == min(10, len(errors))}


def evaluation(run: Path) -> dict:
    from textlstm.commands.evaluate import evaluate

    c = evaluate(run, overrides=["trainer.accelerator=cpu"])
    g = evaluate(run, overrides=[f"trainer.accelerator={ACCEL}"])
    return {"cpu": {k: c[k] for k in ("accuracy", "f1_macro", "loss", "ece")},
            "gpu": {k: g[k] for k in ("accuracy", "f1_macro", "loss", "ece")},
            "pass": c["accuracy"] == g["accuracy"] and abs(c["loss"] - g["loss"]) < 1e-4}


def serving(run: Path, out: Path, name: str, env: dict) -> dict:
    """`textlstm serve-bench` on the run, short levels; the server's workers take the GPU when
    CUDA is visible (serving/loader.py), the CPU when CUDA_VISIBLE_DEVICES is empty."""
    import subprocess

    dst = out / f"serve_bench_{name}.json"
    cmd = [sys.executable, "-m", "textlstm", "serve-bench", str(run), "--out", str(dst),
           "--clients", "1", "8", "32", "--texts-per-request", "1", "64",
           "--seconds-per-level", "6", "--requests-per-level", "4000",
           "--soak-requests", "4000", "--soak-seconds", "15", "--fuzz-requests", "100",
           "--agreement-texts", "200", "--data", str(ROOT / "data/bbc_news/test.jsonl")]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env},
                       timeout=240)
    if p.returncode != 0:
        return {"error": p.stderr[-2000:]}
    r = json.loads(dst.read_text())
    return {k: r[k] for k in r if k not in ("fuzz",)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--deadline-s", type=float, default=420)
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="run every section with the CPU in the GPU's place (checks the script)")
    ap.add_argument("--precisions", default="32-true,bf16-mixed,16-mixed")
    ap.add_argument("--no-tf32", action="store_true",
                    help="cuDNN and matmul in full fp32 (torch.backends.*.allow_tf32 = False)")
    ap.add_argument("--only", default=None,
                    help="comma-separated sections to run (default: all)")
    ap.add_argument("overrides", nargs="*", help="key=value for every training run")
    a = ap.parse_intermixed_args()
    global DEV, ACCEL
    if a.cpu_dry_run:
        DEV, ACCEL = "cpu", "cpu"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + a.deadline_s
    if a.no_tf32:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    ONLY.update(a.only.split(",") if a.only else [])
    if DEV == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check here")
        return 2
    RESULTS["env"] = {"device": torch.cuda.get_device_name() if DEV == "cuda" else "cpu (dry run)",
                      "tf32": torch.backends.cudnn.allow_tf32,
                      "torch": torch.__version__,
                      "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                      "cpu_cores": os.cpu_count()}
    save(out)
    tmp = Path("/tmp/gpu_checks")
    runs: dict[str, Path] = {}

    section("equality", 30, deadline, out)(equality)
    section("gpu_training", 120, deadline, out)(lambda: training(a, tmp, runs, out))
    section("explain", 30, deadline, out)(lambda: explanations(runs["32-true"]))
    section("evaluate", 25, deadline, out)(lambda: evaluation(runs["32-true"]))
    section("serve_gpu", 90, deadline, out)(
        lambda: serving(runs["32-true"], out, ACCEL, {}))
    section("cpu_training", 150, deadline, out)(
        lambda: train_one(tmp, "cpu", "32-true", a.overrides)[1])
    section("serve_cpu", 90, deadline, out)(
        lambda: serving(runs["32-true"], out, "cpu", {"CUDA_VISIBLE_DEVICES": ""}))
    print(json.dumps({k: v.get("pass") for k, v in RESULTS.items()
                      if isinstance(v, dict) and "pass" in v}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
