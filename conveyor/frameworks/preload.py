"""Which framework modules an execution is about to import, so that a runner that forks its
executions can import them once, before forking, instead of in every execution.

Importing scikit-learn costs a second or two of CPU (it brings SciPy and pandas); a pipeline
whose Trainer, Evaluator, InfraValidator and BulkInferrer each import it pays that four
times. Two things tell, without running anything, what an execution will import:

- a ``Model`` artifact among its inputs: the modules its bundle's manifest names (for a
  scikit-learn model, the modules of the classes in its pickle), read from a local bundle;
- a ``module_file`` parameter (the Trainer's, the Tuner's): the modules its top-level
  ``import`` statements name, read with :mod:`ast`.

Only modules under :data:`FORK_SAFE_ROOTS` are named: libraries that start no thread of
their own on import and hold nothing a forked child cannot use. Frameworks that do (PyTorch
and JAX run thread pools) are left to each execution.

Example::

    modules_for_execution({"model": model_artifact, "module_file": "trainer.py"})
    # ['sklearn.neural_network', 'sklearn.pipeline', 'sklearn.preprocessing', ...]
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from conveyor.types import Model

#: Top-level packages that are safe and worth importing before a fork.
FORK_SAFE_ROOTS = ("sklearn", "scipy", "pandas")
#: Frameworks whose bundles name the modules they load (``info["names"]`` of the model).
_NAMED_MODULES = {"sklearn": ("sklearn", "numpy", "scipy")}


def is_fork_safe(name: str) -> bool:
    """Whether module ``name`` belongs to a library under :data:`FORK_SAFE_ROOTS`."""
    return name.partition(".")[0] in FORK_SAFE_ROOTS


def modules_for_execution(kwargs: Mapping[str, Any]) -> list[str]:
    """The fork-safe modules an execution called with ``kwargs`` will import (sorted)."""
    found: set[str] = set()
    for key, value in kwargs.items():
        if key == "module_file" and isinstance(value, str):
            found.update(_module_file_imports(value))
        for artifact in value if isinstance(value, list) else [value]:
            if isinstance(artifact, Model):
                found.update(_bundle_modules(artifact))
    return sorted(found)


def _module_file_imports(path: str) -> Iterable[str]:
    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return ()  # the execution itself reports it
    names: list[str] = []
    for statement in tree.body:
        if isinstance(statement, ast.Import):
            names += [alias.name for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
            names.append(statement.module)
    return [name for name in names if is_fork_safe(name)]


def _bundle_modules(model: Model) -> Iterable[str]:
    roots = _NAMED_MODULES.get(model.properties.get("framework"))
    path = os.path.join(model.uri, "manifest.json")
    if roots is None or not os.path.isfile(path):  # another framework, or a remote bundle
        return ()
    try:
        with open(path, encoding="utf-8") as handle:
            names = json.load(handle)["model"]["info"]["names"]
    except (OSError, ValueError, KeyError, TypeError):
        return ()  # loading the bundle reports it
    modules = {str(name).rpartition(".")[0] for name in names}
    return [module for module in modules if module.partition(".")[0] in roots]
