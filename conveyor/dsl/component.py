"""``@component``: a typed Python function whose signature is the component's spec.

Example::

    @component
    def Trainer(examples: Input[Examples], model: Output[Model], epochs: Param[int] = 10):
        ...

    trainer = Trainer(examples=example_gen.outputs["examples"], epochs=3)
"""

from __future__ import annotations

import hashlib
import inspect
import sys
import textwrap
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from conveyor.dsl.node import Channel, Node
from conveyor.types import Artifact, PipelineDefinitionError

__all__ = ["Component", "ComponentSpec", "Input", "Output", "Param", "component"]

T = TypeVar("T")


class Input(Generic[T]):
    """Marks a parameter as an input artifact: ``examples: Input[Examples]``.

    ``Input[list[Examples]]`` receives every artifact wired to it; ``Input[Examples] | None
    = None`` is optional.
    """


class Output(Generic[T]):
    """Marks a parameter as an output artifact: ``model: Output[Model]``. The function
    receives an artifact whose ``uri`` is a fresh, empty directory."""


class Param(Generic[T]):
    """Marks a parameter as a plain value: ``epochs: Param[int] = 10``."""


_MISSING = inspect.Parameter.empty


@dataclass(frozen=True)
class InputSpec:
    name: str
    artifact_type: type[Artifact]
    optional: bool
    is_list: bool


@dataclass(frozen=True)
class OutputSpec:
    name: str
    artifact_type: type[Artifact]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    py_type: Any
    default: Any = _MISSING

    @property
    def required(self) -> bool:
        return self.default is _MISSING


@dataclass(frozen=True)
class ComponentSpec:
    """Inputs, outputs and parameters read from a component function's signature."""

    name: str
    inputs: dict[str, InputSpec]
    outputs: dict[str, OutputSpec]
    params: dict[str, ParamSpec]

    def describe(self) -> str:
        parts = [f"{n}: Input[{i.artifact_type.type_name_of()}]" for n, i in self.inputs.items()]
        parts += [f"{n}: Output[{o.artifact_type.type_name_of()}]" for n, o in self.outputs.items()]
        parts += [f"{n}: Param" for n in self.params]
        return f"{self.name}({', '.join(parts)})"


class Component:
    """A component: calling it with channels and values makes a pipeline :class:`Node`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        file_params: tuple[str, ...] = ("module_file",),
        localns: dict[str, Any] | None = None,
    ) -> None:
        self.fn = fn
        self.name = name or fn.__name__
        self.file_params = file_params
        self.spec = _read_spec(fn, self.name, localns)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self._source_hash: str | None = None

    def __repr__(self) -> str:
        return f"<component {self.spec.describe()}>"

    def __call__(self, **kwargs: Any) -> Node:
        spec = self.spec
        unknown = sorted(set(kwargs) - set(spec.inputs) - set(spec.params))
        if unknown:
            hint = (
                " (outputs are created by the component; do not pass them)"
                if set(unknown) & set(spec.outputs)
                else ""
            )
            raise PipelineDefinitionError(
                f"{self.name} got unknown argument(s) {', '.join(unknown)}{hint}. "
                f"Its signature is {spec.describe()}."
            )
        inputs = {
            name: _check_input(self.name, s, kwargs.get(name)) for name, s in spec.inputs.items()
        }
        params = {}
        for name, p in spec.params.items():
            if name not in kwargs and p.required:
                raise PipelineDefinitionError(
                    f"{self.name} needs parameter '{name}'. Pass {name}=... when creating the node."
                )
            value = kwargs.get(name, p.default)
            _check_param(self.name, p, value)
            params[name] = value
        outputs = {name: o.artifact_type for name, o in spec.outputs.items()}
        return Node(self.name, component=self, inputs=inputs, params=params, output_types=outputs)

    def source_fingerprint(self) -> str:
        """sha256 of the function's source (bytecode when no source is available)."""
        if self._source_hash is None:
            self._source_hash = code_fingerprint(self.fn)
        return self._source_hash


def component(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    file_params: tuple[str, ...] = ("module_file",),
) -> Any:
    """Turn a typed function into a :class:`Component`.

    ``file_params`` names parameters that hold paths to user code (``module_file`` by
    default); the files' contents count toward the cache fingerprint.
    """
    # The caller's locals resolve string annotations (`from __future__ import annotations`)
    # that name types defined inside a function.
    localns = dict(sys._getframe(1).f_locals)
    if fn is None:
        return lambda f: Component(f, name=name, file_params=file_params, localns=localns)
    return Component(fn, name=name, file_params=file_params, localns=localns)


def code_fingerprint(fn: Callable[..., Any]) -> str:
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        data = source.encode()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        data = code.co_code + repr(code.co_consts).encode() if code else repr(fn).encode()
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------- signature reading
def _read_spec(
    fn: Callable[..., Any], name: str, localns: dict[str, Any] | None = None
) -> ComponentSpec:
    where = f"{name} ({_location(fn)})"
    try:
        hints = typing.get_type_hints(fn, localns=localns, include_extras=True)
    except NameError as exc:
        raise PipelineDefinitionError(
            f"Cannot read the type hints of component {where}: {exc}. Define the artifact types "
            "at module level, or avoid `from __future__ import annotations` in this module."
        ) from exc
    inputs: dict[str, InputSpec] = {}
    outputs: dict[str, OutputSpec] = {}
    params: dict[str, ParamSpec] = {}
    for pname, parameter in inspect.signature(fn).parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise PipelineDefinitionError(
                f"Component {where} has *{pname}; components take named, typed parameters only."
            )
        if pname not in hints:
            raise PipelineDefinitionError(
                f"Parameter '{pname}' of component {where} has no type hint. Annotate it as "
                f"Input[ArtifactType], Output[ArtifactType] or Param[type]."
            )
        kind, inner, optional = _unwrap(hints[pname])
        if kind is Param:
            params[pname] = ParamSpec(pname, inner, parameter.default)
            continue
        if kind not in (Input, Output):
            raise PipelineDefinitionError(
                f"Parameter '{pname}' of component {where} is annotated {hints[pname]!r}. Use "
                "Input[ArtifactType], Output[ArtifactType] or Param[type]."
            )
        is_list = typing.get_origin(inner) is list
        artifact_type = typing.get_args(inner)[0] if is_list else inner
        if not (isinstance(artifact_type, type) and issubclass(artifact_type, Artifact)):
            raise PipelineDefinitionError(
                f"Parameter '{pname}' of component {where}: {kind.__name__}[...] needs an "
                f"Artifact type such as Examples or Model, got {artifact_type!r}."
            )
        if kind is Output:
            if optional or is_list:
                raise PipelineDefinitionError(
                    f"Output '{pname}' of component {where} must be a single, required "
                    "Output[ArtifactType]."
                )
            outputs[pname] = OutputSpec(pname, artifact_type)
        else:
            optional = optional or parameter.default is None
            inputs[pname] = InputSpec(pname, artifact_type, optional, is_list)
    return ComponentSpec(name, inputs, outputs, params)


def _unwrap(hint: Any) -> tuple[Any, Any, bool]:
    """``Input[X] | None`` → ``(Input, X, True)``."""
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) == 1:
            hint = args[0]
            origin = typing.get_origin(hint)
    if origin in (Input, Output, Param):
        return origin, typing.get_args(hint)[0], optional
    return None, hint, optional


def _location(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code else repr(fn)


def _check_input(component_name: str, spec: InputSpec, value: Any) -> list[Channel] | None:
    where = f"{component_name}'s input '{spec.name}'"
    if value is None:
        if spec.optional:
            return None
        raise PipelineDefinitionError(
            f"{where} ({spec.artifact_type.type_name_of()}) is required but was not given. "
            f"Pass {spec.name}=<node>.outputs[...] when creating the node."
        )
    channels = list(value) if isinstance(value, list | tuple) else [value]
    if len(channels) > 1 and not spec.is_list:
        raise PipelineDefinitionError(
            f"{where} takes one channel but got {len(channels)}. Declare it as "
            f"Input[list[{spec.artifact_type.type_name_of()}]] to accept several."
        )
    for channel in channels:
        if not isinstance(channel, Channel):
            raise PipelineDefinitionError(
                f"{where} must be wired to a channel such as other_node.outputs['key'], got "
                f"{type(channel).__name__} {channel!r}."
            )
        if not issubclass(channel.artifact_type, spec.artifact_type):
            raise PipelineDefinitionError(
                f"{where} expects {spec.artifact_type.type_name_of()}, but {channel.describe()} "
                f"gives {channel.artifact_type.type_name_of()}. Wire an output of type "
                f"{spec.artifact_type.type_name_of()} to '{spec.name}'."
            )
    return channels


def _check_param(component_name: str, spec: ParamSpec, value: Any) -> None:
    if value is None and (spec.default is None or not spec.required):
        return
    if not _matches(value, spec.py_type):
        raise PipelineDefinitionError(
            f"The '{spec.name}' parameter of {component_name} must be {_type_name(spec.py_type)}. "
            f"Got {value!r} ({type(value).__name__}) instead."
        )


def _matches(value: Any, py_type: Any) -> bool:
    if py_type is Any or py_type is inspect.Parameter.empty:
        return True
    origin = typing.get_origin(py_type)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(py_type))
    if py_type is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(py_type)
    if origin is not None:
        py_type = origin
    if py_type is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if py_type is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if py_type is Callable:
        return callable(value)
    if isinstance(py_type, type):
        return isinstance(value, py_type)
    return True


def _type_name(py_type: Any) -> str:
    return getattr(py_type, "__name__", None) or repr(py_type)
