"""Loading the pipeline a user's Python file defines, for ``conveyor run``."""

from __future__ import annotations

import importlib.util
import re
import secrets
import shlex
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from conveyor.dsl import Pipeline
from conveyor.types import ConveyorError, PipelineDefinitionError


def load_pipeline(path: Path) -> Pipeline:
    """Import ``path`` as a fresh module and return its ``pipeline`` (or ``create_pipeline()``).

    The file's folder goes on ``sys.path`` so it can import its neighbours, as when run
    with ``python FILE``.
    """
    if not path.is_file():
        raise ConveyorError(
            f"Pipeline file {path} does not exist. Pass the path of a Python file that defines "
            "`pipeline = Pipeline(...)` or `def create_pipeline()`."
        )
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    stem = re.sub(r"\W", "_", path.stem)
    name = f"_conveyor_pipeline_{stem}_{secrets.token_hex(4)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConveyorError(f"Cannot import {path} as Python: name it with a .py suffix.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    with _user_code(path, "Importing"):
        spec.loader.exec_module(module)

    return _pipeline_in(module, path)


def load_pipeline_module(name: str) -> Pipeline:
    """Import the module ``name`` (e.g. ``mypackage.pipeline``) and return its ``pipeline``
    (or ``create_pipeline()``), as :func:`load_pipeline` does for a file."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise ConveyorError(
            f"Cannot import pipeline module {name!r}: {exc}. Pass an importable module name "
            "(installed, or on PYTHONPATH) or the path of a pipeline file."
        ) from exc
    return _pipeline_in(module, Path(module.__file__ or name))


def _pipeline_in(module: ModuleType, path: Path) -> Pipeline:
    found = getattr(module, "pipeline", None)
    if isinstance(found, Pipeline):
        return found
    factory = getattr(module, "create_pipeline", None)
    if callable(factory):
        with _user_code(path, "Calling create_pipeline() of"):
            found = factory()
        if isinstance(found, Pipeline):
            return found
        raise PipelineDefinitionError(
            f"create_pipeline() in {path} returned {type(found).__name__}, not a "
            "conveyor Pipeline. Return Pipeline(name, [nodes...])."
        )
    if found is not None:
        raise PipelineDefinitionError(
            f"`pipeline` in {path} is a {type(found).__name__}, not a conveyor Pipeline. "
            "Assign pipeline = Pipeline(name, [nodes...])."
        )
    raise PipelineDefinitionError(
        f"{path} defines neither a module-level `pipeline` nor a `create_pipeline()` function. "
        "Add `pipeline = Pipeline(name, [nodes...])` or `def create_pipeline() -> Pipeline:`."
    )


@contextmanager
def _user_code(path: Path, doing: str) -> Iterator[None]:
    """Turn an exception raised by the user's file into a ConveyorError that shows where."""
    try:
        yield
    except ConveyorError:
        raise
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        starts = [i for i, f in enumerate(frames) if f.filename == str(path)]
        shown = "".join(traceback.format_list(frames[starts[0] :])) if starts else ""
        raise PipelineDefinitionError(
            f"{doing} pipeline file {path} failed:\n{shown}"
            f"{''.join(traceback.format_exception_only(exc)).rstrip()}\n"
            "Fix the error above and run again."
        ) from exc


def resume_command(
    path: Path, run_id: str, *, metadata_url: str | None = None, root: str | None = None
) -> str:
    """The exact ``conveyor run`` command line that resumes ``run_id``."""
    words = ["conveyor", "run", str(path), "--resume", run_id]
    if metadata_url is not None:
        words += ["--metadata-url", metadata_url]
    if root is not None:
        words += ["--root", root]
    return " ".join(shlex.quote(w) for w in words)
