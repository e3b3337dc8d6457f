"""Data in and out: formats, filesystems, and one access layer over Examples for every framework.

Example::

    from conveyor import io

    table = io.read_table(examples, split="train", columns=["fare", "tips"])
    X, y = io.to_numpy(examples, "train", features=["fare", "trip_miles"], label="tips")
    for batch in io.record_batches(examples, "train", batch_size=4096, shuffle=True, seed=0):
        ...
"""

from conveyor.io.arrays import batch_to_numpy, check_features
from conveyor.io.examples import (
    ExamplesSource,
    dataset,
    num_rows,
    open_examples,
    read_table,
    record_batches,
    schema,
    to_numpy,
    to_pandas,
)
from conveyor.io.frameworks import jax_batches, tf_dataset, torch_dataloader, torch_dataset

__all__ = [
    "ExamplesSource",
    "batch_to_numpy",
    "check_features",
    "dataset",
    "jax_batches",
    "num_rows",
    "open_examples",
    "read_table",
    "record_batches",
    "schema",
    "tf_dataset",
    "to_numpy",
    "to_pandas",
    "torch_dataloader",
    "torch_dataset",
]
