"""What the run pages work out from the store: the resume command and the DAG's layout."""

from __future__ import annotations

from conveyor.metadata import RunRecord
from conveyor.ui.layout import Box, layout
from conveyor.ui.runs import resume_command


def _run(trigger: str) -> RunRecord:
    return RunRecord("r-1", "p", "FAILED", 0.0, 1.0, {"trigger": trigger})


def test_resume_command_repeats_the_store_and_root_the_run_was_started_with():
    run = _run("/venv/bin/conveyor run pipe.py --metadata-url sqlite:///x.db --root '/a b'")
    assert resume_command(run) == (
        "conveyor run pipe.py --resume r-1 --metadata-url sqlite:///x.db --root '/a b'"
    )


def test_resume_command_for_a_run_started_from_python_names_the_runner_call():
    assert (
        resume_command(_run("train.py --epochs 3")) == "LocalRunner().run(pipeline, resume='r-1')"
    )
    assert resume_command(_run("pytest run tests")) == "LocalRunner().run(pipeline, resume='r-1')"


def test_layout_puts_each_node_right_of_everything_it_reads():
    boxes = [Box(k, k) for k in ("gen", "stats", "schema", "train", "side")]
    drawing = layout(boxes, [("gen", "stats"), ("stats", "schema"), ("gen", "train"),
                             ("schema", "train")])  # fmt: skip
    x = {b.key: b.x for b in drawing.boxes}
    assert x["gen"] < x["stats"] < x["schema"] < x["train"]
    assert x["side"] == x["gen"]  # unconnected: first column
    assert len(drawing.arrows) == 4 and all(a.path.startswith("M") for a in drawing.arrows)
    assert drawing.width >= max(b.x + b.width for b in drawing.boxes)
