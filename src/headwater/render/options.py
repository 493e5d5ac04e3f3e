"""What to draw: :class:`RenderOptions`, one frozen value shared by the CLI, the viewer and the cache keys.

Why a value and not keyword arguments: the viewer caches rendered thumbnails and answers ``ETag`` from
what was drawn, so the options must have one short, stable spelling (:meth:`RenderOptions.key`) that
changes whenever the drawing would.

Example:
    >>> RenderOptions().key()
    'bmkl'
    >>> RenderOptions(classes=frozenset({"dog", "cat"}), min_confidence=0.5, masks=False).key()
    'bkl-q0.5-c8c979c66'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["RenderOptions"]


@dataclass(frozen=True)
class RenderOptions:
    """Filters and layers of a rendering.

    ``classes``: the classes drawn (None: all). ``min_confidence``: boxes, masks and keypoints whose own
    confidence is below it are hidden (those without a confidence are kept, datatap's rule). The flags turn
    each kind of annotation on or off; ``labels`` is the class name (and confidence) text, ``attributes``
    adds the instance's attributes to it.
    """

    classes: frozenset[str] | None = None
    min_confidence: float | None = None
    boxes: bool = True
    masks: bool = True
    keypoints: bool = True
    labels: bool = True
    attributes: bool = False

    def __post_init__(self) -> None:
        if self.classes is not None and not isinstance(self.classes, frozenset):
            object.__setattr__(self, "classes", frozenset(self.classes))

    def shows(self, name: str) -> bool:
        """Whether class ``name`` is drawn."""
        return self.classes is None or name in self.classes

    def passes(self, confidence: float | None) -> bool:
        """Whether an annotation with this confidence is drawn (no confidence: always)."""
        return confidence is None or self.min_confidence is None or confidence >= self.min_confidence

    def key(self) -> str:
        """A short string that is the same for the same options in every process (for caches and ETags)."""
        flags = "".join(letter for letter, on in (("b", self.boxes), ("m", self.masks), ("k", self.keypoints),
                                                  ("l", self.labels), ("a", self.attributes)) if on) or "none"
        parts = [flags]
        if self.min_confidence is not None:
            parts.append(f"q{self.min_confidence!r}")
        if self.classes is not None:
            names = "\n".join(sorted(self.classes)).encode()
            parts.append("c" + hashlib.blake2b(names, digest_size=4).hexdigest())
        return "-".join(parts)
