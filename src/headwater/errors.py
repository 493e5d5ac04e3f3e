"""Exception roots shared by every layer.

One root (:class:`HeadwaterError`) lets a caller catch "anything headwater refused" without also
catching programming errors; the specific classes live with the layer that raises them.
"""

__all__ = ["HeadwaterError"]


class HeadwaterError(Exception):
    """Base class of every error headwater raises on purpose (bad input, bad data, refused access)."""
