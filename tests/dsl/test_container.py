"""``container_component``: a command line as a pipeline step, its artifacts and parameters
passed through placeholders, run by the local runner on the host and cached like any node."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conveyor import Input, LocalRunner, Output, Pipeline, component, container_component
from conveyor.types import Examples, Model, PipelineDefinitionError

SCRIPT = """\
set -e
echo "training on $1 for $3 epochs"
wc -l < "$1/data.txt" > "$2/rows.txt"
echo "$3" > "$2/epochs.txt"
"""


@component
def Lines(examples: Output[Examples]):
    Path(examples.uri, "data.txt").write_text("a\nb\nc\n")


@component
def Report(model: Input[Model], evaluation: Output[Model]):
    rows = int(Path(model.uri, "rows.txt").read_text())
    evaluation.properties["rows"] = rows


def _trainer(script: Path, **extra):
    return container_component(
        name="ShellTrainer",
        command=["sh", str(script), "{inputs.examples}", "{outputs.model}", "{parameters.epochs}"],
        inputs={"examples": Examples},
        outputs={"model": Model},
        parameters={"epochs": 2},
        **extra,
    )


def _pipeline(tmp_path: Path, trainer, **params) -> Pipeline:
    lines = Lines()
    train = trainer(examples=lines.outputs["examples"], **params)
    report = Report(model=train.outputs["model"])
    return Pipeline("shell", [lines, train, report], root=tmp_path / "root",
                    metadata_url=f"sqlite:///{tmp_path}/md.db")  # fmt: skip


def test_container_component_runs_its_command_with_artifacts_and_parameters(tmp_path):
    script = tmp_path / "train.sh"
    script.write_text(SCRIPT)
    result = LocalRunner(display="none").run(_pipeline(tmp_path, _trainer(script), epochs=5))
    assert result.ok, result.message
    model = Path(result["ShellTrainer"].outputs["model"][0].uri)
    assert (model / "epochs.txt").read_text().strip() == "5"
    assert result["Report"].outputs["evaluation"][0].properties == {"rows": 3}
    log = Path(result["ShellTrainer"].log_path).read_text()
    assert "training on" in log and "for 5 epochs" in log


def test_container_component_is_cached_until_its_script_changes(tmp_path):
    script = tmp_path / "train.sh"
    script.write_text(SCRIPT)
    runner = LocalRunner(display="none")
    assert runner.run(_pipeline(tmp_path, _trainer(script))).ok
    again = runner.run(_pipeline(tmp_path, _trainer(script)))
    assert again["ShellTrainer"].state == "CACHED"
    script.write_text(SCRIPT + "echo changed\n")
    changed = runner.run(_pipeline(tmp_path, _trainer(script)))
    assert changed["ShellTrainer"].state == "COMPLETE"


def test_container_component_fails_the_node_on_a_nonzero_exit(tmp_path):
    script = tmp_path / "train.sh"
    script.write_text("echo 'no GPU here' >&2\nexit 3\n")
    result = LocalRunner(display="none").run(_pipeline(tmp_path, _trainer(script)))
    failed = result["ShellTrainer"]
    assert failed.state == "FAILED" and result["Report"].state == "SKIPPED"
    assert "exited with status 3" in failed.error
    assert "no GPU here" in Path(failed.log_path).read_text()


def test_container_component_renders_placeholders_inside_words():
    trainer = container_component(
        name="Echo",
        command=["run", "--out={outputs.model}/m.bin", "--config={parameters.config}"],
        outputs={"model": Model},
        parameters={"config": dict},
    )
    argv = trainer.render({"model": Model("/tmp/m"), "config": {"depth": 3}})
    assert argv == ["run", "--out=/tmp/m/m.bin", f"--config={json.dumps({'depth': 3})}"]


def test_container_component_refuses_undeclared_placeholders_and_bad_commands():
    with pytest.raises(PipelineDefinitionError, match=r"uses \{outputs.modle\}.*\{outputs.model\}"):
        container_component(name="T", command=["x", "{outputs.modle}"], outputs={"model": Model})
    with pytest.raises(PipelineDefinitionError, match="'command' parameter of container_"):
        container_component(name="T", command="train.sh {outputs.model}")
    trainer = container_component(name="T", command=["x"], parameters={"epochs": int})
    with pytest.raises(PipelineDefinitionError, match="needs parameter 'epochs'"):
        trainer()


def test_container_component_compiles_to_a_step_in_its_image(tmp_path):
    pytest.importorskip("kfp")
    import yaml

    from conveyor.orchestration.kubeflow import compile_kfp

    script = tmp_path / "train.sh"
    script.write_text(SCRIPT)
    pipeline = _pipeline(tmp_path, _trainer(script, image="reg/shell:1"))
    spec = yaml.safe_load(Path(compile_kfp(pipeline, tmp_path / "p.yaml", image="reg/cv:1",
                                           source="/app/p.py")).read_text())  # fmt: skip
    executors = spec["deploymentSpec"]["executors"]
    assert executors["exec-shelltrainer"]["container"]["image"] == "reg/shell:1"
    assert executors["exec-lines"]["container"]["image"] == "reg/cv:1"
    assert spec["root"]["dag"]["tasks"]["report"]["dependentTasks"] == ["shelltrainer"]


FAKE_DOCKER = """\
#!/bin/sh
# Stands in for the docker command: answers `version`, records `run`'s arguments, then runs
# the command that follows the image on the host.
[ "$1" = version ] && { echo 27.0; exit 0; }
echo "$@" >> "$DOCKER_LOG"
shift 2
while [ $# -gt 0 ]; do case "$1" in --user|-v) shift 2;; *) break;; esac; done
shift
exec "$@"
"""


def test_container_component_runs_in_its_image_when_docker_answers(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_LOG", str(tmp_path / "docker.log"))
    script = tmp_path / "train.sh"
    script.write_text(SCRIPT)
    pipeline = _pipeline(tmp_path, _trainer(script, image="reg/shell:1"))
    result = LocalRunner(display="none").run(pipeline)
    assert result.ok, result.message
    examples = result["Lines"].outputs["examples"][0].uri
    model = result["ShellTrainer"].outputs["model"][0].uri
    [call] = (tmp_path / "docker.log").read_text().splitlines()
    assert call.startswith("run --rm --user ")
    assert f"-v {examples}:{examples}" in call and f"-v {model}:{model}" in call
    assert f"reg/shell:1 sh {script} {examples} {model} 2" in call

    monkeypatch.setenv("CONVEYOR_CONTAINER_RUNTIME", "host")
    again = LocalRunner(display="none").run(pipeline, enable_cache=False)
    assert again.ok and len((tmp_path / "docker.log").read_text().splitlines()) == 1
