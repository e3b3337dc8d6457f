"""The compiled path for small requests: built for the scikit-learn penguin bundle (z-score
transform, LogisticRegression), it answers rows and columns exactly as the general path
does; anything it cannot answer exactly (text for a number, a missing feature, a value
that overflows, too many rows) is handed back to the general path; it is not built for a
model without a kernel, nor kept when it disagrees with the general path."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from conveyor.frameworks import load_model
from conveyor.serving.compiled import MAX_ROWS, CompiledPath
from conveyor.serving.servable import Servable


@pytest.fixture(scope="module")
def servable(sklearn_bundles) -> Servable:
    return Servable("penguin", 1, load_model(str(sklearn_bundles["a"])))


def _same(mine, theirs) -> bool:
    found, expected = mine.named(), theirs.named()
    return found.keys() == expected.keys() and all(
        found[k].dtype == expected[k].dtype and np.array_equal(found[k], expected[k]) for k in found
    )


def test_serving_compiled_answers_as_the_general_path(servable, penguin_rows) -> None:
    compiled = servable.compiled
    assert compiled is not None
    payloads = [[row] for row in penguin_rows] + [penguin_rows[:MAX_ROWS]]
    for payload in payloads:
        mine = compiled.answer(payload)
        assert mine is not None and _same(mine, servable.predict([payload])[0])
    columns = {name: [row[name] for row in penguin_rows[:5]] for name in penguin_rows[0]}
    mine = compiled.answer(columns)
    assert mine is not None and _same(mine, servable.predict([columns])[0])
    assert mine.prediction.tolist() == servable.bundle.predict(penguin_rows[:5]).tolist()


@pytest.mark.parametrize(
    "change",
    [
        {"body_mass_g": "heavy"},
        {"body_mass_g": None},
        {"body_mass_g": True},
        {"body_mass_g": [0.5]},
        {"body_mass_g": 2**60},
        {"body_mass_g": 1e300},
    ],
)
def test_serving_compiled_hands_back_what_it_cannot_answer(servable, penguin_rows, change) -> None:
    row = {**penguin_rows[0], **change}
    assert servable.compiled.answer([row]) is None


def test_serving_compiled_hands_back_missing_features_and_large_requests(
    servable, penguin_rows
) -> None:
    missing = {k: v for k, v in penguin_rows[0].items() if k != "culmen_depth_mm"}
    assert servable.compiled.answer([missing]) is None
    assert servable.compiled.answer([]) is None
    many = [penguin_rows[i % len(penguin_rows)] for i in range(MAX_ROWS + 1)]
    assert servable.compiled.answer(many) is None
    assert servable.compiled.answer({"culmen_length_mm": [1.0]}) is None


def test_serving_compiled_not_built_without_a_kernel(torch_bundle) -> None:
    assert Servable("penguin", 1, load_model(str(torch_bundle))).compiled is None


def test_serving_compiled_not_kept_when_it_disagrees(sklearn_bundles, monkeypatch) -> None:
    import conveyor.frameworks.sklearn_kernels as kernels

    found = kernels.sklearn_kernel

    def off_by_a_little(model):
        kernel = found(model)
        return kernels.SklearnKernel(lambda X: kernel.function(X) * (1 + 1e-6), kernel.kind)

    monkeypatch.setattr(kernels, "sklearn_kernel", off_by_a_little)
    servable = Servable("penguin", 1, load_model(str(sklearn_bundles["a"])))
    assert servable.compiled is None
    assert CompiledPath.build(servable) is None


def _bundle(tmp_path, penguin_frame, transform: bool) -> Servable:
    """A LogisticRegression behind min-max scaling, a z-score and a raw feature (or behind
    no transform at all)."""
    from sklearn.linear_model import LogisticRegression

    import conveyor.transform as tft
    from conveyor.frameworks import save_model
    from conveyor.frameworks.inputs import feature_matrix

    features = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g"]
    fitted, X = None, penguin_frame[features].to_numpy("float32")
    y = penguin_frame["species"].to_numpy()
    if transform:

        def preprocessing_fn(inputs):
            return {
                "culmen_length_mm": tft.scale_to_0_1(inputs["culmen_length_mm"]),
                "culmen_depth_mm": tft.scale_by_min_max(inputs["culmen_depth_mm"], -1.0, 1.0),
                "flipper_length_mm": tft.scale_to_z_score(inputs["flipper_length_mm"]),
                "body_mass_g": inputs["body_mass_g"],
                "species": inputs["species"],
            }

        fitted = tft.fit(preprocessing_fn, penguin_frame)
        X = feature_matrix(fitted.transform(penguin_frame), features)
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = save_model(
        model,
        str(tmp_path / "bundle"),
        features=features,
        label="species",
        class_names=["Adelie", "Chinstrap", "Gentoo"],
        transform=fitted,
    )
    return Servable("penguin", 1, load_model(path))


@pytest.mark.parametrize("transform", [True, False], ids=["min-max", "no-transform"])
def test_serving_compiled_other_transforms(tmp_path, penguin_frame, penguin_rows, transform):
    servable = _bundle(tmp_path, penguin_frame, transform)
    assert servable.compiled is not None and servable.compiled.program.affine is None
    for payload in [[row] for row in penguin_rows] + [penguin_rows[:MAX_ROWS]]:
        mine = servable.compiled.answer(payload)
        assert mine is not None and _same(mine, servable.predict([payload])[0])


def test_serving_compiled_answers_large_requests_in_the_batcher(servable, penguin_rows) -> None:
    from conveyor.serving.batching import Batcher

    many = [penguin_rows[i % len(penguin_rows)] for i in range(3 * MAX_ROWS)]
    batcher = Batcher("penguin", max_batch_size=8, wait_s=0.0)

    async def ask():
        batcher.start()
        try:
            return await batcher.submit(servable, many, len(many))
        finally:
            await batcher.close()

    answer = asyncio.run(ask())
    assert servable.compiled.answer(many) is None  # past the limit for the event loop
    assert _same(answer, servable.predict([many])[0])
    assert _same(answer, servable.compiled.answer(many, max_rows=None))


def test_serving_compiled_hands_back_ints_arrow_refuses(tmp_path, penguin_frame, penguin_rows):
    servable = _bundle(tmp_path, penguin_frame, transform=False)  # float32 features
    columns = {name: [row[name] for row in penguin_rows[:2]] for name in penguin_rows[0]}
    assert servable.compiled.answer({**columns, "body_mass_g": [2**24, 1]}) is not None
    too_big = {**columns, "body_mass_g": [2**24 + 1, 1]}
    assert servable.compiled.answer(too_big) is None
    assert servable.predict([too_big])[0].status == 400
