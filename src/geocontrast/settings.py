"""Typed settings: a frozen dataclass per config section, built once from its JSON at a command line's edge.

A subclass of :class:`Settings` declares its fields with types and defaults (the schema's defaults,
``tests/test_settings.py`` checks they agree) and the config path it reads (``section``)::

    @dataclass(frozen=True)
    class KnnSettings(Settings):
        section: ClassVar[str] = "evaluate.knn"
        k: int = 20
        temperature: float = 0.07

    KnnSettings.from_mapping({"k": "ten"})  # ValueError: evaluate.knn.k: expected an integer, got 'ten'

Field types: ``bool``, ``int``, ``float`` (an integer is a number too, kept as given), ``str``, ``Literal[...]``,
``X | None``, ``tuple[X, ...]`` (a list in JSON) and ``Mapping`` (an open-ended section, held read-only). This
module imports nothing but the standard library.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}


@dataclass(frozen=True)
class Settings:
    """Base of the settings dataclasses: every field is checked against its type when built."""

    section: ClassVar[str] = ""
    """The config path of these settings (``pretrain``, ``evaluate.linear``), the prefix of every error."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for field in fields(self):
            value = checked(getattr(self, field.name), hints[field.name], f"{self.section}.{field.name}")
            object.__setattr__(self, field.name, value)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], where: str | None = None):
        """The settings of ``mapping`` over the defaults; an unknown key or a value of the wrong type is refused,
        naming it under ``where`` (default: :attr:`section`)."""
        where = cls.section if where is None else where
        if not isinstance(mapping, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {mapping!r}")
        known = [field.name for field in fields(cls)]
        unknown = sorted(set(mapping) - set(known))
        if unknown:
            named = ", ".join(f"{where}.{key}" for key in unknown)
            raise ValueError(f"{named}: unknown key{'s' * (len(unknown) > 1)}; known: {', '.join(sorted(known))}")
        hints = typing.get_type_hints(cls)
        return cls(**{key: checked(value, hints[key], f"{where}.{key}") for key, value in mapping.items()})

    def as_dict(self) -> dict:
        """Plain JSON-ready values (tuples as lists, mappings as dicts): what results and checkpoints record."""
        return {field.name: plain(getattr(self, field.name)) for field in fields(self)}

    def __reduce__(self):
        """Pickled as its plain values (a read-only mapping cannot be pickled itself)."""
        return type(self).from_mapping, (self.as_dict(),)


def checked(value: Any, hint: Any, key: str) -> Any:
    """``value`` if it is of type ``hint`` (tuples and mappings made read-only), else a ValueError naming ``key``."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in arguments:
            try:
                return checked(value, option, key)
            except ValueError:
                pass
        raise ValueError(f"{key}: expected {' or '.join(describe(option) for option in arguments)}, got {value!r}")
    if origin is typing.Literal:
        if value in arguments and not isinstance(value, bool):
            return value
    elif origin is tuple:
        if isinstance(value, list | tuple):
            return tuple(checked(item, arguments[0], f"{key}[{index}]") for index, item in enumerate(value))
    elif hint is Mapping or origin is Mapping:
        if isinstance(value, Mapping) and all(isinstance(name, str) for name in value):
            return types.MappingProxyType(dict(value))
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is Any or isinstance(value, hint):
        return value
    raise ValueError(f"{key}: expected {describe(hint)}, got {value!r}")


def describe(hint: Any) -> str:
    """How an error names the type ``hint``: "an integer", "one of ['train', 'all']", "a list of numbers"."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return f"one of {list(arguments)}"
    if origin is tuple:
        return f"a list of {describe(arguments[0]).removeprefix('an ').removeprefix('a ')}s"
    if hint is Mapping or origin is Mapping:
        return "a mapping"
    return NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {name: plain(item) for name, item in value.items()}
    return value


def merged_config(base: Mapping, update: Mapping) -> dict:
    """``update`` over ``base``, section by section, as Snakemake merges config files (``--configfile a b``)."""
    out = dict(base)
    for key, value in update.items():
        nested = isinstance(value, Mapping) and isinstance(base.get(key), Mapping)
        out[key] = merged_config(base[key], value) if nested else value
    return out
