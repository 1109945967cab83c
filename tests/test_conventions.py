"""The two file conventions of docs/architecture.md, read from the package's source (AST):
files are written through `core.io`, and a run folder's files are read through
`core.runfolder`. Each exception is listed here with its reason; an entry no longer needed
fails too, so the lists only shrink."""

import ast
from pathlib import Path

from conftest import ROOT

PKG = ROOT / "textlstm"
RUN_FILES = {"config.yaml", "vocab.json", "labels.json", "metrics.json"}
RUN_FILE_NAMES = {"CONFIG", "VOCAB", "LABELS", "METRICS"}  # their constants in core.runfolder
# the calls a run file's path may be handed to outside core.runfolder: writers (core.io, and
# Vocab.save, which writes through it), existence checks, and Vocab.load (tokens own the
# vocabulary's format, and core may not import tokens)
PATH_OK = {"write_json", "write_text", "atomic_write", "save", "is_file", "exists"}

# file -> why it writes without core.io (none: the benchmark harnesses live in benchmarks/)
WRITES_ALLOWED: dict[str, str] = {}
# file -> why it names a run folder's files, or loads a checkpoint, outside core.runfolder
READS_ALLOWED = {
    "textlstm/serving/bundle.py": "a bundle's own vocab.json and labels.json (not a run folder; "
                                  "parsed by Vocab.load and runfolder.read_labels)",
    "textlstm/training/trainer.py": "checkpoint_epoch: torch.load(weights_only=True) of the "
                                    "checkpoint Lightning just wrote",
}


def _sources() -> dict[str, ast.Module]:
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text(encoding="utf-8"))
            for p in sorted(PKG.rglob("*.py"))}


def _name(func: ast.expr) -> str:
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _buffers(tree: ast.Module) -> set[str]:
    """Names bound to something that is not a path: `with atomic_write(...) as fh` and
    `buf = io.BytesIO()` (or StringIO)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.withitem) and isinstance(node.context_expr, ast.Call) \
                and _name(node.context_expr.func) == "atomic_write" \
                and isinstance(node.optional_vars, ast.Name):
            names.add(node.optional_vars.id)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                and _name(node.value.func) in ("BytesIO", "StringIO"):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _writes(tree: ast.Module) -> list[str]:
    """Calls that write a file without core.io: open() for writing (os.devnull is no file),
    Path.write_text/write_bytes, and json.dump, savefig or torch.save onto anything but an
    atomic_write handle or an in-memory buffer."""
    buffers, found = _buffers(tree), []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name, args = _name(node.func), node.args
        if name == "open" and isinstance(node.func, ast.Name):
            mode = args[1] if len(args) > 1 else next(
                (k.value for k in node.keywords if k.arg == "mode"), ast.Constant("r"))
            to_null = args and ast.unparse(args[0]) == "os.devnull"
            if not to_null and not (isinstance(mode, ast.Constant)
                                    and not set(str(mode.value)) & set("wax+")):
                found.append(f"{node.lineno}: open(..., {ast.unparse(mode)})")
        elif name == "open" and any(_write_mode(a) for a in [*args, *(k.value for k in
                                                                     node.keywords)]):
            found.append(f"{node.lineno}: {ast.unparse(node.func)}(..., write mode)")
        elif name in ("write_text", "write_bytes") and isinstance(node.func, ast.Attribute):
            found.append(f"{node.lineno}: .{name}(")
        elif name in ("dump", "savefig", "save") and _name(getattr(node.func, "value", None)) in (
                "json", "torch") or name == "savefig":
            target = args[1] if name in ("dump", "save") and len(args) > 1 else (
                args[0] if name == "savefig" and args else None)
            if not (isinstance(target, ast.Name) and target.id in buffers):
                found.append(f"{node.lineno}: {ast.unparse(node.func)}(")
    return _in_order(found)


def _write_mode(arg: ast.expr) -> bool:
    """A mode string of `Path.open`, `gzip.open`, ... that writes."""
    mode = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else ""
    return bool(mode) and set(mode) <= set("rwxabt+") and bool(set(mode) & set("wax+"))


def _run_file_reads(tree: ast.Module) -> list[str]:
    """Places naming a run folder's file ("metrics.json", runfolder.METRICS) other than as
    the path handed to a writer, an existence check or Vocab.load; and torch.load anywhere."""
    imported = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and n.module == "textlstm.core.runfolder" for a in n.names}
    parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    found = []
    for node in ast.walk(tree):
        named = (isinstance(node, ast.Constant) and node.value in RUN_FILES
                 or isinstance(node, ast.Name) and node.id in RUN_FILE_NAMES & imported
                 or isinstance(node, ast.Attribute) and node.attr in RUN_FILE_NAMES
                 and _name(node.value) == "runfolder")
        if named:
            call = parents.get(node)
            while call is not None and not isinstance(call, ast.Call):
                call = parents.get(call)
            ok = call is not None and (_name(call.func) in PATH_OK or (
                _name(call.func) == "load" and _name(getattr(call.func, "value", None)) == "Vocab"))
            if not ok:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
            found.append(f"{node.lineno}: torch.load(")
    return _in_order(found)


def _in_order(found: list[str]) -> list[str]:
    return sorted(found, key=lambda hit: int(hit.split(":")[0]))


def _check(finder, exempt: set[str], allowed: dict[str, str]) -> None:
    found = {f: hits for f, tree in _sources().items() if f not in exempt
             for hits in [finder(tree)] if hits}
    unexplained = {f: hits for f, hits in found.items() if f not in allowed}
    assert unexplained == {}, f"not through the convention: {unexplained}"
    stale = sorted(set(allowed) - set(found))
    assert stale == [], f"allowed but no longer needed (remove them from the list): {stale}"


def test_files_are_written_through_core_io():
    _check(_writes, {"textlstm/core/io.py"}, WRITES_ALLOWED)


def test_run_folders_are_read_through_core_runfolder():
    _check(_run_file_reads, {"textlstm/core/runfolder.py"}, READS_ALLOWED)


def test_the_source_checks_see_what_they_look_for():
    """Planted code, so neither check can go blind."""
    writes = ast.parse("import json, torch\nopen(p, 'w')\nopen(p)\nopen(os.devnull, 'w')\n"
                       "Path(p).write_text(s)\njson.dump(x, fh)\nfig.savefig('a.png')\n"
                       "with atomic_write(p, 'wb') as ok:\n    torch.save(x, ok)\n"
                       "buf = io.BytesIO()\nfig.savefig(buf)\ntorch.save(x, p)\n"
                       "Path(p).open('a')\nPath(p).open()\ngzip.open(p, mode='wt')\n")
    assert _writes(writes) == ["2: open(..., 'w')", "5: .write_text(", "6: json.dump(",
                               "7: fig.savefig(", "12: torch.save(",
                               "13: Path(p).open(..., write mode)",
                               "15: gzip.open(..., write mode)"]
    reads = ast.parse("from textlstm.core.runfolder import METRICS\nfrom textlstm.core import "
                      "runfolder\njson.loads((d / 'metrics.json').read_text())\n"
                      "x = d / METRICS\nwrite_json(d / runfolder.LABELS, y)\n"
                      "Vocab.load(d / runfolder.VOCAB)\n(d / runfolder.CONFIG).is_file()\n"
                      "torch.load(p)\nraise UserError('no metrics.json here')\n")
    assert _run_file_reads(reads) == ["3: 'metrics.json'", "4: METRICS", "8: torch.load("]
    assert all(Path(ROOT / f).is_file() for f in [*WRITES_ALLOWED, *READS_ALLOWED])


def test_scripts_that_find_the_checkout_from_their_own_path_find_it():
    """benchmarks/ moved one level down once and four experiments kept looking for data/ in
    benchmarks/: every `Path(__file__).resolve().parents[N]` under benchmarks/ and scripts/ must
    be the folder that holds pyproject.toml."""
    import re
    found = 0
    for path in sorted([*(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "scripts").rglob("*.py")]):
        for n in re.findall(r"Path\(__file__\)\.resolve\(\)\.parents\[(\d)\]",
                            path.read_text(encoding="utf-8")):
            found += 1
            assert (path.parents[int(n)] / "pyproject.toml").is_file(), \
                f"{path.relative_to(ROOT)}: parents[{n}] is not the checkout"
    assert found >= 5
