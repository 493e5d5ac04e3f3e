"""Errors of the evaluate layer.

Example:
    >>> issubclass(EvaluationError, ValueError), EvaluationError("no ground truth").exit_code
    (True, 2)
"""

from __future__ import annotations

from ..errors import HeadwaterError

__all__ = ["EvaluationError", "ImageSizeError"]


class EvaluationError(HeadwaterError, ValueError):
    """Ground truth and predictions cannot be evaluated together (a droplet twice, no ground truth …)."""


class ImageSizeError(EvaluationError):
    """An image's pixel size is unknown: the droplet carries none and no ``image_sizes`` was given."""
