"""What a publish reads: a :class:`Source` yields :class:`SourceItem`\\ s — one droplet each, with its place.

Readers (:mod:`.jsonl`, :mod:`.coco`, :mod:`.yolo`, and the server's request body) turn their format into
datatap wire dicts and report what they cannot convert as problems of the item, never by raising
half-way, so that a publish can name every problem of a source at once.

Example:
    >>> item = SourceItem("line 3", None, problems=("invalid JSON",))
    >>> item.where, item.droplet, item.problems
    ('line 3', None, ('invalid JSON',))
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["SourceItem", "Source"]


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One droplet as a source reader produced it.

    ``droplet`` is the datatap wire JSON as a dict (None when the reader could not build one; then
    ``problems`` says why). Image paths without a scheme are local files relative to the source's
    ``images_root``. ``split`` is an explicit split (a YOLO ``images/val`` folder, a JSONL ``"split"``
    field, a COCO file given as one split); it wins over the seeded rule.
    """

    where: str
    droplet: Mapping[str, Any] | None
    split: str | None = None
    problems: tuple[str, ...] = ()


@runtime_checkable
class Source(Protocol):
    """What :func:`~headwater.publish.publish` reads: re-iterable items, where local images live, an optional
    template.

    ``name`` names the source in problems when several are published together. ``images_root`` is the
    folder local image paths are relative to (None: the current directory; a server's request body has
    none). ``template`` is the datatap wire JSON of an ``ImageAnnotationTemplate`` (COCO and YOLO readers
    know every class, even unused ones) or None to infer it from the droplets.
    """

    @property
    def name(self) -> str: ...

    @property
    def images_root(self) -> str | None: ...

    @property
    def template(self) -> Mapping[str, Any] | None: ...

    def items(self) -> Iterator[SourceItem]:
        """Yield every item; called twice by a publish (validate, then write)."""
        ...
