"""``container_component``: a component whose work is a command line — a program in any
language, or a container image — instead of a Python function.

The command receives its artifacts' folders and its parameters through placeholders:
``{inputs.NAME}`` and ``{outputs.NAME}`` become the artifacts' local folders,
``{parameters.NAME}`` the parameter's value (JSON for lists and dicts). The local runner
runs the command as a subprocess on this machine, or in ``image`` under Docker (artifact
folders mounted at the same paths) when ``image`` is set and a Docker engine answers;
``CONVEYOR_CONTAINER_RUNTIME=host`` or ``=docker`` decides instead. A compiled Kubeflow
pipeline runs the step in ``image``, which needs Conveyor installed (``FROM`` its image).

Example::

    Trainer = container_component(
        name="CentroidTrainer",
        image="registry.example.com/centroids:1",
        command=["sh", "train.sh", "{inputs.examples}", "{outputs.model}",
                 "{parameters.epochs}"],
        inputs={"examples": Examples},
        outputs={"model": Model},
        parameters={"epochs": 10},   # a type (required) or a default value
    )
    trainer = Trainer(examples=export.outputs["csv"], epochs=3)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.dsl.component import Component, Input, Output, Param, code_fingerprint
from conveyor.types import Artifact, ExecutionError, PipelineDefinitionError

__all__ = ["ContainerComponent", "container_component"]

PLACEHOLDER = re.compile(r"\{(inputs|outputs|parameters)\.([A-Za-z_][A-Za-z0-9_]*)\}")
RUNTIME_ENV = "CONVEYOR_CONTAINER_RUNTIME"
RUNTIMES = ("auto", "host", "docker")


class ContainerComponent(Component):
    """A :class:`Component` that runs a command; made by :func:`container_component`."""

    def __init__(
        self,
        *,
        name: str,
        command: Sequence[str],
        image: str | None,
        inputs: Mapping[str, type[Artifact]],
        outputs: Mapping[str, type[Artifact]],
        parameters: Mapping[str, Any],
    ) -> None:
        self.command = _checked_command(name, command)
        self.image = image
        run = _command_function(self, inputs, outputs, parameters)
        super().__init__(run, name=name, file_params=())
        _check_placeholders(self)

    def source_fingerprint(self) -> str:
        """sha256 of the image, the command and the files the command names (a script's
        contents count: changing the script re-runs the step)."""
        if self._source_hash is None:
            files = {word: _file_digest(word) for word in self.command if os.path.isfile(word)}
            payload = {"image": self.image, "command": self.command, "files": files,
                       "runner": code_fingerprint(_run_command)}  # fmt: skip
            self._source_hash = hashlib.sha256(json.dumps(payload).encode()).hexdigest()
        return self._source_hash

    def render(self, values: Mapping[str, Any]) -> list[str]:
        """The command line with its placeholders replaced by ``values`` (the execution's
        keyword arguments: artifacts and parameter values)."""
        return [_render(word, values) for word in self.command]


def container_component(
    *,
    name: str,
    command: Sequence[str],
    image: str | None = None,
    inputs: Mapping[str, type[Artifact]] | None = None,
    outputs: Mapping[str, type[Artifact]] | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> ContainerComponent:
    """A component that runs ``command`` (see the module docstring). ``inputs`` and
    ``outputs`` map names to artifact types; ``parameters`` map names to a type (required)
    or a default value."""
    return ContainerComponent(
        name=name, command=command, image=image, inputs=dict(inputs or {}),
        outputs=dict(outputs or {}), parameters=dict(parameters or {}),
    )  # fmt: skip


def _command_function(
    component: ContainerComponent,
    inputs: Mapping[str, type[Artifact]],
    outputs: Mapping[str, type[Artifact]],
    parameters: Mapping[str, Any],
) -> Any:
    """A function whose signature declares the inputs, outputs and parameters, so that the
    component reads its spec the way every component does."""

    def run(**values: Any) -> None:
        _run_command(component, values)

    hints: dict[str, Any] = {}
    for key, artifact_type in inputs.items():
        hints[key] = Input[artifact_type]
    for key, artifact_type in outputs.items():
        hints[key] = Output[artifact_type]
    defaults: dict[str, Any] = {}
    for key, value in parameters.items():
        hints[key] = Param[value] if isinstance(value, type) else Param[type(value)]
        if not isinstance(value, type):
            defaults[key] = value
    run.__name__ = run.__qualname__ = "run_command"
    run.__annotations__ = hints
    empty = inspect.Parameter.empty
    run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(key, empty))
            for key in hints
        ]
    )
    return run


def _run_command(component: ContainerComponent, values: Mapping[str, Any]) -> None:
    """Run the command (in the child process an execution runs in; its output goes to the
    execution's log) and fail the execution when it exits with an error."""
    argv = component.render(values)
    if component.image and _use_docker():
        argv = _docker_argv(component.image, argv, values)
    print(f"$ {shlex.join(argv)}", flush=True)
    try:
        status = subprocess.run(argv, check=False).returncode
    except OSError as exc:
        raise ExecutionError(
            f"{component.name} could not start its command {shlex.join(argv)}: {exc}. Check "
            "that the program is installed and on PATH."
        ) from None
    if status != 0:
        raise ExecutionError(
            f"{component.name}'s command exited with status {status}: {shlex.join(argv)}. "
            "Its output is in the execution's log."
        )


def _use_docker() -> bool:
    """``auto`` (the default): under Docker when a Docker engine answers; ``host``: never;
    ``docker``: always (an error when there is no engine)."""
    runtime = os.environ.get(RUNTIME_ENV, "auto")
    if runtime not in RUNTIMES:
        raise ExecutionError(
            f"{RUNTIME_ENV} must be one of {', '.join(RUNTIMES)}. Got {runtime!r} instead."
        )
    if runtime == "host":
        return False
    answers = _docker_engine_answers()
    if runtime == "docker" and not answers:
        raise ExecutionError(
            f"{RUNTIME_ENV}=docker but no Docker engine answers (`docker version` failed). "
            f"Start Docker, or set {RUNTIME_ENV}=host to run the command on this machine."
        )
    return answers


def _docker_engine_answers() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        check = [docker, "version", "--format", "{{.Server.Version}}"]
        return subprocess.run(check, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _docker_argv(image: str, argv: list[str], values: Mapping[str, Any]) -> list[str]:
    """``docker run`` with every artifact folder mounted at the same path."""
    mounts: list[str] = []
    for value in values.values():
        for artifact in value if isinstance(value, list) else [value]:
            if isinstance(artifact, Artifact) and "://" not in artifact.uri:
                mounts += ["-v", f"{artifact.uri}:{artifact.uri}"]
    user = ["--user", f"{os.getuid()}:{os.getgid()}"] if hasattr(os, "getuid") else []
    return ["docker", "run", "--rm", *user, *mounts, image, *argv]


def _render(word: str, values: Mapping[str, Any]) -> str:
    def value_of(match: re.Match[str]) -> str:
        value = values[match[2]]
        if isinstance(value, Artifact):
            return value.uri
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value)

    return PLACEHOLDER.sub(value_of, word)


def _checked_command(name: str, command: Sequence[str]) -> list[str]:
    if (
        isinstance(command, str)
        or not command
        or not all(isinstance(word, str) for word in command)
    ):
        raise PipelineDefinitionError(
            f"The 'command' parameter of container_component {name!r} must be a non-empty "
            f"list of strings, such as ['sh', 'train.sh', '{{inputs.examples}}']. Got "
            f"{command!r} instead."
        )
    return list(command)


def _check_placeholders(component: ContainerComponent) -> None:
    spec = component.spec
    declared = {"inputs": spec.inputs, "outputs": spec.outputs, "parameters": spec.params}
    for word in component.command:
        for kind, key in PLACEHOLDER.findall(word):
            if key not in declared[kind]:
                known = ", ".join(f"{{{kind}.{k}}}" for k in declared[kind]) or "none"
                raise PipelineDefinitionError(
                    f"The command of {component.name} uses {{{kind}.{key}}}, but {key!r} is "
                    f"not among its {kind}. Declare it in {kind}={{...}}; known: {known}."
                )


def _file_digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()
