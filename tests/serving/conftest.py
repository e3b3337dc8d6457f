"""Penguin rows and a PyTorch bundle for the model server's tests; the scikit-learn bundles,
the transform they share and ``publish`` live in ``tests/conftest.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FEATURES = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]


@pytest.fixture(scope="session")
def penguin_rows(penguin_frame: pd.DataFrame) -> list[dict[str, float]]:
    """Raw rows of all three species (every 10th penguin)."""
    return penguin_frame[FEATURES].iloc[::10].to_dict("records")


@pytest.fixture(scope="session")
def torch_bundle(tmp_path_factory, penguin_xy, penguin_transform) -> Path:
    import torch
    from torch import nn

    from conveyor.frameworks import save_model

    X, y = penguin_xy
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    inputs, labels = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    for _ in range(200):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(inputs), labels).backward()
        optimizer.step()
    directory = tmp_path_factory.mktemp("torch-bundle") / "model"
    save_model(
        net.eval(),
        str(directory),
        features=FEATURES,
        label="species",
        class_names=SPECIES,
        transform=penguin_transform,
        sample=X[:8],
    )
    return directory
