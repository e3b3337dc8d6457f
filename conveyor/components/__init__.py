"""The standard components, written the way users write theirs."""

from conveyor.components.example_gen import (
    CsvExampleGen,
    FileExampleGen,
    ImportExampleGen,
    RangeConfig,
)

__all__ = ["CsvExampleGen", "FileExampleGen", "ImportExampleGen", "RangeConfig"]
