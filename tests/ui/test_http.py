"""The UI's pages and file endpoint over HTTP, on SQLite and PostgreSQL stores."""

from __future__ import annotations

import http.client
import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conveyor.metadata import MetadataStore
from conveyor.types import Model, PushedModel
from conveyor.ui import create_app

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def _client(url: str) -> TestClient:
    return TestClient(create_app(url), base_url="http://127.0.0.1")


@pytest.fixture
def handmade(tmp_path: Path, record_run) -> dict:
    """A SQLite store with a complete and a failed handmade run, and a secret file beside
    (outside) the artifacts, linked to from inside one."""
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    store = MetadataStore(url)
    made = record_run(store, tmp_path / "root", "run-ok")
    record_run(store, tmp_path / "root", "run-bad", fail_trainer=True)
    store.close()
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    (Path(made["examples"].uri) / "link").symlink_to(secret)
    (Path(made["examples"].uri) / "dirlink").symlink_to(tmp_path)
    return {"url": url, **made}


def test_file_endpoint_serves_files_inside_the_artifact(handmade):
    answer = _client(handmade["url"]).get(
        f"/artifacts/{handmade['examples'].id}/files/Split-train/part-0.csv"
    )
    assert answer.status_code == 200
    assert answer.text == "x,y\n1,2\n"


@pytest.mark.parametrize(
    "path",
    [
        "..%2F..%2Fsecret.txt",
        "%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "Split-train/%2E%2E/%2E%2E/%2E%2E/secret.txt",
        "%2F" + "etc/passwd",
        "%2F%2Fetc%2Fpasswd",
        "link",
        "dirlink/secret.txt",
        "Split-train%5C..%5C..%5C..%5Csecret.txt",
    ],
)
def test_file_endpoint_refuses_paths_that_leave_the_artifact(handmade, path):
    answer = _client(handmade["url"]).get(f"/artifacts/{handmade['examples'].id}/files/{path}")
    assert answer.status_code in (403, 404)
    assert "TOP-SECRET" not in answer.text and "root:" not in answer.text


def test_file_endpoint_refuses_raw_dot_segments_on_the_wire(ui_url, penguin_runs):
    """A client that does not normalise the URL (curl --path-as-is) sends `..` as is."""
    parts = urlsplit(ui_url)
    for path in ("/artifacts/1/files/../../metadata.db", "/artifacts/1/files/../../../etc/passwd"):
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request("GET", path)
        answer = conn.getresponse()
        body = answer.read()
        conn.close()
        assert answer.status in (403, 404), path
        assert b"SQLite format" not in body and b"root:" not in body


def test_file_endpoint_refuses_unknown_artifacts(handmade):
    assert _client(handmade["url"]).get("/artifacts/999/files/x").status_code == 404


def test_ui_refuses_requests_for_another_host_name(handmade):
    """A page on another site cannot reach the UI through a DNS name pointed at loopback."""
    client = TestClient(create_app(handmade["url"]), base_url="http://evil.example")
    assert client.get("/").status_code == 400


def test_runs_page_filters_by_status_and_pipeline(handmade):
    client = _client(handmade["url"])
    failed = client.get("/", params={"status": "FAILED"}).text
    assert "run-bad" in failed and "run-ok" not in failed
    assert "run-ok" in client.get("/", params={"pipeline": "handmade"}).text
    assert "No runs match" in client.get("/", params={"pipeline": "other"}).text


def test_missing_pages_answer_404_with_a_message(handmade):
    client = _client(handmade["url"])
    answer = client.get("/runs/no-such-run")
    assert answer.status_code == 404
    assert "No run &#39;no-such-run&#39;" in answer.text
    assert client.get("/executions/12345").status_code == 404
    assert client.get("/artifacts/12345/lineage").status_code == 404
    assert client.get("/compare").status_code == 400


def _check_every_page(url: str, tmp_path: Path, record_run) -> None:
    store = MetadataStore(url)
    ok = record_run(store, tmp_path / "root", "run-ok")
    record_run(store, tmp_path / "root", "run-bad", fail_trainer=True)
    execution = store.executions(run_id="run-bad")[-1].execution_id
    store.close()
    client = _client(url)
    pages = {
        "/": ["run-ok", "run-bad"],
        "/?status=COMPLETE": ["run-ok"],
        "/runs/run-bad": [
            'data-state="failed"',
            "ValueError: no",
            "conveyor run handmade.py --resume run-bad",
        ],
        f"/executions/{execution}": ["Trainer", "ValueError: no"],
        f"/artifacts/{ok['model'].id}": ["Model", "manifest.json", "sklearn"],
        f"/artifacts/{ok['examples'].id}/lineage": ["Trainer", "ExampleGen"],
        "/compare?run=run-ok&run=run-bad": ["Trainer", "parameters differ"],
        f"/compare?artifact={ok['model'].id}&artifact={ok['examples'].id}": ["framework"],
    }
    for page, expected in pages.items():
        answer = client.get(page)
        assert answer.status_code == 200, (page, answer.text[-1000:])
        for text in expected:
            assert text in answer.text, (page, text)


def test_every_page_renders_on_sqlite(tmp_path, record_run):
    _check_every_page(f"sqlite:///{tmp_path / 'metadata.db'}", tmp_path, record_run)


def test_every_page_renders_on_postgresql(fresh_postgres_url, tmp_path, record_run):
    _check_every_page(fresh_postgres_url, tmp_path, record_run)


def test_lineage_leaves_out_cache_hits_and_failures(tmp_path, record_run):
    """Re-runs that reuse the examples from the cache draw no extra Trainer; a failed run's
    Trainer made nothing, so it is not drawn either."""
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    store = MetadataStore(url)
    made = record_run(store, tmp_path / "root", "run-ok")
    first = {e.node_id: e for e in store.executions(run_id="run-ok")}
    for run_id in ("cached-1", "cached-2"):
        store.create_run("handmade", run_id, {})
        for node, inputs, outputs in (
            ("ExampleGen", {}, {"examples": [made["examples"]]}),
            ("Trainer", {"examples": [made["examples"]]}, {"model": [made["model"]]}),
        ):
            store.record_execution(
                pipeline="handmade", run_id=run_id, node_id=node, type_name=node,
                state="CACHED", properties={"cached_from": first[node].execution_id},
                cache_key=None, inputs=inputs, outputs=outputs,
            )  # fmt: skip
    store.create_run("handmade", "failed", {})
    failed, _ = store.start_execution(
        pipeline="handmade", run_id="failed", node_id="Trainer", type_name="Trainer",
        properties={}, cache_key=None, inputs={"examples": [made["examples"]]},
        outputs={"model": Model}, output_uri=lambda key, i: str(tmp_path / "failed" / key),
        log_uri=lambda i: None,
    )  # fmt: skip
    store.fail_execution(failed, "ValueError: no")
    store.close()
    page = _client(url).get(f"/artifacts/{made['examples'].id}/lineage").text
    trainers = [f'data-key="e{e.execution_id}"' for e in [first["Trainer"]]]
    assert page.count('class="box execution') == 2  # ExampleGen and the first Trainer
    assert all(t in page for t in trainers)
    assert f'data-key="a{made["model"].id}"' in page


def _newest(url: str, type_name: str):
    store = MetadataStore(url)
    try:
        return store.artifacts(type_name=type_name, states=["LIVE"], newest_first=True)[0]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("type_name", "shown"),
    [
        ("Model", ["Model bundle", "culmen_length_mm", "Adelie", "sklearn"]),
        ("TransformGraph", ["Transform graph", "z_score", "mean_and_var", "culmen_length_mm_xf"]),
        ("InferenceResult", ["First rows", "Split unlabelled", "prediction", "probability_Gentoo"]),
        ("PushedModel", ["Push", "versions there", "manifest_sha256"]),
        ("Examples", ["First rows", "Split train", "Split eval", "body_mass_g"]),
    ],
)
def test_artifacts_without_a_report_show_a_preview(penguin_runs, type_name, shown):
    artifact = _newest(penguin_runs["url"], type_name)
    page = _client(penguin_runs["url"]).get(f"/artifacts/{artifact.id}").text
    assert 'id="preview"' in page and 'id="report"' not in page
    for text in shown:
        assert text in page, text


def test_artifacts_with_a_report_embed_the_report_page(penguin_runs):
    client = _client(penguin_runs["url"])
    for type_name in ("ExampleStatistics", "Schema", "ExampleAnomalies", "ModelBlessing"):
        artifact = _newest(penguin_runs["url"], type_name)
        page = client.get(f"/artifacts/{artifact.id}").text
        assert f'src="/artifacts/{artifact.id}/report"' in page and 'id="preview"' not in page
        report = client.get(f"/artifacts/{artifact.id}/report")
        assert report.status_code == 200 and "<html" in report.text


def test_lineage_shows_what_a_later_run_made(tmp_path, record_run):
    """The UI remembers lineage graphs between requests, but never past a new run."""
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    store = MetadataStore(url)
    made = record_run(store, tmp_path / "root", "run-ok")
    client = _client(url)
    lineage = f"/artifacts/{made['model'].id}/lineage"
    assert "Nothing was made from it yet" in client.get(lineage).text
    store.create_run("handmade", "later", {})
    pushed = PushedModel(str(tmp_path / "pushed"), name="Pusher:pushed_model")
    store.record_execution(
        pipeline="handmade", run_id="later", node_id="Pusher", type_name="Pusher",
        state="COMPLETE", properties={}, cache_key=None, inputs={"model": [made["model"]]},
        outputs={"pushed_model": [pushed]}, new_artifacts=[pushed],
    )  # fmt: skip
    store.update_run("later", status="COMPLETE", ended_at=time.time())
    store.close()
    page = client.get(lineage).text
    assert f'data-key="a{pushed.id}"' in page and "Pusher:pushed_model" in page


def test_a_model_page_offers_to_compare_with_other_models(tmp_path, record_run):
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    store = MetadataStore(url)
    first = record_run(store, tmp_path / "root", "run-1")["model"]
    second = record_run(store, tmp_path / "root", "run-2")["model"]
    store.close()
    client = _client(url)
    link = f"/compare?artifact={second.id}&amp;artifact={first.id}"
    assert link in client.get(f"/artifacts/{second.id}").text
    page = client.get(link.replace("&amp;", "&")).text
    assert 'data-key="framework"' in page and f"#{first.id}" in page


def test_a_running_run_shows_its_running_node_and_reloads(tmp_path):
    url = f"sqlite:///{tmp_path / 'metadata.db'}"
    store = MetadataStore(url)
    store.create_run("handmade", "going", {})
    store.start_execution(
        pipeline="handmade", run_id="going", node_id="Trainer", type_name="Trainer",
        properties={}, cache_key=None, inputs={}, outputs={"model": Model},
        output_uri=lambda key, i: str(tmp_path / key), log_uri=lambda i: None,
    )  # fmt: skip
    store.close()
    page = _client(url).get("/runs/going").text
    assert 'data-key="Trainer" data-state="running"' in page
    assert 'http-equiv="refresh"' in page and "resume" not in page.lower()
