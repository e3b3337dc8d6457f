"""StatisticsGen: TFDV-compatible statistics of every split of an Examples artifact.

Writes ``{uri}/Split-{name}/FeatureStats.pb`` (a binary ``DatasetFeatureStatisticsList``
with one dataset), the files TFX's StatisticsGen writes, so TFDV and Facets read them.

Example::

    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"])
"""

from __future__ import annotations

import logging

from tensorflow_metadata.proto.v0 import statistics_pb2

from conveyor.components._ray_data import record_engine, split_statistics
from conveyor.dsl import Input, Output, Param, component
from conveyor.io import tfmd
from conveyor.io.examples import open_examples
from conveyor.types import Examples, ExampleStatistics, Schema
from conveyor.validation import files
from conveyor.validation.statistics import StatsOptions

__all__ = ["StatisticsGen"]

logger = logging.getLogger(__name__)


@component
def StatisticsGen(
    examples: Input[Examples],
    statistics: Output[ExampleStatistics],
    schema: Input[Schema] | None = None,
    exclude_splits: Param[list[str] | None] = None,
    weight_feature: Param[str | None] = None,
):
    """Compute statistics of each split (but ``exclude_splits``), as TFDV does.

    ``schema`` marks categorical INT features (they get string statistics);
    ``weight_feature`` adds weighted statistics. Output properties: ``split_names`` and
    ``num_examples`` (per split); under the Ray runner, ``engine`` and ``ray_data_splits``
    when big splits were computed with Ray Data (per-block statistics, merged).
    """
    source = open_examples(examples)
    excluded = list(exclude_splits or [])
    unknown = [s for s in excluded if s not in source.split_names]
    if unknown:
        logger.warning(
            "exclude_splits names %s, which the Examples at %s do not have (splits: %s)",
            ", ".join(unknown), source.uri, ", ".join(source.split_names),
        )  # fmt: skip
    options = StatsOptions(
        weight_feature=weight_feature,
        schema=tfmd.load_schema(schema.uri) if schema is not None else None,
    )
    splits = [s for s in source.split_names if s not in excluded]
    counts, engines = {}, []
    for split in splits:
        stats = split_statistics(source, split, options, "StatisticsGen", engines)
        counts[split] = stats.num_examples
        files.save_statistics(
            statistics_pb2.DatasetFeatureStatisticsList(datasets=[stats]),
            files.split_uri(statistics.uri, split),
        )
        logger.info("Statistics of split %r: %d examples, %d features", split,
                    stats.num_examples, len(stats.features))  # fmt: skip
    statistics.properties.update(split_names=splits, num_examples=counts)
    record_engine(statistics, engines)
