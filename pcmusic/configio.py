"""Typed configs: nested frozen dataclasses, read from TOML, changed by `--set a.b=value`.

The mechanism is schema-agnostic: any tree of frozen dataclasses with annotated
fields of type int, float, str, bool, `Literal[...]`, `tuple[...]`, `X | None` or
another dataclass is a schema. Validation is strict and explains itself: unknown
keys name the accepted keys (and the closest one), wrong types name the value and
the expected type. Schemas may validate values in `__post_init__` with `require`.
pcmusic's own schema is `pcmusic.training.config.Config`.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pcmusic.errors import ConfigError, PcmusicError


class FieldError(ConfigError):
    """Raised by `require` inside a schema's `__post_init__`; the loader adds the
    dotted path of the section and where the value came from."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def require(condition: bool, field: str, message: str) -> None:
    """Validation for `__post_init__`: raise a ConfigError naming `field`
    (relative to the section being built, dotted for deeper keys) unless `condition`."""
    if not condition:
        raise FieldError(field, message)


# ---------------------------------------------------------------- building

_Where = Callable[[str], str]


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str, where: _Where) -> Any:
    """Check `value` against the annotation `tp`, returning it in canonical form."""
    def fail(expected: str) -> typing.NoReturn:
        raise ConfigError(f"{key} = {value!r} ({type(value).__name__}) in {where(key)}: "
                          f"expected {expected}")

    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            fail(f"a table (section) of keys {[f.name for f in dataclasses.fields(tp)]}")
        return _build(tp, value, f"{key}.", where)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):
            fail("one of " + ", ".join(repr(a) for a in allowed))
        return value
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(tp)
        if value is None:
            if type(None) in members:
                return None
            fail(_type_name(tp))
        members = [m for m in members if m is not type(None)]
        if len(members) == 1:  # Optional[X]: X's own error is the informative one
            return _convert(value, members[0], key, where)
        for member in members:
            try:
                return _convert(value, member, key, where)
            except ConfigError:
                pass
        fail(_type_name(tp))
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            fail(f"a list ({_type_name(tp)})")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif len(args) != len(value):
            fail(f"a list of {len(args)} items ({_type_name(tp)})")
        return tuple(_convert(v, a, f"{key}[{i}]", where) for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = f" (write {int(value)})" if isinstance(value, float) and value.is_integer() else ""
            fail("int" + hint)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("float")
        if math.isnan(value):
            fail("a number, not nan")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail("str (quote it)")
        return value
    raise TypeError(f"config schema: unsupported annotation {tp!r} for {key}")


def _build(schema: type, data: Mapping[str, Any], prefix: str, where: _Where) -> Any:
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    hints = typing.get_type_hints(schema)
    level = prefix.rstrip(".") or "the top level"
    for name in data:
        if name not in fields:
            close = difflib.get_close_matches(str(name), list(fields), n=1)
            hint = f"did you mean '{prefix}{close[0]}'? " if close else ""
            raise ConfigError(
                f"unknown key '{prefix}{name}' in {where(prefix + str(name))}: {hint}"
                f"accepted keys at {level}: {', '.join(fields)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], prefix + name, where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing key '{prefix}{name}' in {where(prefix + name)}: "
                              f"add it ({_type_name(hints[name])})")
    try:
        return schema(**kwargs)
    except FieldError as err:
        key = prefix + err.field
        raise ConfigError(f"{key} in {where(key)}: {err.message}") from None
    except (PcmusicError, ValueError) as err:  # a schema validating without `require`
        section = prefix.rstrip(".")
        raise ConfigError(f"{section or 'config'} in {where(section)}: {err}") from None


def config_from_dict(schema: type, d: Mapping[str, Any], *, source: str = "a dict") -> Any:
    """Build and validate an instance of the dataclass `schema` from nested dicts
    (lists become tuples, ints become floats where a float is declared)."""
    return _build(schema, d, "", lambda key: source)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Nested, JSON-serialisable dict (tuples as lists); `config_from_dict`
    of the result equals `cfg`."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        return v
    return plain(cfg)


def flatten_config(cfg: Any) -> dict[str, Any]:
    """Dotted key -> leaf value, for a config instance or its dict."""
    d = config_to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update({f"{k}.{kk}": vv for kk, vv in flatten_config(v).items()})
        else:
            out[k] = v
    return out


def config_diff(a: Any, b: Any) -> list[str]:
    """Sorted dotted keys whose values differ between two configs (instances or
    dicts); a key present in only one side counts as differing."""
    fa, fb = flatten_config(a), flatten_config(b)
    # json round trip so that (1, 2) and [1, 2], 3 and 3.0 compare as the file would
    norm = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731
    return sorted(k for k in fa.keys() | fb.keys()
                  if k not in fa or k not in fb or norm(fa[k]) != norm(fb[k]))


# ---------------------------------------------------------------- overrides and files

def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    path = key.strip().split(".")
    if not sep or not all(p.strip() for p in path):
        raise ConfigError(f"bad override '{text}': write --set section.key=value, "
                          "e.g. --set train.learning_rate=3e-4")
    path = [p.strip() for p in path]
    raw = raw.strip()
    if raw.lower() in ("none", "null"):
        return path, None
    try:
        return path, tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as err:
        # Shells eat quotes, so a bare word (5-TET, data/wavs) is taken as a string;
        # anything that starts like a TOML value but does not parse is an error.
        if raw and raw[0] not in "[{\"'" and "\n" not in raw:
            return path, raw
        raise ConfigError(f"bad override '{text}': the value {raw!r} is not valid TOML ({err}); "
                          'quote strings, write lists as [1, 2]') from None


def _merge(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, str]:
    """Apply overrides to the nested dict `data` in place; returns dotted key -> override."""
    origin: dict[str, str] = {}
    for text in overrides:
        path, value = _parse_override(text)
        node = data
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(path[:i + 1])
                raise ConfigError(f"bad override '{text}': '{where}' is a value, not a section; "
                                  f"write --set {where}=VALUE")
            node = child
        if isinstance(value, dict) and isinstance(node.get(path[-1]), dict):
            node[path[-1]].update(value)
        else:
            node[path[-1]] = value
        origin[".".join(path)] = text
    return origin


def _where(origin: Mapping[str, str], default: str) -> _Where:
    def where(key: str) -> str:
        key = key.split("[")[0]
        # the override that set this key, a section above it, or a key below it
        hits = [text for k, text in origin.items()
                if k == key or key.startswith(k + ".") or k.startswith(key + ".")]
        return f"override --set {hits[-1]}" if hits else default
    return where


def apply_overrides(cfg: Any, overrides: Iterable[str]) -> Any:
    """A copy of the config instance `cfg` with `a.b=value` overrides applied and
    the result validated. Values are TOML (`3e-4`, `"5-TET"`, `[64, 32]`); a bare
    word is a string, `none` is None."""
    data = config_to_dict(cfg)
    origin = _merge(data, overrides)
    return _build(type(cfg), data, "", _where(origin, "the config"))


def load_config(path: str | Path, *, schema: type, overrides: Iterable[str] = ()) -> Any:
    """Read a TOML file into `schema`, apply `overrides`, validate everything.
    Keys the file leaves out take the schema's defaults."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist: check the path "
                          "(configs/default.toml is the default)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} cannot be read ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {path} is not valid TOML: {err}") from None
    origin = _merge(data, overrides)
    return _build(schema, data, "", _where(origin, f"file {path}"))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic strings
    return repr(v)


def config_keys(cfg: Any) -> list[tuple[str, str, Any]]:
    """(dotted key, type, value) of every leaf of the config instance `cfg`, in schema
    order: the keys a TOML file or `--set` may give. The type is the annotation as
    written (`int`, `str | None`, `tuple[int, ...]`, `Literal[...]`); the value is the
    instance's (for a default-constructed schema, the default)."""
    rows = []
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        tp, value = typing.get_type_hints(type(cfg))[f.name], getattr(cfg, f.name)
        if dataclasses.is_dataclass(tp):
            rows += [(f"{f.name}.{k}", t, v) for k, t, v in config_keys(value)]
        else:
            rows.append((f.name, _type_name(tp), value))
    return rows


def format_value(value: Any) -> str:
    """A leaf value as `--set` reads it: TOML, and `none` for None."""
    return "none" if value is None else _toml_value(value)


def config_to_toml(cfg: Any) -> str:
    """The config as a TOML file that `load_config` reads back to an equal config.
    None values are left out (they read back as the schema default, which must be None)."""
    def section(d: Mapping[str, Any], name: str) -> list[str]:
        lines = [f"[{name}]"] if name else []
        lines += [f"{k} = {_toml_value(v)}" for k, v in d.items()
                  if v is not None and not isinstance(v, Mapping)]
        for k, v in d.items():
            if isinstance(v, Mapping):
                lines += [""] + section(v, f"{name}.{k}" if name else k)
        return lines
    return "\n".join(section(config_to_dict(cfg), "")).lstrip("\n") + "\n"
