"""The public API: pinned names, and an import that stays light."""

from __future__ import annotations

import subprocess
import sys


def test_package_public_names_import():
    from conveyor import (  # noqa: F401
        Importer,
        Input,
        LocalRunner,
        Output,
        Param,
        Pipeline,
        Resolver,
        component,
    )
    from conveyor.types import (  # noqa: F401
        Artifact,
        ExampleAnomalies,
        Examples,
        ExampleStatistics,
        HyperParameters,
        InferenceResult,
        InfraBlessing,
        Model,
        ModelBlessing,
        ModelEvaluation,
        ModelRun,
        PushedModel,
        Schema,
        TransformGraph,
    )

    assert LocalRunner.__name__ == "LocalRunner"


def test_package_import_does_not_load_heavy_modules():
    code = (
        "import sys, conveyor; print(sorted(m for m in ('sqlalchemy', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
