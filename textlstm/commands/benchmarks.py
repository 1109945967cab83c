"""`textlstm bench`, `bench-scale` and `serve-bench`: the verbs stay here, the benchmarks' code
lives in the source checkout's top-level `benchmarks/` folder, apart from the library (a
benchmark is read and changed as an experiment, and the wheel a user installs carries none of
it). This module finds that folder beside the package and imports from it."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

from textlstm.core.errors import UserError

CHECKOUT = Path(__file__).resolve().parents[2]  # textlstm/commands/ -> the repository root


def benchmark(name: str) -> ModuleType:
    """`benchmarks.<name>` from the checkout this package runs from."""
    folder = CHECKOUT / "benchmarks"
    if not (folder / "__init__.py").is_file():
        raise UserError(f"the benchmarks run from a source checkout (benchmarks/ beside "
                        f"textlstm/), and {CHECKOUT} has none; clone the repository and run "
                        "`make bench` there.")
    if str(CHECKOUT) not in sys.path:
        sys.path.insert(0, str(CHECKOUT))
    module = importlib.import_module(f"benchmarks.{name}")
    if Path(module.__file__).resolve().parent != folder:
        raise UserError(f"another package named 'benchmarks' ({module.__file__}) hides "
                        f"{folder}; run textlstm from the checkout's virtual environment.")
    return module
