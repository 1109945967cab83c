"""`make mutants`: break one important behaviour at a time and check that the test meant to
notice it fails.

Each mutant is (file, exact source snippet, replacement, test node id, description). For each,
the git-tracked files are copied to a scratch folder (data/ is symlinked, so nothing is
prepared again; the virtualenv is this interpreter's), the snippet is replaced (it must occur
exactly once: a missing or ambiguous snippet fails loudly), and the named test runs with
PYTHONPATH pointing at the copy. "caught" means that test failed; "survived" means it passed.
Before the mutants, every named test runs once on the unmodified copy and must pass, so a
"caught" is the mutant's doing.

Snippets are fragments of one line, so re-wrapping long lines elsewhere leaves them valid.
Not part of `make test` or CI: it takes minutes (one pytest process per mutant).

    python scripts/mutants.py            # all
    python scripts/mutants.py -k cosine  # those whose description or test contains "cosine"
    python scripts/mutants.py -k "a|b"   # ... contains a or b
    python scripts/mutants.py --check    # only check that every snippet occurs exactly once
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    file: str
    snippet: str
    replacement: str
    test: str
    what: str


C = "tests/test_contracts.py::"
M = [
    # ---- learning, data, vocabulary
    Mutant("textlstm/training/module.py", 'loss = self.criterion(logits, batch["labels"])',
           'loss = self.criterion(logits, batch["labels"][torch.randperm(len(batch["labels"]))] '
           'if self.training else batch["labels"])',
           "tests/test_learning.py::test_words_that_decide_the_label_are_learned",
           "training on shuffled labels"),
    Mutant("textlstm/batches/datamodule.py",
           'Vocab.from_counts(count_tokens(self.tokens["train"]), c.min_freq',
           'Vocab.from_counts(sum((count_tokens(d) for d in self.tokens.values()), '
           '__import__("collections").Counter()), '
           'c.min_freq',
           C + "test_prepared_vocabulary_comes_from_train_only",
           "vocabulary from train + validation + test"),
    Mutant("textlstm/tokens/vocab.py", "if c >= min_freq)", "if c >= 1)",
           C + "test_vocabulary_min_freq_and_max_size", "vocabulary ignores min_freq"),
    Mutant("textlstm/batches/datamodule.py", 'if split == "train" or split not in dd:', "if True:",
           "tests/test_data.py::test_unseen_label_in_test", "labels unseen in train accepted"),
    Mutant("textlstm/batches/datamodule.py", "if len(self.labels) < 2:", "if len(self.labels) < 1:",
           "tests/test_end_to_end.py::test_cli_error_empty_file_and_single_class",
           "a single-label training set accepted"),
    Mutant("textlstm/data/sources.py", "row_split = split_of_group[inverse.reshape(-1)]",
           "row_split = split_of_group[inverse.reshape(-1)]"
           "[np.random.default_rng(seed).permutation(len(keys))]",
           "tests/test_data.py::test_stratified_split_groups_duplicates",
           "duplicates straddle splits"),
    Mutant("textlstm/batches/datamodule.py",
           'tokens = pc.list_slice(table["tokens"].combine_chunks(), 0, max_length)',
           'tokens = table["tokens"].combine_chunks()',
           C + "test_long_documents_are_truncated_to_max_length",
           "no truncation to data.max_length"),
    Mutant("textlstm/tokens/tokenize.py",
           '"spacy-en", spacy_module().__version__, TOKENIZER_VERSION',
           '"spacy-en", TOKENIZER_VERSION',
           C + "test_the_tokenization_cache_key_includes_the_spacy_version",
           "cache key without spaCy's version"),
    # ---- config
    Mutant("textlstm/core/config.py", "cfg = OmegaConf.structured(Config)",
           "cfg = OmegaConf.structured(Config); OmegaConf.set_struct(cfg, False)",
           C + "test_unknown_keys_in_a_yaml_file_are_refused[section]",
           "unknown config sections accepted"),
    Mutant("textlstm/core/config.py",
           '_check(d.max_tokens_per_batch is None, "data.max_tokens_per_batch"',
           '_check(True, "data.max_tokens_per_batch"',
           C + "test_streaming_refuses_token_budgets_and_exact_bucketing[max_tokens]",
           "streaming accepts max_tokens_per_batch"),
    Mutant("textlstm/core/errors.py", "exit_code = 2", "exit_code = 1",
           C + "test_user_errors_exit_with_code_2", "user errors exit with 1"),
    # ---- batches
    Mutant("textlstm/batches/sampler.py", "pick[: total - len(pick)]])[rank::world]",
           "pick[: total - len(pick)]])[0::world]",
           C + "test_ddp_ranks_train_on_disjoint_batches_that_cover_the_epoch[320]",
           "every DDP rank trains on the same batches"),
    Mutant("textlstm/batches/sampler.py", "for b in pick])[rank::world]",
           "for b in pick])[0::world]",
           "tests/test_distributed.py::test_bucket_sampler_shards",
           "every DDP rank evaluates the same texts"),
    Mutant("textlstm/batches/sampler.py",
           'order[s:e] = perm[s:e][np.argsort(lens[s:e], kind="stable")]',
           "order[s:e] = perm[s:e]",
           "tests/test_data.py::test_bucket_sampler_deterministic_and_complete",
           "no length bucketing"),
    Mutant("textlstm/batches/sampler.py",
           "segments = np.flatnonzero(np.diff(sorted_lens, prepend=-1, append=-1))",
           "segments = np.array([0, n])",
           "tests/test_data.py::test_exact_length_buckets_have_no_padding",
           "exact bucketing mixes lengths"),
    Mutant("textlstm/commands/evaluate.py", "    model.temperature = pred.temperature",
           "    model.temperature = 1.0",
           "tests/test_calibration.py::test_evaluate_reports_ece_with_the_runs_temperature",
           "evaluate ignores the run's temperature"),
    Mutant("textlstm/commands/explain.py", 'if out and suffix not in (".html", ".htm", ".png"):',
           "if False:",
           "tests/test_explain.py::test_explain_cli_refuses_bad_arguments",
           "explain writes any --out suffix"),
    Mutant("textlstm/serving/export.py", 'if c["max_abs_logit_diff"] > FP32_MAX_ABS_DIFF:',
           'if c["max_abs_logit_diff"] > 10 * FP32_MAX_ABS_DIFF:',
           "tests/test_export.py::test_the_product_checks_use_the_issue_thresholds",
           "export's fp32 check tolerates 10x the allowed logit difference"),
]


def scratch_copy(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.split(b"\0")
    for f in filter(None, files):
        src = ROOT / f.decode()
        if src.is_file():
            (dest / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f.decode())
    if (ROOT / "data").is_dir():
        (dest / "data").symlink_to(ROOT / "data", target_is_directory=True)


def apply(dest: Path, m: Mutant) -> None:
    path = dest / m.file
    text = path.read_text(encoding="utf-8")
    n = text.count(m.snippet)
    if n != 1:
        raise SystemExit(f"mutant '{m.what}': the snippet occurs {n} times in {m.file} (needs "
                         f"exactly 1):\n  {m.snippet!r}")
    path.write_text(text.replace(m.snippet, m.replacement), encoding="utf-8")


def run_tests(dest: Path, nodes: list[str], timeout: int) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(dest), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                            *nodes],
                           cwd=dest, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    return p.returncode, p.stdout[-3000:] + p.stderr[-2000:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", default=None,
                    help="only mutants whose description, file or test contains this")
    ap.add_argument("--check", action="store_true",
                    help="only check that every snippet occurs exactly once")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip running the tests on the unmodified copy")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per test run")
    args = ap.parse_args()
    wanted = args.k.split("|") if args.k else None  # "a|b": either
    mutants = [m for m in M if wanted is None
               or any(k in x for k in wanted for x in (m.what, m.file, m.test))]
    t0 = time.perf_counter()
    for m in mutants:  # every snippet, before anything runs
        text = (ROOT / m.file).read_text(encoding="utf-8")
        if text.count(m.snippet) != 1:
            print(f"MISSING: '{m.what}': the snippet occurs {text.count(m.snippet)} times in "
                  f"{m.file}:\n  {m.snippet!r}")
            return 2
    print(f"{len(mutants)} mutants, every snippet found exactly once")
    if args.check:
        return 0
    with tempfile.TemporaryDirectory(prefix="textlstm-mutants-") as tmp:
        if not args.no_baseline:
            base = Path(tmp) / "baseline"
            base.mkdir()
            scratch_copy(base)
            nodes = list(dict.fromkeys(m.test for m in mutants))
            code, out = run_tests(base, nodes, args.timeout * 3)
            print(f"baseline: {len(nodes)} tests on the unmodified copy: "
                  f"{'pass' if code == 0 else 'FAIL'} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            if code != 0:
                print(out)
                return 2
        rows = []
        for i, m in enumerate(mutants):
            dest = Path(tmp) / f"m{i}"
            dest.mkdir()
            scratch_copy(dest)
            apply(dest, m)
            t = time.perf_counter()
            code, out = run_tests(dest, [m.test], args.timeout)
            verdict = {0: "SURVIVED", 1: "caught"}.get(code, f"ERROR (pytest exit {code})")
            rows.append((m, verdict, time.perf_counter() - t))
            print(f"[{i + 1:2d}/{len(mutants)}] {verdict:<8} {time.perf_counter() - t:5.0f} s  "
                  f"{m.what}", flush=True)
            if code not in (0, 1):
                print(out)
            shutil.rmtree(dest, ignore_errors=True)
    width = max(len(m.what) for m, _, _ in rows)
    print(f"\n{'mutant':<{width}}  {'verdict':<8}  {'s':>4}  file -> test")
    for m, verdict, s in rows:
        print(f"{m.what:<{width}}  {verdict:<8}  {s:4.0f}  {m.file} -> {m.test}")
    caught = sum(v == "caught" for _, v, _ in rows)
    print(f"\n{caught}/{len(rows)} caught; total {time.perf_counter() - t0:.0f} s")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
