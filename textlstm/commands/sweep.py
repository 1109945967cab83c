"""`textlstm sweep configs/sweeps/<name>.yaml`: a hyper-parameter search over config keys.

A sweep file names a base config, a metric, a trial budget and the search space, one entry per
config key: `{low, high[, log]}` for numbers (int when both bounds are ints), `{choices: [...]}`
otherwise. Every trial is an ordinary `textlstm train` run (its own run directory and W&B run),
all in one W&B group.

- Offline (the default, no account needed): an Optuna study (TPE sampler, seeded) in this
  process; results go to `runs/sweeps/<name>/<timestamp>/`: `summary.csv` (one row per trial),
  `best.yaml` (the best trial's full config, ready for `textlstm train --config`), and
  `report.html` comparing the trials.
- Online (`wandb.mode=online` with a W&B key): a W&B sweep (Bayesian search) created from the
  same file and run here by `wandb.agent`, so the trials appear as a sweep on the dashboard.
"""

from __future__ import annotations

import csv
import logging
from datetime import datetime
from pathlib import Path

import yaml

from textlstm.core.config import load_config, to_yaml
from textlstm.core.errors import UserError
from textlstm.core.io import atomic_write, write_text
from textlstm.core.runfolder import read_metrics

log = logging.getLogger("textlstm")

METRICS = {"val/f1_macro": ("f1_macro", "maximize"), "val/acc": ("accuracy", "maximize"),
           "val/loss": ("loss", "minimize")}


def _read_spec(path: Path) -> dict:
    """The sweep file as a mapping with only the known top-level keys."""
    if not path.is_file():
        raise UserError(f"sweep file {path} does not exist; use one of configs/sweeps/*.yaml.")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise UserError(f"sweep file {path} is not valid YAML ({str(e).splitlines()[0]}); fix its "
                        "syntax.") from None
    if not isinstance(spec, dict):
        raise UserError(f"sweep file {path} must be a mapping with config, metric, trials and "
                        "parameters.")
    unknown = set(spec) - {"config", "metric", "trials", "seed", "parameters", "name"}
    if unknown:
        raise UserError(f"sweep file {path} has unknown key(s) {', '.join(sorted(unknown))}; "
                        "use config, metric, trials, seed, parameters, name.")
    return spec


def _check_parameters(params: dict, base: Path | None) -> None:
    """Each parameter has a range or choices, and names a real config key of the right type."""
    for key, space in params.items():
        ok = isinstance(space, dict) and (("choices" in space and isinstance(space["choices"], list)
                                           and space["choices"]) or {"low", "high"} <= set(space))
        if not ok:
            raise UserError(f"sweep parameter {key} needs {{low, high}} or {{choices: [...]}}; got "
                            f"{space!r}.")
    # every key must be a real config key with values of the right type: check both ends now
    probe = []
    for key, space in params.items():
        for v in space.get("choices", [space.get("low"), space.get("high")]):
            probe.append(f"{key}={_fmt(v)}")
    for item in probe:
        load_config(base, [item])  # raises the usual one-line error (did you mean ...)


def load_sweep(path: str | Path) -> dict:
    path = Path(path)
    spec = _read_spec(path)
    if spec.get("metric", "val/f1_macro") not in METRICS:
        raise UserError(f"sweep metric '{spec.get('metric')}' is not supported; use "
                        f"{', '.join(METRICS)}.")
    params = spec.get("parameters")
    if not isinstance(params, dict) or not params:
        raise UserError(f"sweep file {path} has no parameters; give at least one config key to "
                        "search.")
    base = (path.parent / spec.get("config", "")).resolve() if spec.get("config") else None
    if base is not None and not base.is_file():
        raise UserError(f"sweep file {path}: its config {spec['config']} does not exist (paths are "
                        "relative to the sweep file).")
    _check_parameters(params, base)
    return {"name": spec.get("name") or path.stem, "base": base,
            "metric": spec.get("metric", "val/f1_macro"),
            "trials": int(spec.get("trials", 8)), "seed": int(spec.get("seed", 0)),
            "parameters": params}


def _fmt(v) -> str:
    return "null" if v is None else str(v).lower() if isinstance(v, bool) else str(v)


def _suggest(trial, key: str, space: dict):
    if "choices" in space:
        return trial.suggest_categorical(key, space["choices"])
    low, high = space["low"], space["high"]
    if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
        return trial.suggest_int(key, low, high, log=bool(space.get("log")))
    return trial.suggest_float(key, float(low), float(high), log=bool(space.get("log")))


def run_sweep(path: str | Path, overrides: list[str], trials: int | None = None) -> Path:
    if trials is not None and trials < 1:
        raise UserError("--trials must be at least 1.")
    spec = load_sweep(path)
    n = trials or spec["trials"]
    probe = load_config(spec["base"], overrides)
    from textlstm.tracking.wandb_logger import resolve_mode

    if resolve_mode(probe.wandb.mode) == "online":
        return _wandb_sweep(spec, overrides, n)
    return _optuna_sweep(spec, overrides, n, probe)


def _trial_config(spec: dict, overrides: list[str], params: dict, index: int, group: str):
    items = [*overrides, *(f"{k}={_fmt(v)}" for k, v in params.items()),
             f"wandb.group={group}", f"name={group}"]  # runs/sweep-<name>/<timestamp>
    return load_config(spec["base"], items)


def _optuna_sweep(spec: dict, overrides: list[str], n: int, probe) -> Path:
    import optuna

    from textlstm.commands.train import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    key, direction = METRICS[spec["metric"]]
    group = f"sweep-{spec['name']}"
    out = Path(probe.run_root) / "sweeps" / spec["name"] / datetime.now().strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=False)
    rows: list[dict] = []

    def objective(trial) -> float:
        params = {k: _suggest(trial, k, s) for k, s in spec["parameters"].items()}
        cfg = _trial_config(spec, overrides, params, trial.number, group)
        log.info("sweep %s: trial %d/%d %s", spec["name"], trial.number + 1, n, params)
        run_dir = train(cfg)
        m = read_metrics(run_dir)
        value = m["validation"][key]
        # a multi-label run has no accuracy; its subset accuracy is the nearest (whole set right)
        acc = m["test"].get("accuracy", m["test"].get("subset_accuracy"))
        rows.append({"trial": trial.number, **params, spec["metric"]: value,
                     "test/accuracy": acc, "test/f1_macro": m["test"]["f1_macro"],
                     "seconds": m["train"]["seconds"], "run_dir": str(run_dir)})
        _write_summary(out, rows)
        return value

    study = optuna.create_study(direction=direction,
                                sampler=optuna.samplers.TPESampler(seed=spec["seed"]),
                                study_name=spec["name"])
    study.optimize(objective, n_trials=n)
    best = rows[study.best_trial.number]
    best_cfg = _trial_config(spec, overrides, study.best_trial.params, study.best_trial.number,
                             group)
    best_cfg.name = spec["name"] + "-best"
    write_text(out / "best.yaml", f"# best of {n} trials of {spec['name']} ({spec['metric']} = "
                                   f"{best[spec['metric']]:.4f}, run {best['run_dir']})\n# train "
                                   f"it: textlstm train --config {out / 'best.yaml'}\n"
                                   + to_yaml(best_cfg))
    from textlstm.tracking.report import compare_report

    compare_report([r["run_dir"] for r in rows], out / "report.html")
    return out


def _write_summary(out: Path, rows: list[dict]) -> None:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_write(out / "summary.csv", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def _wandb_sweep(spec: dict, overrides: list[str], n: int) -> Path:
    """The same search as a W&B sweep; each agent call trains one trial with the sampled keys."""
    import wandb

    from textlstm.commands.train import train

    def dist(space: dict) -> dict:
        if "choices" in space:
            return {"values": list(space["choices"])}
        ints = all(isinstance(space[b], int) for b in ("low", "high"))
        kind = ("q_log_uniform_values" if ints else "log_uniform_values") if space.get("log") else \
            ("int_uniform" if ints else "uniform")
        return {"distribution": kind, "min": space["low"], "max": space["high"]}

    probe = load_config(spec["base"], overrides)
    key, direction = METRICS[spec["metric"]]
    sweep_cfg = {"name": spec["name"], "method": "bayes",
                 "metric": {"name": f"validation/{key}", "goal": direction},
                 "parameters": {k: dist(s) for k, s in spec["parameters"].items()}}
    sweep_id = wandb.sweep(sweep_cfg, project=probe.wandb.project, entity=probe.wandb.entity)
    counter = {"i": 0}

    def one_trial():
        run = wandb.init()  # the agent hands the sampled values in run.config
        params = {k: run.config[k] for k in spec["parameters"]}
        cfg = _trial_config(spec, overrides, params, counter["i"], f"sweep-{spec['name']}")
        counter["i"] += 1
        train(cfg)  # Lightning's WandbLogger reuses the active run; train() finishes it

    wandb.agent(sweep_id, function=one_trial, count=n, project=probe.wandb.project,
                entity=probe.wandb.entity)
    log.info("W&B sweep %s finished (%d trials)", sweep_id, n)
    return Path(probe.run_root) / "sweeps" / spec["name"]

