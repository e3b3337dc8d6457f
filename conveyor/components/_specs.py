"""Settings of a component given as a small dataclass or as a plain dict of its fields: the
dict is built into the dataclass when the node is made, so a misspelt key or a bad value
fails at definition time, before anything runs.

Example::

    @with_specs(request_spec=RequestSpec)
    def InfraValidator(..., request_spec: Param[RequestSpec | None] = None): ...

    InfraValidator(model=..., request_spec={"num_examples": 5})     # RequestSpec(5, ...)
    InfraValidator(model=..., request_spec={"num_exmples": 5})      # PipelineDefinitionError
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from conveyor.dsl.component import Component
from conveyor.dsl.node import Node
from conveyor.types import PipelineDefinitionError

T = TypeVar("T")


class SpecComponent(Component):
    """A component whose ``specs`` parameters (name → dataclass) also take dicts."""

    def __init__(self, fn: Callable[..., Any], specs: Mapping[str, type]) -> None:
        super().__init__(fn)
        self.specs = dict(specs)

    def __call__(self, **kwargs: Any) -> Node:
        for name, spec_class in self.specs.items():
            value = kwargs.get(name)
            if isinstance(value, Mapping):
                kwargs[name] = build_spec(spec_class, value, owner=f"{self.name}'s {name}")
        return super().__call__(**kwargs)


def with_specs(**specs: type) -> Callable[[Callable[..., Any]], SpecComponent]:
    """``@component`` for a function some of whose parameters are settings dataclasses."""
    return lambda fn: SpecComponent(fn, specs)


def build_spec(spec_class: type[T], values: Mapping[str, Any], *, owner: str) -> T:
    """``spec_class(**values)``; unknown keys are an error that names them and the known ones."""
    known = [f.name for f in dataclasses.fields(spec_class) if f.init]  # type: ignore[arg-type]
    unknown = sorted(str(key) for key in values if key not in known)
    if unknown:
        raise PipelineDefinitionError(
            f"Unknown key(s) {', '.join(map(repr, unknown))} in {owner}. "
            f"{spec_class.__name__} takes {', '.join(map(repr, known))}."
        )
    return spec_class(**values)


def check_number(
    owner: str, name: str, value: Any, *, integer: bool = False, minimum: float = 0.0
) -> None:
    """Fail unless ``value`` is a number (an integer when ``integer``) of at least ``minimum``
    (more than 0 when ``minimum`` is 0 and it is not an integer)."""
    kinds = int if integer else int | float
    strict = not integer and minimum == 0
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or not (value > minimum if strict else value >= minimum)
    ):
        what = "an integer" if integer else "a number"
        bound = "more than 0" if strict else f"at least {minimum:g}"
        raise PipelineDefinitionError(
            f"The '{name}' parameter of {owner} must be {what} {bound}. Got {value!r} instead."
        )


def check_names(owner: str, name: str, value: Any, *, allowed: tuple[str, ...] = ()) -> tuple:
    """``value`` as a tuple of names: a list or tuple of non-empty strings (from ``allowed``
    when given)."""
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise PipelineDefinitionError(
            f"The '{name}' parameter of {owner} must be a non-empty list of names. "
            f"Got {value!r} instead."
        )
    for item in value:
        if not isinstance(item, str) or not item or (allowed and item not in allowed):
            choice = f" one of {', '.join(map(repr, allowed))}" if allowed else " a name"
            raise PipelineDefinitionError(
                f"The '{name}' parameter of {owner} must list{choice}; got {item!r}."
            )
    return tuple(value)
