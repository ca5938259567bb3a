"""A safe first look at ``params.yaml``, before anything expands or interpolates it.

DVC reads ``params.yaml`` with a YAML loader that expands aliases, so a nine-level "billion
laughs" alias bomb makes ``dvc repro`` hang, and ``yaml.safe_load`` would build the same graph.
This module reads the file as a stream of YAML *events* (``yaml.parse``), which never expands
an alias, and refuses what a knob file never needs:

* anchors (``&name``) and aliases (``*name``): the expansion risk itself;
* a file over :data:`MAX_BYTES`, more than :data:`MAX_NODES` values, or nesting deeper than
  :data:`MAX_DEPTH`: a params file is a few dozen settings, not data;
* a key given twice in one mapping: PyYAML keeps the last value silently while DVC refuses the
  file, so the two would disagree on the setting;
* more than one YAML document.

Every refusal is a :class:`~mlci.errors.UserError` naming the file, the line and the key path.
Standard library and PyYAML only: it runs before the heavy imports (``mlci pull``, the
Makefile's ``check-params``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mlci.errors import UserError

MAX_BYTES = 1_000_000
MAX_NODES = 10_000
MAX_DEPTH = 32

# libyaml's parser when PyYAML has it: a 1 MB file in well under a second.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class _Frame:
    """One open mapping or sequence while walking the events."""

    is_map: bool
    key: str | None = None  # mapping: the key whose value comes next (None: a key comes next)
    index: int = 0  # sequence: the index of the next item
    keys: set[str] = field(default_factory=set)


def _where(stack: list[_Frame]) -> str:
    parts = ""
    for frame in stack:
        if frame.is_map and frame.key is not None:
            parts += f".{frame.key}" if parts else frame.key
        elif not frame.is_map:
            parts += f"[{frame.index}]"
    return parts or "(top level)"


def check_text(text: str, path: Path) -> None:
    """Refuse ``text`` (the contents of ``path``) unless it is a plain, small YAML document."""
    stack: list[_Frame] = []
    nodes = documents = 0

    def refuse(event: yaml.Event, what: str) -> UserError:
        line = event.start_mark.line + 1 if event.start_mark else "?"
        return UserError(f"{path}: line {line}: {_where(stack)}: {what}")

    def value_done() -> None:
        # A complete value closes its mapping entry, or moves its sequence on by one.
        if stack:
            top = stack[-1]
            if top.is_map:
                top.key = None
            else:
                top.index += 1

    try:
        for event in yaml.parse(text, Loader=_LOADER):
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise refuse(event, "more than one YAML document (`---`); keep one")
                continue
            if isinstance(event, yaml.AliasEvent):
                raise refuse(
                    event,
                    f"YAML alias *{event.anchor} is not allowed in a params file (aliases can "
                    "expand into billions of values and hang DVC); write the value out",
                )
            if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                stack.pop()
                value_done()
                continue
            if not isinstance(event, yaml.NodeEvent):
                continue  # stream start/end, document end
            if event.anchor is not None:
                raise refuse(
                    event,
                    f"YAML anchor &{event.anchor} is not allowed in a params file (anchors exist "
                    "for aliases, which can expand into billions of values); write values out",
                )
            nodes += 1
            if nodes > MAX_NODES:
                raise refuse(event, f"more than {MAX_NODES} values: this is not a params file")
            top = stack[-1] if stack else None
            if top is not None and top.is_map and top.key is None:  # this node is a key
                if not isinstance(event, yaml.ScalarEvent):
                    raise refuse(event, "a key must be a plain name, not a list or mapping")
                if event.value in top.keys:
                    raise refuse(event, f"key {event.value!r} appears twice in this mapping")
                top.keys.add(event.value)
                top.key = event.value
                continue
            if isinstance(event, yaml.ScalarEvent):
                value_done()
                continue
            if len(stack) >= MAX_DEPTH:
                raise refuse(event, f"nested deeper than {MAX_DEPTH} levels")
            stack.append(_Frame(is_map=isinstance(event, yaml.MappingStartEvent)))
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {yaml_error_text(err)}") from None


def yaml_error_text(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: what is wrong, and where."""
    if not isinstance(err, yaml.MarkedYAMLError):
        return " ".join(str(err).split())
    what = ", ".join(filter(None, [err.context, err.problem])) or "syntax error"
    mark = err.problem_mark or err.context_mark
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark else what


def read_checked(path: Path) -> str:
    """The text of ``path`` after :func:`check_text`; a missing or oversized file is refused
    before a byte of it is parsed."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a params file")
    if not path.is_file():
        raise UserError(f"{path}: params file not found (run from the repository root)")
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise UserError(
            f"{path}: {size:,} bytes, over the {MAX_BYTES:,}-byte limit for a params file "
            "(a few dozen settings); keep data in data files"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    check_text(text, path)
    return text
