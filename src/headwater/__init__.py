"""headwater: indexed tar pools and versioned annotation datasets.

Layers live in sub-packages (``storage`` → ``archive`` → ``pool`` → …); import the one you need,
e.g. ``from headwater.pool import StorePool``.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
