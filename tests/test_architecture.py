"""The package's shape: imports flow down the stages, dependencies are declared and true,
runs made by an earlier version keep working, and a model of another architecture version is
refused."""

import ast
import json
import re
import shutil
from importlib import metadata
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli

PKG = ROOT / "textlstm"
# the data's way through the package; a module may import from its own stage or earlier ones
STAGES = ["core", "data", "tokens", "batches", "models", "training", "tracking",
          "serving", "commands",
          "cli"]
OLD_RUN = Path(__file__).parent / "fixtures" / "run_made_by_0.1.0"


def _stage(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "textlstm" or len(parts) == 1:
        return None  # the package root (`__version__`, the lazy `load`) sits outside the stages
    return STAGES.index(parts[1]) if parts[1] in STAGES else None


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _is_module(name: str) -> bool:
    """`textlstm.a.b` is a file or a package of the package (not a name defined in one)."""
    where = ROOT.joinpath(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def _targets(module: str, is_package: bool, node: ast.AST) -> list[str]:
    """The textlstm modules an import statement in `module` loads. `from textlstm.x import y`
    is the module `textlstm.x.y` when that is a module and `textlstm.x` when `y` is a name in
    it, so two modules of one stage that import each other are seen at every stage."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "textlstm"]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: `from . import x` in a.b.c is a.b.x (a.b.c.x in a package a.b.c)
        anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
        base = ".".join(anchor + ([base] if base else []))
    if base.split(".")[0] != "textlstm":
        return []
    return [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]


def _imports_of(files: dict[str, str]) -> list[tuple[str, str]]:
    """(importing module, imported textlstm module) for every import, also the ones inside
    functions; `files`: module name -> source (a package's own module name ends in
    `.__init__`)."""
    found = []
    for name, source in files.items():
        is_package = name.endswith(".__init__")
        module = name.removesuffix(".__init__")
        for node in ast.walk(ast.parse(source)):
            found += [(module, t) for t in _targets(module, is_package, node)]
    return found


def _imports() -> list[tuple[str, str]]:
    return _imports_of({".".join(p.relative_to(ROOT).with_suffix("").parts):
                        p.read_text(encoding="utf-8") for p in PKG.rglob("*.py")})


def _cycles(imports: list[tuple[str, str]]) -> list[str]:
    """The modules that reach themselves through their imports."""
    graph: dict[str, set[str]] = {}
    for a, b in imports:
        graph.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and not seen.add(nxt) and reaches(nxt, goal, seen)):
                return True
        return False

    return sorted(m for m in graph if reaches(m, m, set()))


def test_every_module_sits_in_a_stage():
    loose = [p.name for p in PKG.glob("*.py") if p.stem not in ("__init__", "__main__", "cli")]
    assert loose == [], f"modules outside the stage folders: {loose}"
    folders = sorted(p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert folders == sorted(s for s in STAGES if s != "cli")


def test_imports_only_flow_down_the_stages():
    upward = [(a, b) for a, b in _imports()
              if _stage(a) is not None and _stage(b) is not None and _stage(b) > _stage(a)]
    assert upward == [], "imports that reach back up the stages:\n" + "\n".join(
        f"{a} -> {b}" for a, b in upward
    )


def test_no_import_cycles_between_modules():
    cycles = _cycles(_imports())
    assert cycles == [], f"modules on an import cycle: {cycles}"


def test_imports_resolve_to_modules_so_a_cycle_within_a_stage_is_seen():
    """The graph the two tests above read: a name imported from a package is its module, a
    name defined in a module is that module, relative imports count, and two modules of one
    stage importing each other are a cycle (a planted pair, so the check cannot go blind)."""
    files = {"textlstm.models.predictor": "from textlstm.models import classifier",
             "textlstm.models.classifier": "from textlstm.models.predictor import Predictor",
             "textlstm.core.__init__": "from . import io\nfrom .errors import UserError",
             "textlstm.batches.collate": "from ..core.io import write_json"}
    assert sorted(_imports_of(files)) == [
        ("textlstm.batches.collate", "textlstm.core.io"),
        ("textlstm.core", "textlstm.core.errors"), ("textlstm.core", "textlstm.core.io"),
        ("textlstm.models.classifier", "textlstm.models.predictor"),
        ("textlstm.models.predictor", "textlstm.models.classifier")]
    assert _cycles(_imports_of(files)) == ["textlstm.models.classifier",
                                           "textlstm.models.predictor"]


def test_the_map_names_every_stage_and_verb():
    """docs/architecture.md's drawing names every stage folder and, in the commands/ entry,
    every `commands/` module; the page names every CLI verb; the tests it cites exist."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawing = doc.split("```")[1]
    missing = [f"{s}/" for s in STAGES[:-1] if f"{s}/" not in drawing]
    verbs_entry = drawing[drawing.index("commands/"):drawing.index("serving/")]
    missing += [p.stem for p in (PKG / "commands").glob("*.py")
                if p.stem != "__init__" and not re.search(rf"\b{p.stem}\b", verbs_entry)]
    cli = ast.parse((PKG / "cli.py").read_text(encoding="utf-8"))
    verbs = [n.args[0].value for n in ast.walk(cli) if isinstance(n, ast.Call)
             and getattr(n.func, "attr", "") == "add_parser"]
    missing += [v for v in verbs if v not in doc and v.replace("-", "_") not in doc]
    assert missing == [], f"docs/architecture.md does not name: {missing}"
    for path, test in re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", doc):
        assert f"def {test}(" in (ROOT / path).read_text(encoding="utf-8"), f"{path}::{test}"
    for test in re.findall(r"`(test_\w+)`", doc):
        assert f"def {test}(" in Path(__file__).read_text(encoding="utf-8"), test


def _declared() -> list:
    import tomllib
    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [Requirement(d) for d in deps]


def test_declared_dependency_bounds_hold_for_the_installed_versions():
    for req in _declared():
        installed = metadata.version(req.name)
        assert req.specifier.contains(installed,
                                      prereleases=True), f"{req} but {installed} is installed"


def test_every_third_party_import_is_declared():
    declared = {r.name.lower().replace("_", "-") for r in _declared()} | {"textlstm"}
    dists = metadata.packages_distributions()
    missing = set()
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                else []
            )
            for name in names:
                top = name.split(".")[0]
                for dist in dists.get(top, []):
                    if dist.lower().replace("_", "-") not in declared:
                        missing.add(f"{top} ({dist}) in {path.relative_to(ROOT)}")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"


def test_shipped_configs_resolve_from_the_package():
    from textlstm.core.config import load_config, preset_path

    for name in ("bbc_news", "tweets_sentiment", "sweeps/bbc_news"):
        assert preset_path(name).is_file()
    assert load_config(preset_path("tweets_sentiment")).data.source == "tweets_sentiment"


# ---------------------------------------------------------------- runs made before a change


@pytest.fixture
def old_run(tmp_path):
    run = tmp_path / "old_run"
    shutil.copytree(OLD_RUN, run)
    return run


def test_a_run_made_by_an_earlier_version_predicts_as_it_did(old_run):
    import textlstm

    expected = [
        json.loads(x) for x in (OLD_RUN / "expected_predictions.jsonl").read_text().splitlines()
    ]
    got = textlstm.load(old_run).predict([e["text"] for e in expected])
    for e, g in zip(expected, got, strict=True):
        assert g["label"] == e["label"]
        for label, p in e["probabilities"].items():
            assert g["probabilities"][label] == pytest.approx(p, abs=2e-6)


def test_a_run_made_by_an_earlier_version_evaluates_and_reports(old_run, tmp_path):
    code, out, err = run_cli("evaluate", old_run, "--data", old_run / "test.csv",
                             f"data.data_dir={tmp_path / 'd'}")
    assert code == 0, err
    expected = json.loads((OLD_RUN / "expected_evaluate.json").read_text())
    got = json.loads(out)
    assert got["accuracy"] == pytest.approx(expected["accuracy"])
    assert got["confusion_matrix"] == expected["confusion_matrix"]
    code, out, err = run_cli("report", old_run)
    assert code == 0, err
    assert (
        out.strip() == str(old_run / "report.html")
        and "metrics" in (old_run / "report.html").read_text()
    )


def test_a_checkpoint_of_another_architecture_version_is_refused(old_run):
    ckpt_path = old_run / "checkpoints" / "best.ckpt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    from textlstm.models.classifier import ARCH_VERSION, arch_version_of

    assert arch_version_of(ckpt) == 1  # made before versions were stored: version 1
    ckpt["textlstm"] = {"arch_version": ARCH_VERSION + 1}
    torch.save(ckpt, ckpt_path)
    code, out, err = run_cli("predict", old_run, "a text")
    assert code == 2 and out == ""
    assert (
        err.count("\n") == 1
        and f"architecture version {ARCH_VERSION + 1}" in err
        and "retrain" in err
    )


def test_new_checkpoints_store_the_architecture_version(tiny_run):
    from textlstm import __version__
    from textlstm.models.classifier import ARCH_VERSION

    for name in ("best", "last"):
        ckpt = torch.load(tiny_run / "checkpoints" / f"{name}.ckpt", map_location="cpu",
                          weights_only=True)
        assert ckpt["textlstm"] == {"arch_version": ARCH_VERSION, "version": __version__}


@pytest.mark.slow  # builds and installs a wheel: about 30 s on a quiet machine
def test_an_installed_wheel_finds_its_configs_outside_a_checkout(tmp_path):
    """Presets read the shipped configs from the installed package, not from a source
    checkout's working directory; the benchmarks, which the wheel does not carry, say in one
    sentence where they run."""
    import subprocess
    import sys

    wheels, target, elsewhere = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # built from a copy: setuptools writes build/ and *.egg-info into the source tree
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "data", "runs", "build", "*.egg-info", "wandb", "__pycache__", ".*_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(src)], check=True, capture_output=True)
    wheel = next(wheels.glob("textlstm-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target),
                    str(wheel)], check=True, capture_output=True)
    assert not (target / "benchmarks").exists()  # benchmark code stays in the checkout
    code = ("import textlstm.core.config as c, textlstm.commands.benchmarks as b; "
            "print(c.__file__); print(c.preset_path('tweets_sentiment')); "
            "print(c.load_config(c.preset_path('bbc_news')).data.source)\n"
            "try:\n    b.benchmark('bench')\n"
            "except Exception as e:\n    print(type(e).__name__, str(e).replace(' ', '_'))")
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0, out.stderr
    module, preset, source, error, message = out.stdout.split()
    assert (
        module.startswith(str(target)) and preset.startswith(str(target)) and source == "bbc_news"
    )
    assert error == "UserError" and "source_checkout" in message
    cli = subprocess.run([sys.executable, "-m", "textlstm", "bench"], cwd=elsewhere,
                         capture_output=True, text=True, env=env)
    assert cli.returncode == 2 and "source checkout" in cli.stderr
    assert len(cli.stderr.strip().splitlines()) == 1 and "Traceback" not in cli.stderr


def test_the_benchmark_verbs_run_the_checkouts_benchmarks():
    from textlstm.commands.benchmarks import benchmark

    for name in ("bench", "bench_scale", "serve_bench"):
        assert Path(benchmark(name).__file__).parent == ROOT / "benchmarks"
