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
P = "tests/test_pretrain.py::"
W = "tests/test_wide.py::"
M = [
    # ---- predict --input's lines, written from a template
    Mutant("textlstm/models/contract.py", '*[round(p, 6) for p in row]',
           '*[round(p, 5) for p in row]',
           C + "test_predict_lines_are_json_dumps_of_the_answers_to_the_character",
           "predict's JSON lines round probabilities to 5 places, not the answers' 6"),
    Mutant("textlstm/serving/bundle.py",
           "return b.answer_lines(texts, b.predict_proba(texts).tolist(), min_labels)",
           "return b.answer_lines(texts, b.predict_proba(texts).tolist()[::-1], min_labels)",
           "tests/test_export.py::test_bundle_predicts_what_its_run_predicts",
           "a worker's lines pair texts with another text's probabilities"),
    # ---- learning, data, vocabulary
    Mutant("textlstm/training/module.py", 'loss = self.criterion(logits, batch["labels"])',
           'loss = self.criterion(logits, batch["labels"][torch.randperm(len(batch["labels"]))] '
           'if self.training else batch["labels"])',
           "tests/test_learning.py::test_words_that_decide_the_label_are_learned",
           "training on shuffled labels"),
    Mutant("textlstm/batches/datamodule.py",
           'counts = count_tokens(self.tokens["train"]) if',
           'counts = sum((count_tokens(d) for d in self.tokens.values()), '
           '__import__("collections").Counter()) if',
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
    Mutant("textlstm/batches/sampler.py", "if self.weights is None:", "if True:",
           "tests/test_class_sampling.py::"
           "test_class_balanced_sampling_learns_classes_with_two_or_three_texts",
           "data.class_sampling draws a plain permutation"),
    Mutant("textlstm/batches/sampler.py", "w = counts[label_ids].astype(np.float64) ** -q",
           "w = counts[label_ids].astype(np.float64) ** -(q / 2)",
           "tests/test_class_sampling.py::"
           "test_drawn_class_shares_follow_the_rule[token_budget-balanced-1.0]",
           "class-balanced sampling draws by the square-root rule"),
    Mutant("textlstm/batches/datamodule.py",
           'if train and self.cfg.class_sampling in ("sqrt", "balanced") else None),',
           "if False else None),",
           "tests/test_class_sampling.py::"
           "test_class_balanced_sampling_learns_classes_with_two_or_three_texts",
           "data.class_sampling never reaches the training loader"),
    Mutant("textlstm/batches/recipe.py",
           'cfg.model.regions = LONG_REGIONS if cfg.model.long_text == "chunks" else 1',
           "cfg.model.regions = 1",
           "tests/test_chunks.py::"
           "test_auto_regions_pool_long_documents_in_pieces_and_short_texts_whole",
           "model.regions=auto never pools long documents in pieces"),
    Mutant("textlstm/batches/recipe.py",
           'cfg.optim.adversarial_eps = LONG_EPS if cfg.model.long_text == "chunks" else SHORT_EPS',
           "cfg.optim.adversarial_eps = SHORT_EPS",
           "tests/test_chunks.py::test_auto_adversarial_steps_for_short_texts_only",
           "optim.adversarial_eps=auto trains long documents adversarially too"),
    Mutant("textlstm/commands/train.py",
           "    resolve_adversarial(cfg, dm)\n",
           "    cfg.optim.adversarial_eps = 1.0  # auto taken as the old fixed value\n",
           "tests/test_chunks.py::"
           "test_auto_recipe_trains_reloads_and_predicts_long_documents",
           "train() never resolves optim.adversarial_eps=auto"),
    Mutant("textlstm/models/classifier.py",
           "        if share <= 0.0:",
           "        if False:  # the network always runs",
           "tests/test_wide.py::test_at_share_0_the_answers_come_without_running_the_network",
           "a run answering with the TF-IDF part alone still runs the BiLSTM"),
    Mutant("textlstm/commands/train.py",
           "    resolve_regions(cfg, dm)\n",
           "    pass  # model.regions left unresolved\n",
           "tests/test_chunks.py::"
           "test_auto_recipe_trains_reloads_and_predicts_long_documents",
           "train() never resolves model.regions=auto"),
    Mutant("textlstm/batches/recipe.py", "rare = rarest is not None and rarest <= RARE_TEXTS",
           "rare = False",
           "tests/test_class_sampling.py::"
           "test_auto_turns_on_sqrt_and_the_long_schedule_only_for_rare_classes",
           "data.class_sampling=auto never sees a rare class"),
    Mutant("textlstm/batches/recipe.py", "cfg.optim.lr = RARE_LR", "cfg.optim.lr = cfg.optim.lr",
           "tests/test_class_sampling.py::"
           "test_auto_turns_on_sqrt_and_the_long_schedule_only_for_rare_classes",
           "the rare-class schedule keeps the configured learning rate"),
    Mutant("textlstm/tokens/tokenize.py", "attrs = [LOWER if lowercase else ORTH",
           "attrs = [ORTH if lowercase else ORTH",
           "tests/test_properties.py::test_ids_straight_from_spacy_equal_ids_from_token_strings",
           "encode_arrays (a batch in one Doc) looks up the token as written, not lowercased"),
    Mutant("textlstm/tokens/tokenize.py", "get(t.lower if lowercase else t.orth, 1) for t in doc",
           "get(t.orth if lowercase else t.orth, 1) for t in doc",
           "tests/test_properties.py::test_ids_straight_from_spacy_equal_ids_from_token_strings",
           "encode_arrays (a Doc per text) looks up the token as written, not lowercased"),
    Mutant("textlstm/tokens/tokenize.py", "table = vocab.by_key(get_string_id)",
           "table = vocab.by_key(__import__('spacy.strings').strings.hash_string)",
           "tests/test_properties.py::test_ids_straight_from_spacy_equal_ids_from_token_strings",
           "encode_arrays hashes spaCy's fixed symbols ('mark', '_') as plain strings"),
    Mutant("textlstm/tokens/tokenize.py", 'SEPARATOR = "\\n"', 'SEPARATOR = " "',
           "tests/test_properties.py::test_a_text_never_changes_its_neighbours_tokens",
           "texts tokenized together are joined by a space: a text's tokens change its "
           "neighbour's"),
    Mutant("textlstm/serving/bundle.py", '"data.eval_batch_size": ONNX_BATCH}',
           '"data.eval_batch_size": int(meta.get("eval_batch_size", 256))}',
           "tests/test_export.py::test_a_bundle_runs_onnxruntime_in_small_batches_unless_told",
           "a bundle runs onnxruntime in the run's large eval batches"),
    Mutant("textlstm/core/config.py", "_check(not d.streaming, \"data.class_sampling\",",
           "_check(True, \"data.class_sampling\",",
           "tests/test_class_sampling.py::test_class_sampling_refuses_what_it_cannot_do[streaming]",
           "data.class_sampling accepted with a stream it cannot draw from"),
    Mutant("textlstm/batches/collate.py", "ids[row, 0] = 1  # an empty text",
           "ids[row, 0] = 0  # an empty text",
           "tests/test_data.py::test_collate_pads_and_keeps_lengths",
           "an empty text becomes padding"),
    Mutant("textlstm/batches/streaming.py", "self.dataset.set_epoch(self._epoch_of())",
           "self.dataset.set_epoch(0)",
           C + "test_a_resumed_streamed_epoch_starts_from_the_beginning_of_the_stream",
           "the stream ignores the trainer's epoch"),
    # ---- model
    Mutant("textlstm/models/encoders.py",
           "self._run(reverse_padded(h, rev), layer, reverse=True)",
           "self._run(h.flip(1), layer, reverse=True).flip(1)",
           "tests/test_model.py::test_padded_path_equals_packed[1-True-lstm]",
           "padded backward direction reads the padding first"),
    Mutant("textlstm/models/masks.py", "return torch.where(t < L, L - 1 - t, t)",
           "return torch.where(t < L, T - 1 - t, t)",
           "tests/test_model.py::test_padded_path_equals_packed[1-True-gru]",
           "reversal within the padded width"),
    Mutant("textlstm/models/masks.py", "return torch.cat([last[:, :H], out[:, 0, H:]], dim=-1)",
           "return torch.cat([last[:, :H], last[:, H:]], dim=-1)",
           "tests/test_model.py::test_final_states_are_nn_lstm_h_n[padded]",
           "backward final state taken at the last token"),
    Mutant("textlstm/models/pooling.py",
           'return states.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)',
           "return states.amax(dim=1)", "tests/test_model.py::test_pooling_masks",
           "max pooling over padding"),
    Mutant("textlstm/models/pooling.py", "/ lengths.unsqueeze(1).to(states.dtype)",
           "/ states.size(1)",
           "tests/test_model.py::test_pooling_masks", "mean pooling divides by the padded width"),
    Mutant("textlstm/models/pooling.py",
           'weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=1)',
           "weights = scores.softmax(dim=1)", "tests/test_model.py::test_pooling_masks",
           "attention over padding"),
    Mutant("textlstm/models/classifier.py", "if found != ARCH_VERSION:", "if False:",
           C + "test_a_checkpoint_of_another_architecture_version_is_refused",
           "architecture version not checked"),
    # ---- training
    Mutant("textlstm/training/build.py",
           "return (counts.sum() / (len(labels) * np.maximum(counts, 1))).tolist()",
           "return [1.0] * len(labels)", C + "test_balanced_class_weights_and_explicit_ones",
           "balanced class weights all 1"),
    Mutant("textlstm/training/module.py", "else nn.CrossEntropyLoss(weight=w))",
           "else nn.CrossEntropyLoss())", C + "test_class_weights_reach_the_loss",
           "class weights never reach the loss"),
    Mutant("textlstm/training/module.py",
           "return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))",
           "return 0.05 + 0.95 * (1 - min(1.0, p))",
           C + "test_cosine_schedule_warms_up_then_decays_to_five_percent",
           "linear decay instead of cosine"),
    Mutant("textlstm/training/module.py", "if check and not torch.isfinite(loss):", "if False:",
           "tests/test_bad_inputs.py::test_nan_loss_stops_training_and_names_the_step",
           "a NaN loss trains on"),
    Mutant("textlstm/training/trainer.py", 'filename="best", monitor=MONITOR, mode="max"',
           'filename="best", monitor=MONITOR, mode="min"',
           "tests/test_learning.py::test_the_best_checkpoint_is_the_epoch_with_the_highest_validation_f1",
           "best checkpoint = lowest validation F1"),
    Mutant("textlstm/training/trainer.py", 'EarlyStopping(monitor=MONITOR, mode="max"',
           'EarlyStopping(monitor=MONITOR, mode="min"',
           C + "test_the_trainer_writes_checkpoints_atomically",
           "early stopping waits for F1 to fall"),
    Mutant("textlstm/training/trainer.py", "plugins=[AtomicCheckpointIO()]", "plugins=[]",
           C + "test_the_trainer_writes_checkpoints_atomically",
           "Lightning's non-atomic checkpoint writer"),
    Mutant("textlstm/training/trainer.py", "os.environ[RUN_DIR_ENV] = str(run_dir)", "pass",
           C + "test_fit_tells_the_ranks_it_starts_where_the_run_folder_is",
           "ranks not told the run folder"),
    Mutant("textlstm/training/checkpoints.py",
           'state = state["ranks"][rank if rank < len(state["ranks"]) else 0]',
           'state = state["ranks"][0]',
           C + "test_rng_state_saves_every_rank_and_gives_each_its_own_back",
           "only rank 0's generators restored"),
    Mutant("textlstm/training/checkpoints.py", 'with atomic_write(path, "wb", fsync=True) as fh:',
           'with open(path, "wb") as fh:',
           C + "test_a_kill_while_saving_a_checkpoint_keeps_the_previous_one",
           "checkpoints written in place"),
    Mutant("textlstm/commands/train.py", "elif shared := os.environ.get(runfolder.RUN_DIR_ENV):",
           "elif False:",
           C + "test_ranks_started_by_a_launcher_join_the_folder_in_textlstm_run_dir",
           "a launcher's TEXTLSTM_RUN_DIR ignored by rank 0"),
    # ---- files and folders
    Mutant("textlstm/core/io.py", "tmp = path.with_name(path.name + suffix)", "tmp = path",
           C + "test_atomic_write_leaves_the_old_file_whole_and_no_temporary",
           "writes go straight to the target"),
    Mutant("textlstm/core/io.py", "    except BaseException:", "    except Exception:",
           C + "test_atomic_write_leaves_the_old_file_whole_and_no_temporary",
           "Ctrl-C leaves the temporary file"),
    Mutant("textlstm/core/runfolder.py",
           "return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None",
           "return found[0] if found else None", C + "test_run_folder_checks",
           "resume ignores the newer step.ckpt"),
    Mutant("textlstm/core/runfolder.py", "if (run_dir / METRICS).is_file():", "if False:",
           C + "test_run_folder_checks", "a finished run can be resumed"),
    Mutant("textlstm/core/runfolder.py", "elif not (path / CONFIG).is_file():", "elif False:",
           C + "test_run_folder_checks", "any folder passes as a run folder"),
    Mutant("textlstm/core/hardware.py", "n = min(n, max(1, int(int(quota) / int(period))))",
           "n = max(1, int(int(quota) / int(period)))",
           C + "test_usable_cores_from_affinity_and_cgroup_quota[affinity-below-quota]",
           "the cgroup quota overrides the affinity"),
    Mutant("textlstm/data/formats.py", 'return builder_for(path), ({"delimiter": "\\t"} if',
           'return builder_for(path), ({} if', C + "test_file_formats", "TSV read as CSV"),
    Mutant("textlstm/data/formats.py",
           "value = obj.get(text_field) if isinstance(obj, dict) else obj", "value = obj",
           C + "test_file_formats", "JSON Lines objects not read by key"),
    Mutant("textlstm/data/hub.py", "except Exception as e:  # the loaders raise many types",
           "except ImportError as e:",
           C + "test_hub_errors_are_one_sentence", "hub errors become tracebacks"),
    # ---- serving and outputs
    Mutant("textlstm/commands/predict.py",
           "iter_texts(Path(input_file), pred.text_field) if input_file",
           "list(iter_texts(Path(input_file), pred.text_field)) if input_file",
           C + "test_predict_input_holds_a_bounded_number_of_texts[file]",
           "predict --input reads the whole file"),
    Mutant("textlstm/models/contract.py", "if len(buf) >= size:", "if False:",
           C + "test_predict_input_holds_a_bounded_number_of_texts[stdout]",
           "predict_stream never flushes a chunk"),
    Mutant("textlstm/models/contract.py",
           'out.append({"label": labels[ranked[0]], "probabilities": shown})',
           'out.append({"label": labels[ranked[-1]], "probabilities": shown})',
           "tests/test_export.py::test_a_run_and_its_bundle_answer_through_one_contract",
           "both predictors answer the least probable label"),
    Mutant("textlstm/tracking/dashboard.py",
           "key=lambda i: (not wrong[i], -conf[i] if wrong[i] else conf[i])",
           "key=lambda i: (not wrong[i], conf[i])",
           "tests/test_dashboard.py::test_prediction_rows_are_capped_at_500_and_ordered",
           "least confident mistakes first"),
    Mutant("textlstm/tracking/dashboard.py", "MAX_PREDICTION_ROWS = 500",
           "MAX_PREDICTION_ROWS = 5000",
           "tests/test_dashboard.py::test_prediction_rows_are_capped_at_500_and_ordered",
           "no 500-row cap"),
    Mutant("textlstm/tracking/report.py", 'for split in ("validation", "test"):',
           'for split in ("validation",):',
           "tests/test_learning.py::test_without_wandb_no_wandb_folder_but_a_report",
           "report without test results"),
    # ---- calibration, explanations, serving
    Mutant("textlstm/training/calibration.py",
           "return float(min(T_MAX, max(T_MIN, log_t.exp().item())))", "return 1.0",
           "tests/test_calibration.py::test_logits_scaled_by_three_give_a_temperature_of_three",
           "temperature never fitted"),
    Mutant("textlstm/models/predictor.py", "scaled = logits.float() / self.temperature",
           "scaled = logits.float()",
           "tests/test_calibration.py::test_a_run_stores_its_temperature_and_every_reader_uses_it",
           "predict ignores the temperature"),
    Mutant("textlstm/serving/loader.py", "runfolder.load_temperature(run_dir)", "1.0",
           "tests/test_calibration.py::test_a_run_stores_its_temperature_and_every_reader_uses_it",
           "a reloaded run forgets its temperature"),
    Mutant("textlstm/training/module.py", '"ece": ece(logits, labels, self.temperature)',
           '"ece": ece(logits, labels)',
           "tests/test_calibration.py::test_a_run_stores_its_temperature_and_every_reader_uses_it",
           "test ECE measured without the temperature"),
    Mutant("textlstm/training/calibration.py",
           "conf = (logits.double() / temperature).softmax(-1).max(-1).values",
           "conf = logits.double().softmax(-1).max(-1).values",
           "tests/test_calibration.py::test_the_ece_floor_is_what_a_calibrated_model_scores_on_"
           "that_many_texts", "ECE floor ignores the temperature"),
    Mutant("textlstm/models/explain.py", "baselines=torch.zeros_like(ids)",
           "baselines=torch.ones_like(ids)",
           "tests/test_explain.py::test_attributions_are_complete",
           "attribution baseline is <unk>, not padding"),
    Mutant("textlstm/models/explain.py", "TOLERANCE = 0.01", "TOLERANCE = 1.0",
           "tests/test_explain.py::test_attributions_are_complete",
           "attributions not refined until complete"),
    Mutant("textlstm/tracking/outputs.py",
           "errors = explain_errors(pred, errors[:EXPLAINED_ERRORS])",
           "errors = errors[:EXPLAINED_ERRORS]",
           "tests/test_explain.py::test_a_run_explains_its_worst_errors",
           "worst errors not explained"),
    Mutant("textlstm/serving/server.py", 'raise BadRequest(422, "\\"texts\\" is an empty list',
           'raise ValueError(422, "\\"texts\\" is an empty list',
           "tests/test_serve.py::test_bad_requests_get_a_4xx_with_one_sentence",
           "an empty texts list is a server error"),
    # ---- modules added by the architecture pass and the ship/trust work
    Mutant("textlstm/batches/__init__.py", "    if cfg.streaming:  # config validation",
           "    if False:  # config validation",
           "tests/test_streaming.py::test_streaming_trains_end_to_end_and_evaluates",
           "data.streaming=true silently prepares instead of streaming"),
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
    # ---- long documents and the auto recipe
    Mutant("textlstm/models/chunks.py", "owner = torch.repeat_interleave(torch.arange(B, "
           "device=x.device), counts)",
           "owner = torch.repeat_interleave(torch.arange(B, device=x.device), counts)"
           ".flip(0)",
           "tests/test_chunks.py::test_a_document_alone_or_in_a_batch_gives_the_same_logits",
           "windows pooled into the wrong documents"),
    Mutant("textlstm/models/classifier.py", "if bool((window_counts(lengths, size, overlap) > 1)"
           ".any()):", "if False:",
           "tests/test_chunks.py::test_a_long_document_is_its_windows_encoded_apart_and_pooled",
           "long_text=chunks reads the whole document as one sequence"),
    # ---- model.regions (region max pooling)
    Mutant("textlstm/models/pooling.py",
           "offsets, doc_lengths = torch.zeros_like(lengths), lengths",
           "offsets, doc_lengths = torch.zeros_like(lengths), "
           "torch.full_like(lengths, states.size(1))",
           "tests/test_model.py::test_regions_widen_the_head_and_never_depend_on_padding",
           "region pieces split by the padded length instead of each document's own"),
    Mutant("textlstm/models/pooling.py",
           'end = torch.div((k + 1) * n + regions - 1, regions, rounding_mode="floor")',
           'end = torch.div((k + 1) * n, regions, rounding_mode="floor")',
           "tests/test_model.py::test_region_pooling_is_adaptive_max_pooling_over_each_texts_own"
           "_length", "region pieces end at floor, leaving a text shorter than K with empty ones"),
    Mutant("textlstm/models/pooling.py", "return torch.cat(pieces, dim=-1)  # (B, K x D)",
           "return torch.cat([torch.stack(pieces).amax(0)] * regions, dim=-1)",
           "tests/test_model.py::test_regions_keep_where_in_the_text_a_feature_is",
           "region pooling forgets which piece a feature was in"),
    Mutant("textlstm/models/classifier.py", 'regions=int(cfg.get("regions", 1)))', "regions=1)",
           "tests/test_model.py::test_regions_widen_the_head_and_never_depend_on_padding",
           "model.regions ignored by the network"),
    Mutant("textlstm/models/classifier.py",
           "vecs = self.pooling(states, wlen, final, slot * (size - overlap), lengths[owner])",
           "vecs = self.pooling(states, wlen, final)",
           "tests/test_chunks.py::test_regions_of_a_long_document_are_cut_from_its_whole_length_"
           "across_windows", "each window of a long document cut into its own regions"),
    Mutant("textlstm/serving/export.py",
           "vecs = self._encode(xw, wlen.reshape(-1), offsets, doc_lengths)",
           "vecs = self._encode(xw, wlen.reshape(-1))",
           "tests/test_export.py::test_a_chunked_network_exports_with_the_same_logits",
           "the exported graph cuts each window into its own regions"),
    Mutant("textlstm/core/config.py", '_check(m.pooling == "max", "model.regions",',
           '_check(True, "model.regions",',
           "tests/test_chunks.py::test_regions_need_max_pooling_and_say_so_in_one_line",
           "model.regions accepted with a pooling that is not max"),
    Mutant("textlstm/core/config.py", "cfg.data.max_length = chunk_span(cfg.data)",
           "cfg.data.max_length = cfg.data.chunk_length",
           "tests/test_chunks.py::test_every_window_counts_and_nothing_past_max_length_does",
           "chunks keep only the first window's tokens"),
    Mutant("textlstm/batches/recipe.py", "need = 1 + math.ceil(max(0.0, p99 - d.chunk_length) "
           "/ step)", "need = 1",
           "tests/test_chunks.py::test_recipe_chunks_long_documents_and_covers_the_99th_percentile",
           "the recipe reads one window of long documents"),
    Mutant("textlstm/commands/train.py", "cfg.model.long_text = getattr(dm, \"long_text\", "
           "cfg.model.long_text)", "pass",
           "tests/test_chunks.py::test_auto_recipe_trains_reloads_and_predicts_long_documents",
           "the recipe's decision is not saved with the run"),
    Mutant("textlstm/batches/recipe.py",
           "lr = BASE_LR * math.sqrt(BASE_STEPS / max(1, planned_steps))", "lr = BASE_LR",
           "tests/test_chunks.py::test_auto_learning_rate_falls_as_one_over_the_root_of_the_"
           "planned_steps", "optim.lr=auto ignores the planned steps"),
    Mutant("textlstm/batches/recipe.py", "steps = int(cfg.trainer.max_epochs) * per_epoch",
           "steps = per_epoch + 1",
           "tests/test_chunks.py::test_auto_recipe_trains_reloads_and_predicts_long_documents",
           "optim.lr=auto plans for the wrong number of steps"),
    Mutant("textlstm/training/trainer.py", "max_time=_max_time(t.max_minutes)", "max_time=None",
           "tests/test_chunks.py::test_max_minutes_becomes_the_trainers_wall_clock_budget",
           "trainer.max_minutes is ignored"),
    Mutant("textlstm/training/trainer.py",
           "reload_dataloaders_every_n_epochs=int(varying_epochs(cfg.data))",
           "reload_dataloaders_every_n_epochs=0",
           "tests/test_learning.py::test_every_epoch_is_validated_when_a_token_budget_changes_"
           "the_batch_count", "epochs shorter than the first go unvalidated"),
    Mutant("textlstm/batches/datamodule.py", "sampler.set_epoch(epoch)", "pass",
           "tests/test_learning.py::test_every_epoch_is_validated_when_a_token_budget_changes_"
           "the_batch_count", "the reloaded loader counts epoch 0's batches"),
    Mutant("textlstm/batches/datamodule.py",
           "generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)",
           "generator = None",
           "tests/test_resume.py::test_sigkill_at_an_epoch_end_then_resume_equals_the_"
           "uninterrupted_run[2-budget]", "reloads shift the global RNG and resumed runs drift"),
    Mutant("textlstm/training/checkpoints.py", 'torch.set_rng_state(state["torch"])', "pass",
           "tests/test_resume.py::test_sigkill_at_an_epoch_end_then_resume_equals_the_"
           "uninterrupted_run[2-]", "a resumed run draws other dropout masks (torch generator "
           "not restored)"),
    Mutant("textlstm/batches/sampler.py", "cap, out = bs, []", "cap, out = bs * 64, []",
           "tests/test_data.py::test_token_budget_batches",
           "a token budget lets short texts overflow data.batch_size"),
    Mutant("textlstm/training/trainer.py", "        if self._fitting(trainer):\n"
           "            super().on_load_checkpoint(", "        if True:\n"
           "            super().on_load_checkpoint(",
           "tests/test_learning.py::test_ema_validates_tests_and_ships_the_averaged_weights",
           "with trainer.ema_decay the test split is scored with the raw weights"),
    Mutant("textlstm/training/trainer.py",
           "state_dict())\n    trainer.save_checkpoint(ckpts.best_path())", "state_dict())",
           "tests/test_learning.py::test_average_from_epoch_ships_and_tests_the_mean_of_the_"
           "late_epochs", "trainer.average_from_epoch ships the best epoch, not the average"),
    Mutant("textlstm/training/trainer.py", "joins = trial >= score", "joins = True",
           "tests/test_learning.py::test_a_greedy_soup_adds_epochs_best_first_and_only_while_"
           "validation_does_not_fall", "the greedy soup keeps epochs that lower validation"),
    Mutant("textlstm/training/trainer.py", "key=lambda e: (-self.epochs[e][\"f1\"],",
           "key=lambda e: (self.epochs[e][\"f1\"],",
           "tests/test_learning.py::test_a_greedy_soup_adds_epochs_best_first_and_only_while_"
           "validation_does_not_fall", "the greedy soup tries the worst epochs first"),
    Mutant("textlstm/training/trainer.py",
           "[], \"soup_epochs\": []}  # best.ckpt stays as it is\n        trainer.save_checkpoint(",
           "[], \"soup_epochs\": []}  # best.ckpt stays as it is\n        (",
           "tests/test_learning.py::test_greedy_soup_ships_the_mean_of_the_epochs_it_kept",
           "the greedy soup is cooked but best.ckpt stays the best epoch"),
    Mutant("textlstm/training/trainer.py", "if epoch >= self.start and",
           "if epoch > self.start and",
           "tests/test_learning.py::test_average_from_epoch_ships_and_tests_the_mean_of_the_"
           "late_epochs", "the average leaves out the epoch it should start from"),
    Mutant("textlstm/training/trainer.py", "        if state[\"average\"] is not None:\n"
           "            self.average.load_state_dict(state[\"average\"])",
           "        pass",
           "tests/test_resume.py::test_sigkill_at_an_epoch_end_then_resume_equals_the_"
           "uninterrupted_run[2-average]", "a resumed run forgets the epochs already averaged"),
    Mutant("textlstm/training/trainer.py", "callbacks.append(ShippedAverage(decay=t.ema_decay))",
           "pass",
           "tests/test_learning.py::test_ema_validates_tests_and_ships_the_averaged_weights",
           "trainer.ema_decay is ignored"),
    Mutant("textlstm/models/pooling.py", "torch.cat([self._max(states, mask), self._mean(",
           "torch.cat([self._max(states, mask), self._max(states, mask) + 0 * self._mean(",
           "tests/test_model.py::test_pooling_masks", "max_mean pooling loses the mean"),
    Mutant("textlstm/tokens/tokenize.py", "if _NLP is None or len(_NLP.vocab.strings) > "
           "MAX_STRINGS:", "if _NLP is None:",
           "tests/test_data.py::test_spacys_string_store_stays_bounded_in_a_long_stream",
           "spaCy's strings grow without bound in a server"),
    Mutant("textlstm/training/module.py", "total = adv_loss + (linear - linear.detach())",
           "total = adv_loss",
           "tests/test_adversarial.py::test_the_step_back_propagates_the_clean_and_the_perturbed_loss",
           "adversarial training drops the clean loss's gradients"),
    Mutant("textlstm/training/module.py",
           "r = eps * g / g.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]",
           "r = eps * g / g.norm().clamp_min(1e-12)",
           "tests/test_adversarial.py::test_the_step_back_propagates_the_clean_and_the_perturbed_loss",
           "the adversarial perturbation is normalised over the batch, not per text"),
    Mutant("textlstm/training/module.py", "        if eps > 0:\n            loss, preds, _, clean",
           "        if False:\n            loss, preds, _, clean",
           "tests/test_adversarial.py::test_a_run_with_adversarial_training_uses_it_and_learns",
           "optim.adversarial_eps is ignored"),
    Mutant("textlstm/models/classifier.py", "ids = ids.masked_fill(drop, 1)", "pass",
           "tests/test_model.py::test_word_dropout_reads_words_as_unk_while_training_only",
           "model.embedding.word_dropout does nothing"),
    Mutant("textlstm/cli.py", "        _require_data_files(cfg.data)\n", "",
           "tests/test_end_to_end.py::test_cli_errors_are_one_line_exit_2",
           "a missing data file is found only after torch has loaded"),
    Mutant("textlstm/serving/loader.py",
           'if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():',
           'if accelerator in ("gpu", "cuda") or torch.cuda.is_available():',
           "tests/test_end_to_end.py::test_a_run_trained_on_a_gpu_predicts_on_a_machine_without_one",
           "a run trained on a GPU fails on a machine without one"),
    Mutant("textlstm/models/explain.py", "    if abs(float(delta[0])) > TOLERANCE * abs(fx):",
           "    if False:",
           "tests/test_explain.py::test_a_logit_that_jumps_along_the_path_is_reported_not_hidden",
           "incomplete attributions are not reported"),
    Mutant("textlstm/tracking/attributions.py",
           "max_steps, incomplete=gaps)", "max_steps)",
           "tests/test_explain.py::test_a_report_says_once_how_many_error_explanations_are_incomplete",
           "the report warns once per incomplete explanation, not once for all"),
    Mutant("textlstm/tracking/report.py", "    if note:", "    if False:",
           "tests/test_explain.py::test_a_report_says_once_how_many_error_explanations_are_incomplete",
           "report.html shades approximate attributions without saying they are approximate"),
    Mutant("textlstm/training/progress.py", "if sys.stdout.isatty() else [EpochLines()]",
           "if True else [EpochLines()]",
           "tests/test_console.py::test_output_that_is_not_a_terminal_gets_one_line_per_epoch",
           "a log file gets the live progress bar's redraws, not one line per epoch"),
    Mutant("textlstm/tokens/tokenize.py", "tokenizer.pipe(map(encodable, texts)",
           "tokenizer.pipe(texts",
           "tests/test_serve.py::test_odd_but_valid_texts_get_answers_like_the_predictor",
           "a lone UTF-16 surrogate in a request is a 500"),
    Mutant("textlstm/tracking/audit_page.py", 'f"{_noise_table(noise)}"', '""',
           "tests/test_audit.py::"
           "test_fast_audit_recovers_injected_flips_without_reading_the_test_split",
           "audit.html leaves out the per-class noise table"),
    Mutant("textlstm/commands/benchmarks.py", "parents[2]  # textlstm/commands/",
           "parents[1]  # textlstm/commands/",
           "tests/test_architecture.py::test_the_benchmark_verbs_run_the_checkouts_benchmarks",
           "the benchmark verbs look for benchmarks/ in the wrong folder"),
    Mutant("textlstm/serving/server.py",
           "if self.max_queue is not None and self.in_flight and \\",
           "if False and \\",
           "tests/test_serve.py::test_a_full_server_answers_503_with_retry_after_at_once",
           "a full server queues every request instead of answering 503"),
    Mutant("textlstm/commands/serve.py", 'if info["engine"] == "torch":', "if True:",
           "tests/test_export.py::test_serving_a_bundle_loads_neither_torch_nor_lightning",
           "serving a bundle imports torch"),
    Mutant("textlstm/tracking/wandb_logger.py", '    logger._wandb_init.pop("anonymous", None)\n',
           "", "tests/test_dashboard.py::"
           "test_the_wandb_run_starts_without_the_deprecated_anonymous_setting",
           "every W&B run warns about Lightning's deprecated anonymous setting"),
    Mutant("textlstm/models/predictor.py", "    torch.backends.cudnn.allow_tf32 = False\n", "",
           "tests/test_model.py::test_predictions_run_the_rnn_in_full_fp32",
           "GPU predictions depend on their batch (TF32)"),
    # ---- label audit and active learning
    Mutant("textlstm/commands/audit.py",
           "seen, held = np.flatnonzero(fold_of != k), np.flatnonzero(fold_of == k)",
           "seen, held = np.arange(len(fold_of)), np.flatnonzero(fold_of == k)",
           "tests/test_audit.py::test_out_of_fold_probabilities_never_come_from_a_model_that_"
           "saw_the_text", "audit scores texts with a model that trained on them"),
    Mutant("textlstm/data/sources.py", 'wanted = SPLITS if test else ("train", "validation")',
           "wanted = SPLITS",
           "tests/test_audit.py::test_fast_audit_recovers_injected_flips_without_reading_the_"
           "test_split", "audit reads the test split"),
    Mutant("textlstm/commands/audit.py", "        if same:", "        if False:",
           "tests/test_audit.py::test_bad_inputs_get_one_line_and_exit_2",
           "audit accepts the test file as training data"),
    Mutant("textlstm/commands/suggest.py", 'return np.argsort(margin, kind="stable"), margin',
           'return np.argsort(-margin, kind="stable"), margin',
           "tests/test_audit.py::test_suggest_ranks_by_breaking_ties_and_random_is_seeded",
           "breaking-ties suggests the most certain texts first"),
    Mutant("textlstm/commands/suggest.py", "d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))",
           "d2 = ((x - x[i]) ** 2).sum(1)",
           "tests/test_audit.py::test_diverse_ties_spreads_its_picks_over_the_closest_calls",
           "diverse-ties measures distance to the last pick only"),
    Mutant("textlstm/commands/suggest.py",
           'cand = np.argsort(margin, kind="stable")[: CANDIDATES * k]',
           'cand = np.argsort(margin, kind="stable")[: 2 * CANDIDATES * k]',
           "tests/test_audit.py::test_diverse_ties_spreads_its_picks_over_the_closest_calls",
           "diverse-ties looks past its candidates"),
    Mutant("textlstm/commands/suggest.py", "rest = rest[~np.isin(rest, first)]", "rest = rest",
           "tests/test_audit.py::test_diverse_ties_spreads_its_picks_over_the_closest_calls",
           "diverse-ties ranks its picks twice"),
    Mutant("textlstm/models/predictor.py", "vecs[chunk] = h.float().cpu()",
           "vecs[chunk] = h.float().cpu().flip(0)",
           "tests/test_audit.py::test_suggest_diverse_ties_reads_the_networks_text_vectors",
           "text vectors come back in the wrong rows"),
    Mutant("textlstm/data/sources.py", 'if cfg.get("extra_train_file"):', "if False:",
           "tests/test_audit.py::test_extra_train_file_rows_reach_the_training_split_only",
           "data.extra_train_file is ignored"),
    # ---- model.wide: the TF-IDF part
    Mutant("textlstm/models/wide.py",
           "tf = torch.where(counts > 0, 1 + counts.clamp(min=1).log(), torch.zeros_like(counts))",
           "tf = counts", W + "test_features_are_scikit_learns_sublinear_tfidf_in_both_paths",
           "the TF-IDF part's dense rows use raw counts, not 1 + ln(count)"),
    Mutant("textlstm/training/wide.py", "sample_w = (n / (num_classes * counts))[y]",
           "sample_w = torch.ones_like(y, dtype=torch.float)",
           W + "test_the_fit_is_scikit_learns_class_balanced_logistic_regression",
           "the TF-IDF fit is not class-balanced"),
    Mutant("textlstm/models/wide.py",
           "both = torch.stack([deep + math.log(w), wide + math.log(1 - w)])",
           "both = torch.stack([deep + math.log(1 - w), wide + math.log(w)])",
           W + "test_the_mixture_is_the_weighted_mean_of_both_probabilities",
           "the mixture gives each part the other's share"),
    Mutant("textlstm/batches/datamodule.py", "counts, 1 if self.wide_words else c.min_freq,",
           "counts, c.min_freq,",
           W + "test_a_run_learns_classes_from_words_the_network_cannot_read",
           "model.wide's vocabulary drops the words seen once"),
    Mutant("textlstm/training/wide.py",
           "if f >= f1s[best] - float((boot[best] - boot[i]).std()):", "if f >= f1s[best]:",
           W + "test_choices_take_the_first_candidate_within_one_standard_error_of_the_best",
           "C and the share go to the top validation score, noise or not"),
    Mutant("textlstm/training/wide.py",
           "pick = top if one_se([guesses[0], guesses[top]], y, num_classes)[0] else 0",
           "pick = top",
           W + "test_choices_take_the_first_candidate_within_one_standard_error_of_the_best",
           "the share goes to the top validation score even within the TF-IDF part's noise"),
    Mutant("textlstm/training/wide.py", "seen = (pred + true) > 0",
           "seen = torch.ones_like(tp, dtype=torch.bool)",
           W + "test_choices_take_the_first_candidate_within_one_standard_error_of_the_best",
           "resampled macro-F1 averages over classes a resample neither holds nor predicts"),
    Mutant("textlstm/training/wide.py", "wide.mix.fill_(mix)", "wide.mix.fill_(1.0)",
           W + "test_a_run_learns_classes_from_words_the_network_cannot_read",
           "the chosen share is not kept: the network answers alone"),
    Mutant("textlstm/models/classifier.py",
           "return ids if self.wide is None else ids.masked_fill(ids >= self.network_vocab, 1)",
           "return ids", W + "test_attributions_with_both_parts_add_up_to_their_weighted_logits",
           "the network reads the TF-IDF part's own words"),
    Mutant("textlstm/serving/export.py",
           "return logits if self.wide is None else self.wide.combine(logits, ids, True)",
           "return logits", W + "test_a_wide_run_explains_and_exports_its_mixture",
           "a bundle answers with the network alone"),
    Mutant("textlstm/models/explain.py", "return m * attr + (1 - m) * lin, m * delta",
           "return attr, delta",
           W + "test_attributions_with_both_parts_add_up_to_their_weighted_logits",
           "explanations leave out the TF-IDF part's words"),
    Mutant("textlstm/tracking/report.py", "*_results(m), *_wide(m), *_calibration(m)]",
           "*_results(m), *_calibration(m)]",
           W + "test_a_wide_run_shows_its_share_on_the_dashboard_and_the_report",
           "report.html does not say how much the answers owe to the TF-IDF part"),
    Mutant("textlstm/tracking/outputs.py",
           'if "wide" in metrics:  # model.wide: how much the answers owe to the TF-IDF part',
           "if False:",
           W + "test_a_wide_run_shows_its_share_on_the_dashboard_and_the_report",
           "the W&B summary lacks the TF-IDF part's share"),
    Mutant("textlstm/commands/suggest.py",
           'if cfg is not None and cfg.model.get("wide", "none") != "tfidf":', "if False:",
           W + "test_suggest_ranks_with_the_mixture_and_says_when_a_run_lacks_it",
           "suggest does not say that a run without the TF-IDF part ranks worse"),
    # ---- pretraining and model.init_from
    Mutant("textlstm/models/lm.py", "bwd = self._nll(states[:, 1:, H:], ids[:, :-1])",
           "bwd = self._nll(states[:, :-1, H:], ids[:, 1:])",
           P + "test_on_random_words_neither_direction_beats_the_unigram",
           "the backward half predicts the next token instead of the previous one"),
    Mutant("textlstm/models/lm.py", "fwd = self._nll(states[:, :-1, :H], ids[:, 1:])",
           "fwd = self._nll(states[:, 1:, :H], ids[:, 1:])",
           P + "test_on_random_words_neither_direction_beats_the_unigram",
           "the forward half predicts the token it has just read"),
    Mutant("textlstm/commands/pretrain.py", "extra = [x for x in extra if len(x)]", "extra = []",
           P + "test_pretraining_brings_held_out_perplexity_well_below_the_unigram",
           "data.unlabeled_file's texts are left out of the stream"),
    Mutant("textlstm/training/build.py",
           'init_from_pretrained(net, dm.vocab, cfg) if cfg.model.get("init_from") else None',
           "None", P + "test_init_from_copies_the_word_vectors_and_the_encoder",
           "init_from copies nothing"),
    Mutant("textlstm/models/lm.py",
           "pairs = [(i, lm_index[t]) for i, t in enumerate(itos) if i != 0 and t in lm_index]",
           "pairs = [(i, i) for i, t in enumerate(itos) if i != 0 and t in lm_index]",
           P + "test_init_from_copies_the_word_vectors_and_the_encoder",
           "init_from copies word vectors by id instead of by token"),
    Mutant("textlstm/models/lm.py", "net.encoder.load_state_dict(encoder, strict=True)", "pass",
           P + "test_init_from_copies_the_word_vectors_and_the_encoder",
           "init_from leaves the encoder as initialised"),
    Mutant("textlstm/models/lm.py", "    if not same:", "    if False:",
           P + "test_an_encoder_of_another_shape_ends_in_one_line",
           "init_from of another encoder shape ends in a traceback"),
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
