"""Naming rules for everything addressed by name in the catalog (and in URLs of the server).

Why a rule at all: names appear in URL paths (``/database/{db}/repository/{ns}/{name}/{tag}``) and in
slugs (``ns/name:tag``), so slashes, colons, whitespace and control characters would make them
ambiguous. Allowed: 1–128 characters of ``A-Z a-z 0-9 . _ -``, starting with a letter or digit.

Example:
    >>> check_name("namespace", "coco-2017")
    'coco-2017'
    >>> check_name("namespace", "a/b")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    headwater.catalog.errors.InvalidNameError: invalid namespace 'a/b': use 1-128 characters of A-Z a-z 0-9 ...
"""

from __future__ import annotations

import re

from .errors import InvalidNameError

__all__ = ["NAME_PATTERN", "check_name"]

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_RULE = "use 1-128 characters of A-Z a-z 0-9 . _ - starting with a letter or digit"


def check_name(kind: str, value: object) -> str:
    """Return ``value`` if it is a valid name, else raise :class:`InvalidNameError` naming ``kind``."""
    if not isinstance(value, str):
        raise InvalidNameError(f"invalid {kind} {value!r}: expected a string, got {type(value).__name__}")
    if not NAME_PATTERN.fullmatch(value):
        raise InvalidNameError(f"invalid {kind} {value!r}: {_RULE}")
    return value
