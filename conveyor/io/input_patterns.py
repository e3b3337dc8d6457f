"""Finding input files: split patterns, spans and versions, as TFX's ExampleGen does.

A pattern is relative to ``input_base`` and may hold ``{SPAN}`` (or ``{SPAN:2}`` for a fixed
width), ``{VERSION}``, and a date ``{YYYY}``/``{MM}``/``{DD}`` (whose span is the number of
days since 1970-01-01). By default the latest span is taken, and within it the latest
version; :class:`RangeConfig` picks a static range of spans instead.

Example::

    resolve_inputs("/data", {"train": "day-{SPAN}/train/*", "eval": "day-{SPAN}/eval/*"})
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from conveyor.io import filesystems as fsx
from conveyor.types import ConveyorError

_SPEC = re.compile(r"\{(SPAN|VERSION|YYYY|MM|DD)(?::(\d+))?\}")
_EPOCH = datetime.date(1970, 1, 1)
ALL = ""  # the split key for inputs that are not pre-split


@dataclass(frozen=True)
class RangeConfig:
    """Which spans to read: the latest (the default), or ``start_span``..``end_span``."""

    start_span: int | None = None
    end_span: int | None = None

    def __post_init__(self) -> None:
        if (self.start_span is None) != (self.end_span is None):
            raise ConveyorError("RangeConfig needs both start_span and end_span, or neither.")
        if self.start_span is not None and self.start_span > self.end_span:
            raise ConveyorError(
                f"RangeConfig's start_span ({self.start_span}) is after its end_span "
                f"({self.end_span})."
            )

    @classmethod
    def static(cls, start_span: int, end_span: int | None = None) -> RangeConfig:
        return cls(start_span, start_span if end_span is None else end_span)


@dataclass
class ResolvedInputs:
    """The files of each split, and the span(s) and version they came from."""

    files: dict[str, list[str]]
    spans: list[int] = field(default_factory=list)
    version: int | None = None

    @property
    def span(self) -> int:
        return max(self.spans) if self.spans else 0


def default_patterns(input_base: str) -> dict[str, str]:
    """Pre-split input (``Split-*`` folders, as TFX writes them) keeps its splits; anything
    else is one pool of files to hash-split."""
    if fsx.isdir(input_base):
        fs, path = fsx.split_uri(input_base)
        splits = sorted(
            p.rstrip("/").rsplit("/", 1)[-1][len("Split-") :]
            for p in fs.ls(path, detail=False)
            if p.rstrip("/").rsplit("/", 1)[-1].startswith("Split-") and fs.isdir(p)
        )
        if splits:
            return {name: f"Split-{name}/*" for name in splits}
    return {ALL: "**"}


def resolve_inputs(
    input_base: str,
    patterns: Mapping[str, str] | None = None,
    range_config: RangeConfig | None = None,
) -> ResolvedInputs:
    """Files for each split (key ``""`` when not pre-split), honouring spans and versions."""
    if not fsx.exists(input_base):
        raise ConveyorError(
            f"input_base {input_base} does not exist. Point input_base at the folder (or file) "
            "that holds the input data."
        )
    if not fsx.isdir(input_base):
        if patterns:
            raise ConveyorError(f"input_base {input_base} is a file; input_config needs a folder.")
        return ResolvedInputs({ALL: [input_base]})
    patterns = dict(patterns or default_patterns(input_base))
    specs = {split: set(m.group(1) for m in _SPEC.finditer(p)) for split, p in patterns.items()}
    if len({frozenset(s) for s in specs.values()}) > 1:
        raise ConveyorError(
            f"Every split pattern must use the same {{SPAN}}/{{VERSION}}/date parts: {patterns}."
        )
    kinds = next(iter(specs.values()))
    if "SPAN" in kinds and kinds & {"YYYY", "MM", "DD"}:
        raise ConveyorError("A pattern uses either {SPAN} or a date ({YYYY}{MM}{DD}), not both.")
    if kinds & {"YYYY", "MM", "DD"} and kinds & {"YYYY", "MM", "DD"} != {"YYYY", "MM", "DD"}:
        raise ConveyorError("A date pattern needs all of {YYYY}, {MM} and {DD}.")
    if "VERSION" in kinds and not kinds - {"VERSION"}:
        raise ConveyorError("{VERSION} needs {SPAN} (or a date) in the same pattern.")

    found = {split: _match(input_base, pattern) for split, pattern in patterns.items()}
    for split, matches in found.items():
        if not matches:
            raise ConveyorError(
                f"The input pattern {patterns[split]!r}"
                f"{f' of split {split!r}' if split else ''} matched no files under {input_base}. "
                "Check input_base and input_config."
            )
    if not kinds:
        return ResolvedInputs({split: sorted(m) for split, m in found.items()})
    return _select_spans(input_base, patterns, found, range_config)


def _match(input_base: str, pattern: str) -> dict[str, tuple[int | None, int | None]]:
    """Files matching ``pattern`` → (span, version) read off their paths."""
    base = input_base.rstrip("/")
    if pattern == "**":
        return {uri: (None, None) for uri in fsx.list_files(base)}
    glob_pattern = _SPEC.sub("*", pattern)
    regex = re.compile(_to_regex(pattern))
    matched: dict[str, tuple[int | None, int | None]] = {}
    _, base_path = fsx.split_uri(base)
    for uri in fsx.glob(fsx.join(base, glob_pattern)):
        _, path = fsx.split_uri(uri)
        relative = path[len(base_path.rstrip("/")) + 1 :]
        m = regex.fullmatch(relative)
        if m is None:
            continue
        values = m.groupdict()
        span = int(values["span"]) if values.get("span") else None
        if values.get("yyyy"):
            try:
                date = datetime.date(int(values["yyyy"]), int(values["mm"]), int(values["dd"]))
            except ValueError:
                continue
            span = (date - _EPOCH).days
        version = int(values["version"]) if values.get("version") else None
        matched[uri] = (span, version)
    return matched


def _to_regex(pattern: str) -> str:
    out, last = [], 0
    for m in _SPEC.finditer(pattern):
        out.append(_glob_to_regex(pattern[last : m.start()]))
        name, width = m.group(1), m.group(2)
        digits = {"YYYY": r"\d{4}", "MM": r"\d{2}", "DD": r"\d{2}"}.get(name)
        digits = digits or (rf"\d{{{width}}}" if width else r"\d+")
        group = name.lower()
        seen = f"(?P<{group}>" in "".join(out)
        out.append(rf"(?P={group})" if seen else f"(?P<{group}>{digits})")
        last = m.end()
    out.append(_glob_to_regex(pattern[last:]))
    return "".join(out)


def _glob_to_regex(text: str) -> str:
    return "".join({"*": "[^/]*", "?": "[^/]"}.get(ch, re.escape(ch)) for ch in text)


def _select_spans(
    input_base: str,
    patterns: Mapping[str, str],
    found: Mapping[str, Mapping[str, tuple[int | None, int | None]]],
    range_config: RangeConfig | None,
) -> ResolvedInputs:
    spans_per_split = [{s for s, _ in m.values()} for m in found.values()]
    common = set.intersection(*spans_per_split)
    if range_config is None or range_config.start_span is None:
        if not common:
            raise ConveyorError(
                f"No span under {input_base} is present in every split pattern {dict(patterns)}."
            )
        wanted = [max(common)]
    else:
        wanted = sorted(s for s in common if range_config.start_span <= s <= range_config.end_span)
        missing = set(range(range_config.start_span, range_config.end_span + 1)) - set(wanted)
        if missing:
            raise ConveyorError(
                f"Span(s) {sorted(missing)} of RangeConfig({range_config.start_span}, "
                f"{range_config.end_span}) are missing under {input_base} for patterns "
                f"{dict(patterns)}."
            )
    files: dict[str, list[str]] = {split: [] for split in found}
    version: int | None = None
    for span in wanted:
        versions = {v for m in found.values() for s, v in m.values() if s == span}
        latest = max((v for v in versions if v is not None), default=None)
        if latest is not None and (version is None or latest > version):
            version = latest
        for split, matches in found.items():
            files[split] += sorted(u for u, (s, v) in matches.items() if s == span and v == latest)
    return ResolvedInputs(files, spans=wanted, version=version)
