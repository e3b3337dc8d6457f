"""Shared pytest fixtures.

Must not import ``conveyor``: these fixtures have to work (and fail clearly)
even while the package itself is broken.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

try:  # `python -m pytest` from the repo root, or tests/ being a package
    from tests.services import PostgresServer, start_postgres
except ImportError:  # rootdir-less `pytest` run: tests/ itself is on sys.path
    from services import PostgresServer, start_postgres  # type: ignore[no-redef]


# Ray reads this when it is imported: every Ray instance and cluster the tests start, and
# every driver that joins one, stays on loopback instead of the machine's external address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


@pytest.fixture(autouse=True)
def _isolated_conveyor_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point CONVEYOR_HOME at a per-test temp dir so tests never touch ~/.conveyor."""
    home = tmp_path / "conveyor-home"
    home.mkdir()
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the whole session.

    Skips the requesting tests when no server can be started, except under
    CI=true, where that is a failure (so CI cannot go green by skipping).
    """
    reason = None
    try:
        server = start_postgres()
    except Exception as exc:
        reason = f"cannot start PostgreSQL test server: {exc}"
    if reason is not None:  # outside `except` so pytest shows no chained traceback
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of database ``conveyor`` on the session's PostgreSQL server (shared by tests)."""
    return postgres_server.url


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a brand-new, empty database on the session server, dropped after the test."""
    import psycopg
    from psycopg import sql

    name = f"test_{uuid.uuid4().hex[:16]}"
    admin_url = postgres_server.url_for("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres_server.url_for(name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """An S3 endpoint (moto's server) on loopback, with a bucket named ``conveyor``.

    Sets the AWS environment so boto3/s3fs talk to it; fails in CI when it cannot start.
    """
    # A separate process, not a thread: the runner's tests fork, and a forked child must not
    # inherit locks held by a server thread.
    reason = None
    server = None
    try:
        server, port = _start_moto()
    except Exception as exc:
        reason = f"cannot start the S3 test server (moto): {exc}"
    if reason is not None:
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    host = "127.0.0.1"
    endpoint = f"http://{host}:{port}"
    patch = pytest.MonkeyPatch()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_S3": endpoint,
    }.items():
        patch.setenv(key, value)
    import fsspec
    import s3fs

    patch.setitem(fsspec.config.conf, "s3", {"client_kwargs": {"endpoint_url": endpoint}})
    s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem().mkdir("conveyor")
    try:
        yield endpoint
    finally:
        patch.undo()
        s3fs.S3FileSystem.clear_instance_cache()
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's headless-capable ``chromium``; fails in CI when it is missing."""
    import shutil

    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        reason = "no chromium browser on PATH (apt-get install -y chromium)"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found


# ---------------------------------------------------------------------- penguin bundles
PENGUIN_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "penguin"
PENGUIN_FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
PENGUIN_SPECIES = ["Adelie", "Chinstrap", "Gentoo"]


@pytest.fixture(scope="session")
def penguin_frame():
    """The processed penguin CSV as a DataFrame (``species`` is the class id)."""
    import pandas as pd

    return pd.read_csv(PENGUIN_DATA / "penguins_processed.csv")


@pytest.fixture(scope="session")
def penguin_transform(penguin_frame):
    """A fitted transform z-scoring the four raw measurements (``species`` passed through)."""
    import conveyor.transform as tft

    def preprocessing_fn(inputs):
        scaled = {k: tft.scale_to_z_score(inputs[k]) for k in PENGUIN_FEATURES}
        return scaled | {"species": inputs["species"]}

    return tft.fit(preprocessing_fn, penguin_frame)


@pytest.fixture(scope="session")
def penguin_xy(penguin_frame, penguin_transform):
    """(X float32 [N, 4] of transformed features, species ids [N])."""
    from conveyor.frameworks.inputs import feature_matrix

    transformed = penguin_transform.transform(penguin_frame)
    return feature_matrix(transformed, PENGUIN_FEATURES), transformed["species"].to_numpy()


@pytest.fixture(scope="session")
def sklearn_bundles(tmp_path_factory, penguin_xy, penguin_transform) -> dict[str, Path]:
    """Two scikit-learn penguin bundles taking raw measurements (label ``species``, class
    names Adelie, Chinstrap, Gentoo) that answer differently: ``"a"`` (C=1) and ``"b"``
    (C=0.01, flatter probabilities)."""
    from sklearn.linear_model import LogisticRegression

    from conveyor.frameworks import save_model

    X, y = penguin_xy
    root = tmp_path_factory.mktemp("sklearn-bundles")
    bundles = {}
    for key, strength in (("a", 1.0), ("b", 0.01)):
        model = LogisticRegression(C=strength, max_iter=500).fit(X, y)
        bundles[key] = Path(
            save_model(
                model,
                str(root / key),
                features=PENGUIN_FEATURES,
                label="species",
                class_names=PENGUIN_SPECIES,
                transform=penguin_transform,
            )
        )
    return bundles


@pytest.fixture(scope="session")
def publish():
    """``publish(base, version, bundle, flip_byte_in=None)``: copy ``bundle`` to
    ``base/version`` atomically (a hidden temporary folder, then a rename), optionally
    flipping one byte of the file ``flip_byte_in`` (relative to the bundle) on the way."""
    import shutil

    def publish(base: Path, version: int, bundle: Path, flip_byte_in: str | None = None) -> Path:
        base.mkdir(parents=True, exist_ok=True)
        staging = base / f".incoming-{version}"
        shutil.copytree(bundle, staging)
        if flip_byte_in is not None:
            target = staging / flip_byte_in
            data = bytearray(target.read_bytes())
            data[len(data) // 2] ^= 0xFF
            target.write_bytes(bytes(data))
        final = base / str(version)
        os.rename(staging, final)
        return final

    return publish


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the JAX tests last: JAX starts threads, and the runner's tests fork processes,
    which must not happen in a process that holds them."""
    items.sort(key=lambda item: "jax" in item.nodeid.lower())


def _start_moto() -> tuple[subprocess.Popen, int]:
    """moto's S3 server on a free loopback port, once it answers."""
    import socket
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return server, port
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                raise RuntimeError("moto's server did not start") from None
            time.sleep(0.1)
