"""The ``conveyor`` command line, driven the way a user drives it, on a small real pipeline."""

from __future__ import annotations

import datetime
import json
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import conveyor
from conveyor.cli.main import main

PIPELINE = textwrap.dedent(
    """
    from pathlib import Path

    from conveyor import Importer, Input, Output, Param, Pipeline, component
    from conveyor.types import Examples, Model

    HERE = Path(__file__).parent


    @component
    def Ingest(raw: Input[Examples], examples: Output[Examples], rows: Param[int] = 3):
        with open(HERE / "ingest.calls", "a") as calls:
            calls.write("called\\n")
        Path(examples.uri, "data.csv").write_text("\\n".join(str(i) for i in range(rows)))
        examples.properties["rows"] = rows


    @component
    def Train(examples: Input[Examples], model: Output[Model]):
        if (HERE / "FAIL").exists():
            raise RuntimeError("Train was told to fail")
        Path(model.uri, "model.bin").write_bytes(b"w" * 100)
        model.properties["weight"] = 0.5


    raw = Importer(str(HERE / "raw.csv"), Examples)
    ingest = Ingest(raw=raw.outputs["result"])
    train = Train(examples=ingest.outputs["examples"])
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "raw.csv").write_text("a,b\n1,2\n")
    return folder


@pytest.fixture
def pipeline_file(project: Path) -> Path:
    path = project / "demo.py"
    path.write_text(
        PIPELINE + 'pipeline = Pipeline("demo", [raw, ingest, train], root=HERE / "root")\n'
    )
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli_json(capsys: pytest.CaptureFixture[str], *argv: object):
    code, out, err = cli(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def last_run(capsys) -> dict:
    return cli_json(capsys, "runs", "--limit", 1)[0]


def states(capsys, run_id: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for e in cli_json(capsys, "executions", run_id):
        found.setdefault(e["node_id"], []).append(e["state"])
    return found


# ---------------------------------------------------------------------- run
def test_run_succeeds_and_rerun_is_cached(capsys, pipeline_file):
    code, out, _ = cli(capsys, "run", pipeline_file)
    assert code == 0
    first = last_run(capsys)
    assert first["status"] == "COMPLETE" and first["run_id"] in out
    assert states(capsys, first["run_id"]) == {
        "Importer": ["COMPLETE"],
        "Ingest": ["COMPLETE"],
        "Train": ["COMPLETE"],
    }

    assert cli(capsys, "run", pipeline_file)[0] == 0
    second = last_run(capsys)
    assert second["run_id"] != first["run_id"]
    assert states(capsys, second["run_id"]) == {
        "Importer": ["COMPLETE"],
        "Ingest": ["CACHED"],
        "Train": ["CACHED"],
    }
    assert (pipeline_file.parent / "ingest.calls").read_text().count("called") == 1


def test_run_failure_exits_1_and_resume_skips_completed_nodes(capsys, pipeline_file):
    (pipeline_file.parent / "FAIL").touch()
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "run", str(pipeline_file)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stderr
    run_id = last_run(capsys)["run_id"]
    assert "Train failed: RuntimeError: Train was told to fail" in done.stderr
    assert f"Resume with: conveyor run {pipeline_file} --resume {run_id}" in done.stderr
    assert "Traceback" not in done.stderr

    (pipeline_file.parent / "FAIL").unlink()
    code, _, err = cli(capsys, "run", pipeline_file, "--resume", run_id)
    assert code == 0, err
    resumed = last_run(capsys)
    assert (resumed["run_id"], resumed["status"]) == (run_id, "COMPLETE")
    assert states(capsys, run_id) == {
        "Importer": ["COMPLETE"],
        "Ingest": ["COMPLETE"],
        "Train": ["FAILED", "COMPLETE"],
    }
    assert (pipeline_file.parent / "ingest.calls").read_text().count("called") == 1


def test_run_resume_command_keeps_metadata_url_and_root(capsys, pipeline_file, tmp_path):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    root = tmp_path / "other-root"
    (pipeline_file.parent / "FAIL").touch()
    code, _, err = cli(capsys, "run", pipeline_file, "--metadata-url", url, "--root", root)
    assert code == 1
    line = next(x for x in err.splitlines() if "--metadata-url" in x and "Resume with" in x)
    command = shlex.split(line.split(": ", 1)[1])
    assert command[:2] == ["conveyor", "run"]
    assert command[command.index("--root") + 1] == str(root)

    (pipeline_file.parent / "FAIL").unlink()
    assert cli(capsys, *command[1:])[0] == 0
    (run,) = cli_json(capsys, "runs", "--metadata-url", url)
    assert run["status"] == "COMPLETE"
    assert list(root.joinpath("Train", "model").iterdir())
    assert cli_json(capsys, "runs") == []  # the default store was never touched


def test_run_only_runs_one_node_on_the_latest_inputs(capsys, pipeline_file):
    cli(capsys, "run", pipeline_file)
    code, _, err = cli(capsys, "run", pipeline_file, "--only", "Train", "--no-cache")
    assert code == 0, err
    assert states(capsys, last_run(capsys)["run_id"]) == {"Train": ["COMPLETE"]}

    code, _, err = cli(capsys, "run", pipeline_file, "--only", "Nope")
    assert code == 2
    assert "no node 'Nope'" in err and "Ingest" in err


def test_run_no_cache_executes_every_node_again(capsys, pipeline_file):
    cli(capsys, "run", pipeline_file)
    assert cli(capsys, "run", pipeline_file, "--no-cache")[0] == 0
    assert states(capsys, last_run(capsys)["run_id"]) == {
        "Importer": ["COMPLETE"],
        "Ingest": ["COMPLETE"],
        "Train": ["COMPLETE"],
    }
    assert (pipeline_file.parent / "ingest.calls").read_text().count("called") == 2


def test_run_create_pipeline_and_metadata_url_precedence(capsys, project, monkeypatch, tmp_path):
    path = project / "factory.py"
    path.write_text(
        PIPELINE + "\n\ndef create_pipeline():\n"
        '    return Pipeline("factory", [raw, ingest, train], root=HERE / "root",\n'
        f'                    metadata_url="sqlite:///{tmp_path / "own.db"}")\n'
    )
    own, env = f"sqlite:///{tmp_path / 'own.db'}", f"sqlite:///{tmp_path / 'env.db'}"
    flag = f"sqlite:///{tmp_path / 'flag.db'}"

    assert cli(capsys, "run", path)[0] == 0
    monkeypatch.setenv("CONVEYOR_METADATA_URL", env)
    assert cli(capsys, "run", path)[0] == 0
    assert cli(capsys, "run", path, "--metadata-url", flag)[0] == 0

    for url in (own, env, flag):
        assert [r["pipeline"] for r in cli_json(capsys, "runs", "--metadata-url", url)] == [
            "factory"
        ]


def test_run_file_without_pipeline_names_the_file(capsys, project):
    path = project / "empty.py"
    path.write_text("x = 1\n")
    code, _, err = cli(capsys, "run", path)
    assert code == 2
    assert str(path) in err and "create_pipeline()" in err and "Traceback" not in err

    code, _, err = cli(capsys, "run", project / "missing.py")
    assert code == 2 and "does not exist" in err


def test_run_file_that_raises_shows_where(capsys, project):
    path = project / "broken.py"
    path.write_text("import json\n\nraise ValueError('no data here')\n")
    code, _, err = cli(capsys, "run", path)
    assert code == 2
    assert f'File "{path}", line 3' in err and "ValueError: no data here" in err


# ---------------------------------------------------------------------- reading
def test_runs_json_fields(capsys, pipeline_file):
    cli(capsys, "run", pipeline_file)
    cli(capsys, "run", pipeline_file)
    runs = cli_json(capsys, "runs", "--pipeline", "demo")
    assert len(runs) == 2
    assert {"run_id", "pipeline", "status", "started_at", "ended_at"} <= set(runs[0])
    started = datetime.datetime.fromisoformat(runs[0]["started_at"])
    assert started.utcoffset() == datetime.timedelta(0)
    assert runs[0]["started_at"] >= runs[1]["started_at"]  # newest first
    assert len(cli_json(capsys, "runs", "--limit", 1)) == 1
    assert cli_json(capsys, "runs", "--pipeline", "other") == []


def test_executions_json_fields(capsys, pipeline_file):
    cli(capsys, "run", pipeline_file)
    executions = cli_json(capsys, "executions", last_run(capsys)["run_id"])
    train = next(e for e in executions if e["node_id"] == "Train")
    ingest = next(e for e in executions if e["node_id"] == "Ingest")
    assert {"execution_id", "node_id", "type", "state", "started_at", "ended_at", "inputs",
            "outputs", "log_uri", "error"} <= set(train)  # fmt: skip
    assert train["inputs"] == {"examples": ingest["outputs"]["examples"]}
    assert Path(train["log_uri"]).is_file() and train["error"] is None


def test_artifacts_json_fields_and_filters(capsys, pipeline_file):
    cli(capsys, "run", pipeline_file)
    run_id = last_run(capsys)["run_id"]
    artifacts = cli_json(capsys, "artifacts")
    assert [a["type"] for a in artifacts] == ["Examples", "Examples", "Model"]
    model = artifacts[-1]
    assert {"id", "type", "uri", "state", "properties", "producer_execution_id"} <= set(model)
    assert model["properties"] == {"weight": 0.5} and model["state"] == "LIVE"
    train = next(e for e in cli_json(capsys, "executions", run_id) if e["node_id"] == "Train")
    assert model["producer_execution_id"] == train["execution_id"]

    cli(capsys, "run", pipeline_file)  # cached: reuses, so still produced by the first run
    assert (
        cli_json(capsys, "artifacts", "--type", "Model")[0]["producer_execution_id"]
        == (train["execution_id"])
    )
    assert [a["id"] for a in cli_json(capsys, "artifacts", "--run", run_id, "--type", "Model")] == [
        model["id"]
    ]
    assert len(cli_json(capsys, "artifacts", "--state", "live", "--pipeline", "demo")) == 3
    assert cli_json(capsys, "artifacts", "--state", "ABANDONED") == []
    assert cli_json(capsys, "artifacts", "--pipeline", "other") == []


def test_lineage_json_walks_up_and_down(capsys, pipeline_file):
    cli(capsys, "run", pipeline_file)
    raw, examples, model = cli_json(capsys, "artifacts")
    view = cli_json(capsys, "lineage", examples["id"])
    assert set(view) >= {"artifact_id", "artifacts", "executions", "edges", "upstream",
                         "downstream"}  # fmt: skip
    assert view["artifact_id"] == examples["id"]
    assert view["upstream"] == [raw["id"]] and view["downstream"] == [model["id"]]
    assert {a["id"] for a in view["artifacts"]} == {raw["id"], examples["id"], model["id"]}
    assert {"artifact_id": model["id"], "execution_id": model["producer_execution_id"],
            "type": "OUTPUT", "key": "model"} in view["edges"]  # fmt: skip
    assert {e["node_id"] for e in view["executions"]} == {"Importer", "Ingest", "Train"}


def test_show_json_lists_producer_consumers_and_files(capsys, pipeline_file):
    cli(capsys, "run", pipeline_file)
    _, examples, model = cli_json(capsys, "artifacts")
    view = cli_json(capsys, "show", model["id"])
    assert view["type"] == "Model" and view["uri"] == model["uri"]
    assert view["producer"]["node_id"] == "Train"
    assert view["files"] == [{"path": "model.bin", "bytes": 100}] and view["total_bytes"] == 100
    assert [c["node_id"] for c in cli_json(capsys, "show", examples["id"])["consumers"]] == [
        "Train"
    ]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["executions", "no-such-run"], "No run 'no-such-run'"),
        (["artifacts", "--run", "no-such-run"], "No run 'no-such-run'"),
        (["show", "999"], "No artifact 999"),
        (["lineage", "999"], "No artifact 999"),
    ],
)
def test_read_commands_reject_unknown_ids(capsys, argv, needle):
    code, out, err = cli(capsys, *argv)
    assert code == 2
    assert needle in err and "Traceback" not in err and out == ""


def test_read_commands_draw_tables_for_people(capsys, pipeline_file):
    cli(capsys, "run", pipeline_file)
    run_id = last_run(capsys)["run_id"]
    model_id = cli_json(capsys, "artifacts", "--type", "Model")[0]["id"]
    for argv, needle in (
        (["runs"], run_id),
        (["executions", run_id], "Train"),
        (["artifacts"], "Model"),
        (["lineage", model_id], "made by Train"),
        (["show", model_id], "model.bin"),
    ):
        code, out, err = cli(capsys, *argv)
        assert code == 0, err
        assert needle in out


# ---------------------------------------------------------------------- gc
def test_gc_deletes_old_runs_files_and_keeps_the_last(capsys, pipeline_file):
    for _ in range(3):
        assert cli(capsys, "run", pipeline_file, "--no-cache")[0] == 0
    models = cli_json(capsys, "artifacts", "--type", "Model")
    raw = pipeline_file.parent / "raw.csv"

    dry = cli_json(capsys, "gc", "--keep-last", 1, "--dry-run")
    assert dry["dry_run"] and len(dry["deleted"]) == 4 and dry["bytes_freed"] > 200
    assert all(Path(m["uri"]).exists() for m in models)

    report = cli_json(capsys, "gc", "--keep-last", 1)
    assert report["deleted"] == dry["deleted"]
    assert [Path(m["uri"]).exists() for m in models] == [False, False, True]
    assert raw.read_text() == "a,b\n1,2\n"
    deleted = cli_json(capsys, "artifacts", "--state", "DELETED")
    assert sorted(a["id"] for a in deleted) == sorted(report["deleted"])
    assert cli_json(capsys, "lineage", models[0]["id"])["upstream"]
    assert cli_json(capsys, "show", models[0]["id"])["exists"] is False

    code, out, _ = cli(capsys, "gc", "--keep-last", 1)
    assert code == 0 and "Deleted 0 artifact(s)" in out
    assert cli(capsys, "gc", "--keep-last", 1, "--pipeline", "nope")[0] == 2


# ---------------------------------------------------------------------- the program
def test_cli_version_and_light_import():
    done = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == f"conveyor {conveyor.__version__}"
    code = (
        "import sys, conveyor.cli.main; "
        "print(sorted(m for m in ('sqlalchemy', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
