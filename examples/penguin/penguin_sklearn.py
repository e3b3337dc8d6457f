"""The penguin Trainer module for scikit-learn: TFX's ``penguin_utils_sklearn.py`` ported.

TFX's ``run_fn`` (an MLPClassifier in a StandardScaler pipeline, Apache License 2.0) with
only its imports and its data reading changed, a fixed seed, and the model saved as a
bundle instead of a pickle (the README's "Train" section lists every change). It trains on
the transformed examples, so the bundle also carries the transform and predicts from raw
rows.

    trainer = Trainer(examples=transform.outputs["transformed_examples"],
                      transform_graph=transform.outputs["transform_graph"],
                      module_file="penguin_sklearn.py", train_args={"num_steps": 2000})
"""

import logging

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from conveyor.components import FnArgs
from conveyor.components.fn_args import DataAccessor
from conveyor.frameworks import save_model

_FEATURE_KEYS = [
    "culmen_length_mm_xf",
    "culmen_depth_mm_xf",
    "flipper_length_mm_xf",
    "body_mass_g_xf",
]
_LABEL_KEY = "species"
_CLASS_NAMES = ["Adelie", "Chinstrap", "Gentoo"]

# The Penguin dataset has 342 records, and is divided into train and eval
# splits in a 2:1 ratio.
_TRAIN_DATA_SIZE = 228
_TRAIN_BATCH_SIZE = 20


def _input_fn(splits: list[str], data_accessor: DataAccessor) -> tuple[np.ndarray, np.ndarray]:
    """Generates features and label for tuning/training.

    Args:
      splits: the names of the splits to read.
      data_accessor: DataAccessor bound to the transformed examples.

    Returns:
      A (features, indices) tuple where features is a matrix of features, and
        indices is a single vector of label indices.
    """
    feature_list = []
    label_list = []
    for split in splits:
        features, labels = data_accessor.to_numpy(split, features=_FEATURE_KEYS, label=_LABEL_KEY)
        feature_list.append(features)
        label_list.append(labels)

    return np.concatenate(feature_list), np.concatenate(label_list)


# Conveyor's Trainer will call this function.
def run_fn(fn_args: FnArgs):
    """Train the model based on given args.

    Args:
      fn_args: Holds args used to train the model as name/value pairs.
    """
    x_train, y_train = _input_fn(fn_args.train_splits, fn_args.data_accessor)
    x_eval, y_eval = _input_fn(fn_args.eval_splits, fn_args.data_accessor)

    steps_per_epoch = _TRAIN_DATA_SIZE / _TRAIN_BATCH_SIZE

    estimator = MLPClassifier(
        hidden_layer_sizes=[8, 8, 8],
        activation="relu",
        solver="adam",
        batch_size=_TRAIN_BATCH_SIZE,
        learning_rate_init=0.0005,
        max_iter=int(fn_args.train_steps / steps_per_epoch),
        verbose=True,
        random_state=0,  # the same data trains the same model, on any runner
    )

    # Create a pipeline that standardizes the input data before passing it to an
    # estimator. Once the scaler is fit, it will use the same mean and stdev to
    # transform inputs at both training and serving time.
    model = Pipeline(
        [
            ("scaler", StandardScaler()),
            ("estimator", estimator),
        ]
    )
    model.feature_keys = _FEATURE_KEYS
    model.label_key = _LABEL_KEY
    model.fit(x_train, y_train)
    logging.info(model)

    score = model.score(x_eval, y_eval)
    logging.info("Accuracy: %f", score)
    fn_args.log_metrics(step=fn_args.train_steps, eval_accuracy=score)

    # Export the model as a bundle: the pipeline, the transform graph and a manifest.
    save_model(
        model,
        fn_args.serving_model_dir,
        features=_FEATURE_KEYS,
        label=_LABEL_KEY,
        class_names=_CLASS_NAMES,
        transform=fn_args.transform_graph,
    )
