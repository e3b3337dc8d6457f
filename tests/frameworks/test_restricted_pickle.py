"""The restricted pickle: scikit-learn models round-trip; anything that would run code it
does not trust is refused, named, and never runs."""

from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

from conveyor.frameworks import restricted_pickle
from conveyor.frameworks.restricted_pickle import UntrustedPickleError, dumps, loads


def global_op(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    encoded = value.encode()
    return pickle.SHORT_BINUNICODE + bytes([len(encoded)]) + encoded


def hand_made(*ops: bytes) -> bytes:
    return pickle.PROTO + bytes([restricted_pickle.PROTOCOL]) + b"".join(ops) + pickle.STOP


class Calls:
    """Pickles as a call of ``func`` with ``args``, as a crafted file would."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def refused(data: bytes, **kwargs) -> dict[str, str]:
    with pytest.raises(UntrustedPickleError) as failure:
        loads(data, **kwargs)
    return failure.value.refused


# ---------------------------------------------------------------- scikit-learn models
@pytest.fixture(scope="module")
def models():
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        OneHotEncoder,
        StandardScaler,
    )

    X, y = make_classification(120, 5, n_informative=3, n_classes=3, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcde")).assign(kind=np.where(X[:, 0] > 0, "x", "y"))
    columns = ColumnTransformer(
        [
            ("kind", OneHotEncoder(handle_unknown="ignore"), ["kind"]),
            ("num", "passthrough", list("abcde")),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: short fits are enough
        return {
            "mlp": (make_pipeline(StandardScaler(), MLPClassifier(max_iter=30)).fit(X, y), X),
            "forest": (RandomForestClassifier(5, random_state=0).fit(X, y), X),
            "boosting": (HistGradientBoostingClassifier(max_iter=5).fit(X, y), X),
            "knn": (KNeighborsClassifier(algorithm="kd_tree").fit(X, y), X),
            "columns": (make_pipeline(columns, LogisticRegression()).fit(frame, y), frame),
            "ufunc": (make_pipeline(FunctionTransformer(np.log1p), Ridge()).fit(abs(X), y), abs(X)),
            "sparse": (LogisticRegression().fit(X, y).sparsify(), X),
        }


@pytest.mark.parametrize("name", ["mlp", "forest", "boosting", "knn", "columns", "ufunc", "sparse"])
def test_loads_rebuilds_scikit_learn_models(models, name):
    model, X = models[name]
    data, names = dumps(model)
    loaded = loads(data, names=names)
    assert type(loaded) is type(model)
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_dumps_lists_the_names_the_file_holds(models):
    _, names = dumps(models["mlp"][0])
    assert "sklearn.pipeline.Pipeline" in names
    assert "sklearn.neural_network._multilayer_perceptron.MLPClassifier" in names
    assert names == sorted(names)


# ---------------------------------------------------------------- what is refused
def test_loads_refuses_os_functions_and_runs_nothing(tmp_path: Path):
    target = tmp_path / "made"
    for payload in (Calls(os.mkdir, str(target)), Calls(os.system, f"touch {target}")):
        names = refused(pickle.dumps(payload, protocol=5))
        function = f"{payload.func.__module__}.{payload.func.__name__}"  # posix.system
        assert "outside scikit-learn, NumPy and SciPy" in names[function]
    assert not target.exists()


def test_loads_refuses_before_importing_a_module_outside_the_libraries():
    import sys

    assert "antigravity" not in sys.modules  # importing it opens a web browser
    assert "antigravity.fly" in refused(hand_made(global_op("antigravity", "fly")))
    assert "antigravity" not in sys.modules


def test_loads_refuses_builtins_eval():
    names = refused(pickle.dumps(Calls(eval, "1 + 1"), protocol=5))
    assert "builtins.eval" in names


def test_loads_refuses_library_functions_and_modules():
    assert "numpy.load" in refused(hand_made(global_op("numpy", "load")))
    assert "a module" in refused(hand_made(global_op("numpy", "random")))["numpy.random"]
    through = refused(hand_made(global_op("sklearn.base", "copy.deepcopy")))
    assert "sklearn.base.copy.deepcopy" in through


def test_loads_refuses_modules_whose_import_runs_code():
    import sys

    assert "numpy.f2py.__main__.main" in refused(
        hand_made(global_op("numpy.f2py.__main__", "main"))
    )
    assert "numpy.f2py.__main__" not in sys.modules  # importing it runs f2py's command line
    assert refused(hand_made(global_op("sklearn.tests.test_base", "T")))


def test_loads_refuses_special_attributes():
    name = "BaseEstimator.__init_subclass__"
    assert f"sklearn.base.{name}" in refused(hand_made(global_op("sklearn.base", name)))


def test_loads_refuses_a_library_class_called_with_arguments():
    """Classes are allocated and given state; only rebuilders are called with arguments."""
    from sklearn.linear_model import LogisticRegression

    crafted = Calls(LogisticRegression, "l1")
    name = "sklearn.linear_model._logistic.LogisticRegression"
    assert "called, which only" in refused(pickle.dumps(crafted, protocol=5))[name]
    newobj = hand_made(global_op("numpy", "ndarray"), text("shape"), pickle.TUPLE1, pickle.NEWOBJ)
    assert "called, which only" in refused(newobj)["numpy.ndarray"]


def test_loads_refuses_memmap_which_maps_files(tmp_path: Path):
    target = tmp_path / "mapped"
    crafted = Calls(np.memmap, str(target), np.uint8, "w+", 0, (8,))
    why = refused(pickle.dumps(crafted, protocol=5))["numpy.memmap"]
    assert "outside the data types admitted by default" in why
    assert not target.exists()


def test_loads_refuses_library_classes_that_run_their_state(tmp_path: Path):
    """A scipy.stats distribution execs a template kept in its state when it is rebuilt."""
    target = tmp_path / "made"
    crafted = hand_made(
        global_op("scipy.stats._continuous_distns", "norm_gen"),
        pickle.EMPTY_TUPLE,
        pickle.NEWOBJ,
        pickle.EMPTY_DICT,
        text("_parse_arg_template"),
        text(f"import os; os.mkdir({str(target)!r})"),
        pickle.SETITEM,
        pickle.BUILD,
    )
    why = refused(crafted)["scipy.stats._continuous_distns.norm_gen"]
    assert "outside the data types admitted by default" in why
    assert not target.exists()


def test_dumps_refuses_a_file_mapping_class_as_a_value():
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(UntrustedPickleError) as failure:
        dumps(FunctionTransformer(np.memmap, kw_args={"mode": "w+"}))
    assert list(failure.value.refused) == ["numpy.memmap"]


def test_loads_refuses_state_for_a_class():
    """A file must not patch library code: setting attributes on a class it names."""
    patch = hand_made(
        global_op("sklearn.pipeline", "Pipeline"),
        pickle.NONE,
        pickle.EMPTY_DICT,
        text("predict"),
        pickle.NONE,
        pickle.SETITEM,
        pickle.TUPLE2,
        pickle.BUILD,
    )
    assert "a class or function" in refused(patch)["sklearn.pipeline.Pipeline"]
    from sklearn.pipeline import Pipeline

    assert callable(Pipeline.predict)


def test_loads_refuses_a_random_state_built_by_a_foreign_constructor(tmp_path: Path):
    target = tmp_path / "mapped"
    crafted = hand_made(
        global_op("numpy.random._pickle", "__randomstate_ctor"),
        text(str(target)),
        global_op("sklearn.pipeline", "Pipeline"),  # NumPy's helper would call it
        pickle.TUPLE2,
        pickle.REDUCE,
    )
    assert "not one of NumPy's bit generators" in str(refused(crafted))
    assert not target.exists()


def test_loads_refuses_a_name_the_manifest_does_not_list(models):
    data, names = dumps(models["forest"][0])
    listed = [name for name in names if not name.endswith("Tree")]
    assert "not among the names the manifest lists" in str(refused(data, names=listed))


def test_loads_refuses_old_protocol_instantiation():
    assert refused(b"(cnumpy\nmemmap\no.")  # MARK GLOBAL OBJ, protocol 0


# ---------------------------------------------------------------- trusting more
class Doubler:
    """A transformer defined outside the trusted libraries."""

    def transform(self, X):
        return X * 2


def test_dumps_names_every_untrusted_name_and_trusted_ones_load():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model = make_pipeline(FunctionTransformer(np.sum), Doubler())
    with pytest.raises(UntrustedPickleError) as failure:
        dumps(model)
    assert set(failure.value.refused) == {"numpy.sum", f"{__name__}.Doubler"}
    trusted = ["numpy.sum", f"{__name__}.Doubler"]
    data, names = dumps(model, trusted=trusted)
    assert type(loads(data, trusted=trusted, names=names).steps[1][1]) is Doubler
    with pytest.raises(UntrustedPickleError, match="numpy.sum"):
        loads(data, trusted=trusted[1:], names=names)
