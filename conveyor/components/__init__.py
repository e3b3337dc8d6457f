"""The standard components, written the way users write theirs."""

from conveyor.components.bulk_inferrer import BulkInferrer, DataSpec
from conveyor.components.evaluator import Evaluator
from conveyor.components.example_gen import (
    CsvExampleGen,
    FileExampleGen,
    ImportExampleGen,
    RangeConfig,
)
from conveyor.components.example_validator import ExampleValidator
from conveyor.components.fn_args import FnArgs
from conveyor.components.infra_validator import InfraValidator, RequestSpec, ServingSpec
from conveyor.components.pusher import Pusher
from conveyor.components.schema_gen import ImportSchemaGen, SchemaGen
from conveyor.components.statistics_gen import StatisticsGen
from conveyor.components.trainer import Trainer
from conveyor.components.transform import Transform
from conveyor.components.tuner import Tuner

__all__ = [
    "BulkInferrer",
    "CsvExampleGen",
    "DataSpec",
    "Evaluator",
    "ExampleValidator",
    "FileExampleGen",
    "FnArgs",
    "ImportExampleGen",
    "ImportSchemaGen",
    "InfraValidator",
    "Pusher",
    "RangeConfig",
    "RequestSpec",
    "SchemaGen",
    "ServingSpec",
    "StatisticsGen",
    "Trainer",
    "Transform",
    "Tuner",
]
