"""The taxi Trainer module: a LightGBM classifier of big tips on the transformed features.

``fn_args.hyperparameters`` may override any LGBMClassifier argument. The bundle carries the
transform, so it predicts from raw trips; its ``label`` is ``tips_xf``, a column the
transform derives from the raw ``tips`` and ``fare``.

    trainer = Trainer(examples=..., transform_graph=..., module_file="taxi_lightgbm.py")
"""

from lightgbm import LGBMClassifier, log_evaluation, record_evaluation

from conveyor.components import FnArgs
from conveyor.frameworks import save_model

LABEL = "tips_xf"


def run_fn(fn_args: FnArgs) -> None:
    data = fn_args.data_accessor
    features = data.feature_names("train", label=LABEL)
    X, y = data.to_numpy("train", features=features, label=LABEL)
    X_eval, y_eval = data.to_numpy("eval", features=features, label=LABEL)
    options = {"n_estimators": 100, "num_leaves": 31, "learning_rate": 0.1}
    options.update(fn_args.hyperparameters)
    model = LGBMClassifier(**options, n_jobs=1, random_state=0, verbose=-1)
    history: dict = {}
    model.fit(
        X,
        y,
        eval_set=[(X_eval, y_eval)],
        callbacks=[record_evaluation(history), log_evaluation(period=0)],
    )
    for step, loss in enumerate(history["valid_0"]["binary_logloss"], start=1):
        fn_args.log_metrics(step=step, eval_loss=loss)
    fn_args.log_metrics(
        step=model.n_estimators, eval_accuracy=(model.predict(X_eval) == y_eval).mean()
    )
    save_model(
        model,
        fn_args.serving_model_dir,
        features=features,
        label=LABEL,
        transform=fn_args.transform_graph,
    )
