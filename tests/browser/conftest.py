"""Fixtures of the browser tests: one headless Chromium and one live server for all of them.

The served catalog is published through the real publisher (JPEGs packed into a real pool), so every
thumbnail the browser decodes went through the pool layer and the renderer like a user's would:

* database ``open`` (public): ``acme/pets``, :data:`N` droplets in split ``train``; ``cat`` in the even
  ones, ``dog`` (box + polygon mask) in every third, ``person`` (keypoints) in the first, and a class named
  :data:`HOSTILE` in two of them;
* database ``vault`` (private, owned by ``alice``): ``alice/diary``, 3 droplets.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Browser, BrowserContext, Page

from headwater.catalog import Catalog
from headwater.publish import publish
from headwater.server.app import ServerConfig

from ..support.browser import PageWatch, chromium
from ..support.servers import live_server, make_user

HOSTILE = "<img src=x onerror=alert(1)>"
"""A class name that runs a script wherever a page writes it as markup instead of text."""
N = 14


@dataclass(frozen=True)
class Served:
    url: str
    catalog: str
    open_uid: str
    vault_uid: str
    rows: list[dict[str, Any]]
    alice: str
    """alice's API key: she owns the private database ``vault``."""

    def grid(self, query: str = "") -> str:
        return f"{self.url}/view/open/acme/pets/{self.open_uid}/train" + (f"?{query}" if query else "")

    def sample(self, ordinal: int) -> str:
        return f"{self.url}/view/open/acme/pets/{self.open_uid}/train/{ordinal}"


def _box(x1: float, y1: float, x2: float, y2: float, confidence: float | None = None) -> dict[str, Any]:
    box: dict[str, Any] = {"rectangle": [[x1, y1], [x2, y2]]}
    if confidence is not None:
        box["confidence"] = confidence
    return box


def pet_rows() -> list[dict[str, Any]]:
    """The droplets of ``acme/pets`` (images ``{i}.jpg``)."""
    rows = []
    for i in range(N):
        classes: dict[str, Any] = {}
        if i % 2 == 0:
            classes["cat"] = {"instances": [{"boundingBox": _box(0.1, 0.1, 0.5, 0.6, 0.9)}]}
        if i % 3 == 0:
            mask = [[[0.55, 0.5], [0.9, 0.55], [0.85, 0.9], [0.6, 0.85]]]
            classes["dog"] = {"instances": [{"boundingBox": _box(0.55, 0.5, 0.9, 0.9, 0.6),
                                             "segmentation": {"mask": mask}}]}
        if i == 0:
            classes["person"] = {"instances": [{"keypoints": {"nose": {"point": [0.3, 0.3]},
                                                              "hand": {"point": [0.4, 0.7], "occluded": True}}}]}
        if i in (5, 10):
            classes[HOSTILE] = {"instances": [{"boundingBox": _box(0.3, 0.3, 0.7, 0.7)}]}
        rows.append({"kind": "ImageAnnotation", "uid": f"pet{i:02d}", "image": {"paths": [f"{i}.jpg"]},
                     "classes": classes, "metadata": {"n": i, "note": HOSTILE if i == 5 else "plain"}})
    return rows


def write_images(folder: str, names: list[str], size: tuple[int, int] = (320, 240)) -> None:
    """Real JPEGs (a gradient and a disc, different per image) named ``names`` in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    w, h = size
    for k, name in enumerate(names):
        img = Image.linear_gradient("L").resize(size).convert("RGB")
        draw = ImageDraw.Draw(img)
        draw.ellipse((w // 4, h // 4, w // 2 + k % 5 * 10, h // 2 + k % 7 * 8), fill=(40 * k % 256, 120, 200))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(buf.getvalue())


def _publish(cat: Catalog, root: str, database: str, namespace: str, name: str,
             rows: list[dict[str, Any]]) -> str:
    folder = os.path.join(root, f"{database}-src")
    write_images(folder, [row["image"]["paths"][0] for row in rows])
    jsonl = os.path.join(folder, "droplets.jsonl")
    with open(jsonl, "w") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)
    record = publish(cat, database, namespace, name, jsonl, images=folder,
                     pool_dir=os.path.join(root, f"{database}-pool"), splits="train", silent=True)
    return record.uid


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The catalog of the module docstring behind a live ``headwater serve`` app on 127.0.0.1."""
    root = str(tmp_path_factory.mktemp("browser"))
    path = os.path.join(root, "catalog.sqlite")
    rows = pet_rows()
    diary = [{"kind": "ImageAnnotation", "uid": f"d{i}", "image": {"paths": [f"d{i}.jpg"]},
              "classes": {"secret": {"instances": [{"boundingBox": _box(0.2, 0.2, 0.8, 0.8)}]}}} for i in range(3)]
    with Catalog(path) as cat:
        alice = make_user(cat, "alice")
        cat.create_database("open", public=True)
        cat.create_database("vault", owner="alice")
        open_uid = _publish(cat, root, "open", "acme", "pets", rows)
        vault_uid = _publish(cat, root, "vault", "alice", "diary", diary)
    with live_server(ServerConfig(catalog=path, thumbnail_workers=2)) as url:
        yield Served(url, path, open_uid, vault_uid, rows, alice)


@pytest.fixture(scope="package")
def closed_url(served: Served) -> Iterator[str]:
    """The same catalog behind a server without anonymous reads (``serve --no-anonymous``)."""
    with live_server(ServerConfig(catalog=served.catalog, anonymous_read=False, thumbnail_workers=2)) as url:
        yield url


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the browser tests (Debian's; tests/support/browser.py). Package-scoped,
    not session-scoped: while Playwright's sync API is started, its event loop counts as running in this
    thread, and a later test calling ``asyncio.run`` would fail."""
    with chromium() as b:
        yield b


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile for one test: no cookies, empty cache."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture
def watch(page: Page) -> Iterator[PageWatch]:
    """Console errors, uncaught exceptions, CSP violations and dialogs of ``page``: the test fails if any
    happened on any page it visited."""
    w = PageWatch(page)
    yield w
    w.assert_clean()
