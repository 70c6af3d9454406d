"""The field types and the dataclass decorator of every run-config section, checked by pydantic.

A section (`DataConfig`, `ModelConfig`, `TrainConfig`, `TrackingConfig`) is a frozen
pydantic dataclass: a plain dataclass to the code that uses it (`fields`, `replace`,
`asdict`), validated when built. Scalars are strict (no "0.1" for a number, no `true`
for an integer, an integer is a fine float), every range is a `Field` constraint, every
choice a `Literal`, so the workflow's JSON schema, generated from the same classes, carries
the enums, bounds, defaults and descriptions. Relations between fields stay in each
section's `__post_init__`.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import ConfigDict, Field, Strict, ValidationError
from pydantic.dataclasses import dataclass

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]

# Lists stay welcome where a tuple is wanted (YAML has no tuples); extra keys are errors.
_CONFIG = ConfigDict(extra="forbid", validate_default=False)


def section(prefix: str):
    """The decorator of a config section named `prefix` (`model`, `train`, ...): a frozen
    pydantic dataclass whose construction errors are one ValueError naming the dotted key."""
    def decorate(cls):
        cls = dataclass(frozen=True, config=_CONFIG)(cls)
        validated_init = cls.__init__

        @functools.wraps(validated_init)
        def __init__(self, *args, **kwargs):
            try:
                validated_init(self, *args, **kwargs)
            except ValidationError as err:
                raise ValueError(first_error(err, prefix)) from None

        cls.__init__ = __init__
        return cls
    return decorate


def describe(description: str, **constraints: Any) -> Any:
    """A Field with a description and pydantic constraints (gt, ge, lt, le, min_length...)."""
    return Field(description=description, **constraints)


def _location(prefix: str, loc: tuple) -> tuple[str, bool]:
    """The dotted key of a pydantic error location (list indices as [i]) and whether it
    passed through a union's branch (whose tags, like 'constrained-float', are dropped)."""
    key, branch = prefix, False
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        elif "-" in part or "[" in part:
            branch = True
        else:
            key += f".{part}" if key else part
    return key, branch


def first_error(err: ValidationError, prefix: str) -> str:
    """The first pydantic error as the rest of the project words them: the dotted key, what
    is wrong (every union branch's complaint, joined by "or"), and the value given."""
    errors = err.errors(include_url=False)
    error = errors[0]
    if error["type"] == "value_error":  # raised by a section's __post_init__: already worded
        message = str(error["ctx"]["error"])
        return message if message.startswith(prefix) else f"{prefix}: {message}"
    key, branch = _location(prefix, error["loc"])
    if error["type"] == "unexpected_keyword_argument":
        return f"unknown key {key}"
    messages = [error["msg"]]
    if branch:  # no branch of a union accepts the value: the complaints of the branches
        # whose type matched (a number below 1), else what each branch wanted
        here = [e for e in errors if _location(prefix, e["loc"])[0] == key]
        matched = [e for e in here if not e["type"].endswith(("_type", "_parsing"))]
        messages = list(dict.fromkeys(e["msg"] for e in matched or here))
    text = " or ".join(m[0].lower() + m[1:] for m in messages)
    given = "" if error["type"] == "missing" else f", got {error.get('input')!r}"
    return f"{key}: {text}{given}"
