"""Artifact types: typed, immutable outputs that live in a directory (their URI).

Each type's docstring documents its on-disk layout. A user defines a type of their own
by subclassing :class:`Artifact`; the class name is the type name in the metadata store
unless ``TYPE_NAME`` says otherwise.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ARTIFACT_STATES",
    "Artifact",
    "ExampleAnomalies",
    "ExampleStatistics",
    "Examples",
    "HyperParameters",
    "InferenceResult",
    "InfraBlessing",
    "Model",
    "ModelBlessing",
    "ModelEvaluation",
    "ModelRun",
    "PushedModel",
    "Schema",
    "TransformGraph",
    "artifact_class",
]

#: PENDING while its execution runs; LIVE once published; ABANDONED when the execution
#: failed or was killed; DELETED when ``conveyor gc`` removed its files.
ARTIFACT_STATES = ("PENDING", "LIVE", "ABANDONED", "DELETED")


class Artifact:
    """An artifact: a directory at ``uri`` plus JSON-able ``properties``.

    Inside a component, input artifacts are read-only; output artifacts arrive with an
    empty directory at ``uri`` and writable ``properties``.

    Example::

        @component
        def Count(examples: Input[Examples], report: Output[Artifact]):
            report.properties["rows"] = 3
    """

    TYPE_NAME: ClassVar[str | None] = None

    def __init__(
        self,
        uri: str = "",
        *,
        id: int | None = None,
        properties: dict[str, Any] | None = None,
        state: str = "PENDING",
        name: str = "",
    ) -> None:
        self.uri = uri
        self.id = id
        self.properties: dict[str, Any] = dict(properties or {})
        self.state = state
        self.name = name

    @classmethod
    def type_name_of(cls) -> str:
        return cls.TYPE_NAME or cls.__name__

    @property
    def type_name(self) -> str:
        return self.type_name_of()

    def __repr__(self) -> str:
        return f"{self.type_name}(id={self.id}, uri={self.uri!r}, state={self.state})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Artifact)
            and self.id is not None
            and self.id == other.id
            and self.type_name == other.type_name
        )

    def __hash__(self) -> int:
        return hash((self.type_name, self.id, self.uri))


class Examples(Artifact):
    """Rows of data, split into named parts.

    Layout: ``{uri}/Split-{name}/part-*.parquet`` (or gzip TFRecord files of
    tf.train.Example when ``payload_format`` is ``tfrecord_example``). Properties:
    ``split_names``, ``payload_format``, ``span``, ``version`` and per-split row counts.
    """


class ExampleStatistics(Artifact):
    """Per-split statistics: ``{uri}/Split-{name}/FeatureStats.pb``
    (a TFMD ``DatasetFeatureStatisticsList``)."""


class Schema(Artifact):
    """A data schema: ``{uri}/schema.pbtxt`` (TFMD ``Schema`` in text format)."""


class ExampleAnomalies(Artifact):
    """Validation results: ``{uri}/Split-{name}/SchemaDiff.pb`` (TFMD ``Anomalies``)."""


class TransformGraph(Artifact):
    """A fitted, portable transform, laid out as tf.Transform's output:
    ``{uri}/transform_fn/graph.json`` (ops and fitted constants) plus vocabulary files under
    ``{uri}/transform_fn/assets/``; ``{uri}/transformed_metadata/schema.pbtxt`` (TFMD schema of
    the outputs) and ``{uri}/metadata/schema.pbtxt`` (the raw schema). Properties:
    ``output_features``, ``num_analyzers``, ``analyze_splits``."""


class Model(Artifact):
    """A model bundle, written by ``conveyor.frameworks.save_model`` and read by
    ``conveyor.load_model`` (which checks every file's SHA-256 before reading any)::

        {uri}/manifest.json      framework and versions, raw input signature, features,
                                 outputs, label, class_names, SHA-256 of every other file
        {uri}/MLmodel            MLflow flavor python_function (plus conda.yaml,
                                 python_env.yaml, requirements.txt)
        {uri}/model/...          the framework adapter's files
        {uri}/transform/...      the fitted transform (transform_fn/graph.json, assets)
    """


class ModelRun(Artifact):
    """Training logs: ``{uri}/metrics.jsonl`` and framework logs such as TensorBoard files."""


class HyperParameters(Artifact):
    """Chosen hyperparameters: ``{uri}/best_hyperparameters.json``, a JSON object with the best
    trial's parameter ``values``, its ``objective``, the ``direction``, ``best_trial``,
    ``num_trials`` (completed in the study), ``study_name`` and ``storage``. A Tuner also
    writes ``{uri}/trials/{number}/metrics.jsonl`` for trials that log metrics, and
    ``{uri}/study.journal`` (the Optuna study) when it was given no storage. Properties:
    ``best_hyperparameters``, ``best_objective``, ``direction``, ``num_trials``."""


class ModelEvaluation(Artifact):
    """The Evaluator's results, read with ``conveyor.evaluation.load_evaluation``::

        {uri}/metrics.json     per-slice metrics of the candidate (and the baseline), why
                               each undefined metric is undefined, rows left out, labels the
                               model never saw, the EvalConfig and the blessing
        {uri}/metrics.parquet  one row per (model, slice): a column per metric
        {uri}/plots.json       confusion matrix, ROC and PR points, calibration per slice
        {uri}/diff.json        per slice and metric: candidate, baseline, change

    Properties: ``blessed``, ``overall`` (the overall metrics), ``num_slices``,
    ``num_examples`` ({split: rows}), ``model_id``, ``baseline_model_id``.
    """


class ModelBlessing(Artifact):
    """The Evaluator's verdict: a marker file ``{uri}/BLESSED`` or ``{uri}/NOT_BLESSED`` (as
    TFX writes; the latter lists the reasons, one a line) and ``{uri}/blessing.json`` (every
    threshold check). Properties: ``blessed`` (bool), ``model_id`` (the evaluated Model's id,
    which ``LatestBlessedModel`` matches), ``baseline_model_id``, ``reasons`` (every failed
    threshold, explained) and ``skipped`` (change thresholds left out without a baseline)."""


class InfraBlessing(Artifact):
    """The InfraValidator's verdict on serving a model: ``{uri}/INFRA_BLESSED`` or
    ``{uri}/INFRA_NOT_BLESSED``, ``{uri}/infra_validation.json`` (the properties plus the
    serving and request specs) and ``{uri}/server.log``. Properties: ``blessed`` (bool),
    ``reasons``, ``model_id``, ``load_time_s``, ``latency_p50_ms``, ``latency_p99_ms``,
    ``num_requests``, ``num_examples``."""


class PushedModel(Artifact):
    """Where a model was pushed: ``{uri}/push.json`` holds the properties. The bundle itself
    lies at ``pushed_destination`` (``{push_destination}/{pushed_version}/``, TF Serving's
    layout). Properties: ``pushed`` (bool), ``pushed_destination``, ``pushed_version``,
    ``manifest_sha256`` (of the pushed bundle), ``model_id`` and ``reasons`` (why it was
    not pushed)."""


class InferenceResult(Artifact):
    """Batch predictions, laid out like Examples: ``{uri}/Split-{name}/part-*.parquet`` with
    the chosen input columns, then ``prediction``, and for a classifier ``class_id`` and a
    ``probability_<class>`` column per class. Properties: ``inferred`` (False when the model
    was not blessed), ``reasons``, ``model_id``, ``split_names``, ``payload_format``,
    ``num_examples`` and ``output_columns``."""


_STANDARD: dict[str, type[Artifact]] = {
    cls.type_name_of(): cls
    for cls in (
        Artifact,
        Examples,
        ExampleStatistics,
        Schema,
        ExampleAnomalies,
        TransformGraph,
        Model,
        ModelRun,
        HyperParameters,
        ModelEvaluation,
        ModelBlessing,
        InfraBlessing,
        PushedModel,
        InferenceResult,
    )
}


def artifact_class(type_name: str) -> type[Artifact]:
    """The class for a stored type name; unknown (user) types come back as plain ``Artifact``
    subclasses carrying that name, so reading a store never needs the user's code."""
    if type_name in _STANDARD:
        return _STANDARD[type_name]
    return type(type_name, (Artifact,), {"TYPE_NAME": type_name})
