"""Which adapter saves, loads and calls a given model.

Three sources, looked up in this order: adapters registered in this process with
:func:`register_adapter`, adapters that installed packages declare as entry points in group
``conveyor.frameworks``, and the built-in adapters. Built-ins are known by name and module
path only: their modules (light: they import their framework only when used) are imported on
the first lookup, and entry points are read then too, so importing this module costs nothing.

Example::

    from conveyor.frameworks.registry import adapter_for, get_adapter, register_adapter

    adapter = adapter_for(model)            # e.g. the "xgboost" adapter for an XGBClassifier
    adapter = get_adapter("sklearn")
    register_adapter(MyAdapter())           # a ModelAdapter subclass; replaces one of that name

A package adds an adapter without any call, in its ``pyproject.toml``::

    [project.entry-points."conveyor.frameworks"]
    myframework = "mypackage.adapter:MyAdapter"
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import threading
from typing import Any

from conveyor.frameworks.base import ModelAdapter
from conveyor.types import ConveyorError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "conveyor.frameworks"

#: Built-in adapters: name -> "module:Class", imported on first lookup.
BUILTIN_ADAPTERS: dict[str, str] = {
    "sklearn": "conveyor.frameworks.sklearn:SklearnAdapter",
    "xgboost": "conveyor.frameworks.xgboost:XGBoostAdapter",
    "lightgbm": "conveyor.frameworks.lightgbm:LightGBMAdapter",
    "torch": "conveyor.frameworks.torch:TorchAdapter",
    "jax": "conveyor.frameworks.jax:JaxAdapter",
    "onnx": "conveyor.frameworks.onnx:OnnxAdapter",
    "keras": "conveyor.frameworks.keras:KerasAdapter",
    "files": "conveyor.frameworks.files:FilesAdapter",
}

_HOW_TO_ADD = (
    "To add a framework, subclass conveyor.frameworks.base.ModelAdapter (name, modules, "
    "save, load, predict) and call conveyor.frameworks.registry.register_adapter(MyAdapter()), "
    f"or declare it as an entry point in group {ENTRY_POINT_GROUP!r} "
    '(pyproject.toml: [project.entry-points."conveyor.frameworks"] '
    'myframework = "mypackage.adapter:MyAdapter").'
)


class AdapterRegistry:
    """Adapters by name, with lazily imported built-ins and entry points.

    Lookups go to registered adapters first, then entry points, then built-ins, so a user
    adapter can take over a framework (same ``name``) or claim a model type first.
    """

    def __init__(self, builtins: dict[str, str] | None = None) -> None:
        self._builtin_paths = dict(BUILTIN_ADAPTERS if builtins is None else builtins)
        self._registered: dict[str, ModelAdapter] = {}
        self._entry_points: dict[str, ModelAdapter] | None = None
        self._entry_point_errors: dict[str, str] = {}
        self._builtins: dict[str, ModelAdapter] = {}
        self._lock = threading.RLock()

    def register(self, adapter: ModelAdapter) -> ModelAdapter:
        """Add ``adapter`` (an instance), replacing any adapter of the same name."""
        adapter = _checked_adapter(adapter, source="register_adapter")
        with self._lock:
            self._registered[adapter.name] = adapter
        return adapter

    def unregister(self, name: str) -> None:
        """Forget an adapter added with :meth:`register` (built-ins and entry points stay)."""
        with self._lock:
            self._registered.pop(name, None)

    def names(self) -> list[str]:
        """Every known adapter name, sorted (built-ins whose module is missing included)."""
        with self._lock:
            return sorted({*self._registered, *self._plugins(), *self._builtin_paths})

    def get(self, name: str) -> ModelAdapter:
        """The adapter called ``name``; ConveyorError listing the known names otherwise."""
        with self._lock:
            if name in self._registered:
                return self._registered[name]
            if name in self._plugins():
                return self._plugins()[name]
            if name in self._entry_point_errors:
                raise ConveyorError(
                    f"The framework adapter {name!r} (entry point in group "
                    f"{ENTRY_POINT_GROUP!r}) failed to load: {self._entry_point_errors[name]}. "
                    "Fix or reinstall the package that declares it."
                )
            if name in self._builtin_paths:
                return self._builtin(name)
        raise ConveyorError(
            f"No framework adapter named {name!r}. Known adapters: "
            f"{', '.join(self.names())}. {_HOW_TO_ADD}"
        )

    def adapter_for(self, model: Any) -> ModelAdapter:
        """The first adapter whose ``handles(model)`` is true.

        Raises ConveyorError listing the supported frameworks (and the pip extra for each)
        and how to add an adapter when none handles ``model``.
        """
        with self._lock:
            candidates = [*self._registered.values(), *self._plugins().values()]
            for name in self._builtin_paths:
                adapter = self._builtin_if_present(name)
                if adapter is not None:
                    candidates.append(adapter)
        for adapter in candidates:
            if adapter.handles(model):
                return adapter
        raise ConveyorError(_unknown_model_message(model, candidates))

    def _plugins(self) -> dict[str, ModelAdapter]:
        if self._entry_points is None:
            self._entry_points = {}
            for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                try:
                    adapter = _checked_adapter(
                        entry_point.load(), source=f"entry point {entry_point.value!r}"
                    )
                except Exception as exc:
                    # One broken plugin must not stop the others; get(name) reports it.
                    log.warning("framework adapter %r failed to load: %s", entry_point.name, exc)
                    self._entry_point_errors[entry_point.name] = f"{type(exc).__name__}: {exc}"
                    continue
                self._entry_points[adapter.name] = adapter
        return self._entry_points

    def _builtin(self, name: str) -> ModelAdapter:
        if name not in self._builtins:
            module_name, _, class_name = self._builtin_paths[name].partition(":")
            module = importlib.import_module(module_name)
            self._builtins[name] = _checked_adapter(
                getattr(module, class_name), source=self._builtin_paths[name]
            )
        return self._builtins[name]

    def _builtin_if_present(self, name: str) -> ModelAdapter | None:
        module_name = self._builtin_paths[name].partition(":")[0]
        try:
            return self._builtin(name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # this installation ships no such adapter module
                return None
            raise


def _checked_adapter(obj: Any, *, source: str) -> ModelAdapter:
    """An adapter instance from an instance or a ModelAdapter subclass."""
    if isinstance(obj, type) and issubclass(obj, ModelAdapter):
        obj = obj()
    if not isinstance(obj, ModelAdapter):
        raise ConveyorError(
            f"{source} gave {obj!r}, which is not a conveyor.frameworks.base.ModelAdapter "
            "(an instance or a subclass)."
        )
    if not obj.name:
        raise ConveyorError(
            f"{source} gave the adapter {type(obj).__qualname__} with an empty 'name'; "
            "set the class attribute name = 'myframework'."
        )
    return obj


def _unknown_model_message(model: Any, adapters: list[ModelAdapter]) -> str:
    kind = type(model)
    lines = [
        f"No framework adapter handles a model of type {kind.__module__}.{kind.__qualname__}.",
        "Supported frameworks:",
    ]
    seen: set[str] = set()
    for adapter in adapters:
        if adapter.name in seen:
            continue
        seen.add(adapter.name)
        install = f"pip install conveyor[{adapter.extra}]" if adapter.extra else "installed"
        modules = ", ".join(adapter.modules) or adapter.name
        lines.append(f"  {adapter.name:<10} models from {modules} ({install})")
    lines.append(
        "If the model belongs to one of them, pass framework=NAME; otherwise: " + _HOW_TO_ADD
    )
    return "\n".join(lines)


_default = AdapterRegistry()


def default_registry() -> AdapterRegistry:
    """The process-wide registry the functions below use."""
    return _default


def register_adapter(adapter: ModelAdapter) -> ModelAdapter:
    """Add ``adapter`` to the default registry (replaces one of the same name)."""
    return _default.register(adapter)


def adapter_for(model: Any) -> ModelAdapter:
    """The adapter that handles ``model`` (see :meth:`AdapterRegistry.adapter_for`)."""
    return _default.adapter_for(model)


def get_adapter(name: str) -> ModelAdapter:
    """The adapter called ``name`` (see :meth:`AdapterRegistry.get`)."""
    return _default.get(name)


def adapter_names() -> list[str]:
    """The names of every known adapter."""
    return _default.names()
