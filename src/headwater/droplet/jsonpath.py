"""JSON paths for error messages, and turning msgspec's decode errors into precise ones.

msgspec reports where decoding failed, but writes every object *value* of a ``dict[str, X]`` as
``[...]`` because it does not keep the key (``$.classes[...].instances[0]``). Decoding succeeds on
the fast path, so only a failed decode pays for precision: the document is parsed again untyped and
the path is walked alongside the target type; at each ``[...]`` the key whose value fails to convert
is the one named.

Example:
    >>> key_path("$.classes", "person"), key_path("$.classes", "traffic light")
    ('$.classes.person', '$.classes["traffic light"]')
"""

from __future__ import annotations

import json
import re
import types
import typing
from typing import Any, Union

import msgspec

from .errors import DropletError

__all__ = ["decode_error", "index_path", "key_path"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_AT = " - at `"


def key_path(parent: str, key: str) -> str:
    """``parent.key``, or ``parent["key"]`` when ``key`` is not an identifier."""
    return f"{parent}.{key}" if _IDENT.match(key) else f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


def index_path(parent: str, index: int) -> str:
    """``parent[index]``."""
    return f"{parent}[{index}]"


def decode_error(
    err: msgspec.MsgspecError, data: bytes | bytearray | memoryview | str | None, target: Any, raw: Any = None,
    error_type: type[DropletError] = DropletError,
) -> DropletError:
    """A :class:`DropletError` for ``err`` raised decoding ``data`` (or converting ``raw``) as ``target``."""
    text = str(err)
    if _AT not in text or not text.endswith("`"):
        if isinstance(err, msgspec.DecodeError):
            return error_type("$", f"not valid JSON ({text})")
        return error_type("$", text)
    message, _, where = text[:-1].rpartition(_AT)
    if "[...]" in where:
        try:
            if raw is None and data is not None:
                raw = msgspec.json.decode(data)
            where = _resolve(where, raw, target)
        except Exception:  # noqa: BLE001 - precision is best effort; msgspec's own path stays
            pass
    return error_type(where, message)


def _resolve(where: str, raw: Any, typ: Any) -> str:
    """Replace each ``[...]`` of msgspec's path ``where`` by the key that fails."""
    if not where.startswith("$"):
        return where
    out, node = "$", raw
    for match in _TOKEN.finditer(where, 1):
        name, index = match.groups()
        typ = _pick(typ, node)
        if name is not None:
            out, node, typ = f"{out}.{name}", node[name], _field_type(typ, name)
        elif index == "...":
            value_type = typing.get_args(typ)[1]
            for key, value in node.items():  # noqa: B007 - the key that fails is used after the break
                try:
                    msgspec.convert(value, value_type)
                except msgspec.ValidationError:
                    break
            else:
                return out + where[match.start():]
            out, node, typ = key_path(out, key), value, value_type
        else:
            i = int(index)
            out, node, typ = f"{out}[{i}]", node[i], _item_type(typ, i)
    return out


def _pick(typ: Any, node: Any) -> Any:
    """The member of a union that a raw JSON value of ``node``'s kind would decode into."""
    if typing.get_origin(typ) not in (Union, types.UnionType):
        return typ
    for member in typing.get_args(typ):
        origin = typing.get_origin(member) or member
        if isinstance(node, dict) and (origin is dict or _is_object_struct(member)):
            return member
        if isinstance(node, list) and (origin in (list, tuple) or _is_array_struct(member)):
            return member
    return typ


def _is_object_struct(typ: Any) -> bool:
    return isinstance(typ, type) and issubclass(typ, msgspec.Struct) and not typ.__struct_config__.array_like


def _is_array_struct(typ: Any) -> bool:
    return isinstance(typ, type) and issubclass(typ, msgspec.Struct) and typ.__struct_config__.array_like


def _field_type(typ: Any, name: str) -> Any:
    for field in msgspec.structs.fields(typ):
        if field.encode_name == name:
            return field.type
    raise KeyError(name)


def _item_type(typ: Any, i: int) -> Any:
    if _is_array_struct(typ):
        return msgspec.structs.fields(typ)[i].type
    args = typing.get_args(typ)
    if typing.get_origin(typ) is tuple and not (len(args) == 2 and args[1] is Ellipsis):
        return args[i]
    return args[0]
