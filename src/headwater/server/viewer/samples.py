"""One sample of a split as the viewer shows it: its droplet, its image bytes, its rendered thumbnail.

Why the images come through :class:`~headwater.droplet.ImageFetcher` with the dataset's own pool map: the
viewer reads exactly what a client's download reads (planned range reads into the pool's shards, each
member's sha256 checked), and the same rules of trust apply as for a remote reader — a droplet is data, so it
may not make the server read a file of its own disk (``allow_local=False``) nor open a URL of a scheme the
server does not allow publishers to name (``ServerConfig.pool_url_schemes``); the dataset's pool locations
themselves are the catalog's, so they are trusted.

A fetcher (and the pools it opened) is kept per dataset uid — datasets are immutable — for the most recent
:data:`MAX_FETCHERS` datasets.

Example:
    >>> import os, tempfile
    >>> from headwater.catalog import Catalog
    >>> cat = Catalog(os.path.join(tempfile.mkdtemp(), "c.sqlite"))
    >>> _ = cat.create_database("main")
    >>> ds = cat.publish("main", "acme", "cats", template={"kind": "ImageAnnotationTemplate"}, splits={"train": [
    ...     b'{"kind":"ImageAnnotation","uid":"a","image":{"paths":["/etc/hostname"]},"classes":{}}']})
    >>> samples = Samples(cat, allowed_schemes=("https",))
    >>> samples.droplet(ds, "train", 0).uid
    'a'
    >>> type(samples.image(ds, samples.droplet(ds, "train", 0))).__name__   # a local path: refused, not read
    'ImageFetchError'
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from ...catalog import Catalog, DatasetRecord, NotFoundError
from ...droplet import DropletError, ImageAnnotation, ImageFetcher, decode_droplet, parse_image_ref
from ...errors import HeadwaterError
from ...pool import Member
from ...render import RenderOptions, encode, render

__all__ = ["MAX_FETCHERS", "THUMBNAIL_QUALITY", "Samples", "Thumbnail"]

MAX_FETCHERS = 64
"""Datasets whose image fetchers (and open pools) are kept."""

THUMBNAIL_QUALITY = 82
"""JPEG quality of thumbnails."""


@dataclass(frozen=True)
class Thumbnail:
    """A rendered JPEG and, when the image could not be shown, why (then the JPEG is a placeholder tile)."""

    data: bytes
    problem: str | None


class Samples:
    """Reads droplets and images of a catalog's datasets for the viewer (see the module docstring)."""

    def __init__(self, catalog: Catalog, *, allowed_schemes: Iterable[str]) -> None:
        self.catalog = catalog
        self.allowed_schemes = tuple(allowed_schemes)
        self._fetchers: OrderedDict[str, ImageFetcher] = OrderedDict()
        self._lock = threading.Lock()

    def droplet(self, record: DatasetRecord, split: str, ordinal: int) -> ImageAnnotation:
        """The droplet at ``ordinal`` of ``split`` (NotFoundError for a split or ordinal that is not there)."""
        return decode_droplet(self.raw(record, split, ordinal))

    def raw(self, record: DatasetRecord, split: str, ordinal: int) -> bytes:
        """The droplet's stored JSON."""
        count = record.splits.get(split)
        if count is None:
            raise NotFoundError(f"split {split!r} not found in dataset {record.uid!r} (splits: {list(record.splits)})")
        if not 0 <= ordinal < count:
            raise NotFoundError(f"sample {ordinal} not found in split {split!r} ({count} samples)")
        return self.catalog.read_ordinals(record.uid, split, [ordinal])[0]

    def fetcher(self, record: DatasetRecord) -> ImageFetcher:
        """The image fetcher of ``record`` (made once per dataset, see the module docstring)."""
        with self._lock:
            fetcher = self._fetchers.get(record.uid)
            if fetcher is not None:
                self._fetchers.move_to_end(record.uid)
                return fetcher
            fetcher = ImageFetcher(record.pools, allow_local=False, allowed_schemes=self.allowed_schemes,
                                   trusted_urls=[p for p in record.pools.values()])
            self._fetchers[record.uid] = fetcher
            while len(self._fetchers) > MAX_FETCHERS:
                self._fetchers.popitem(last=False)
            return fetcher

    def image(self, record: DatasetRecord, droplet: ImageAnnotation) -> bytes | BaseException:
        """The image bytes of ``droplet``, or the error that says why they cannot be read."""
        try:
            return self.fetcher(record).fetch(droplet)
        except (HeadwaterError, OSError) as err:
            return err

    def member(self, record: DatasetRecord, droplet: ImageAnnotation) -> tuple[str, Member] | None:
        """``(pool name, member)`` of the droplet's first image path when it names a pool member that exists,
        else None (an URL, or a member that cannot be found: :meth:`image` says why)."""
        paths = droplet.image.paths
        if not paths:
            return None
        try:
            ref = parse_image_ref(paths[0])
            if ref.kind != "pool" or ref.pool is None:
                return None
            return ref.pool, self.fetcher(record).locate(ref)
        except (HeadwaterError, OSError):
            return None

    def thumbnail(self, record: DatasetRecord, split: str, ordinal: int, options: RenderOptions,
                  max_size: int) -> Thumbnail:
        """The sample drawn with ``options`` at most ``max_size`` pixels on its longest side, as JPEG."""
        raw = self.raw(record, split, ordinal)
        try:
            droplet = decode_droplet(raw)
        except DropletError:  # drawn as a placeholder naming the problem
            drawn = render(None, raw, options=options, max_size=max_size)
        else:
            drawn = render(self.image(record, droplet), droplet, options=options, max_size=max_size)
        return Thumbnail(encode(drawn.image, "JPEG", quality=THUMBNAIL_QUALITY), drawn.problem)
