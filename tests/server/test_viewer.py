"""The viewer under /view/: access rules (Bearer, session cookie, --no-anonymous), security headers, escaping
of hostile names, thumbnails (ETag, 304, immutable, LRU budget), filters and their counts, statistics SVG.

One catalog for the module (published through the real publisher: JPEGs packed into a real pool), served
in-process by starlette's TestClient, and once over loopback by a real uvicorn for concurrent thumbnails.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image
from starlette.testclient import TestClient

from headwater.catalog import Catalog, SplitFilter
from headwater.cli import main
from headwater.publish import publish
from headwater.server.app import ServerConfig, create_app
from headwater.server.errors import RenderPoolBusy
from headwater.server.viewer.sessions import COOKIE_NAME, SessionSigner, load_session_secret
from headwater.server.viewer.thumbnails import RenderPool, ThumbnailCache

from ..support.servers import bearer, live_server, make_user, serve_process

HOSTILE = "<img src=x onerror=alert(1)>"
N = 14


@dataclass
class World:
    catalog: str
    rows: list[dict[str, Any]]
    images: dict[str, bytes]
    open_uid: str
    vault_uid: str
    alice: str  # alice's read key (owner of the private database "vault")
    bob: str    # another user's key


class _Tags(HTMLParser):
    """What a page's markup holds (as a browser parses it): scripts, ``on…`` attributes, inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str, str]] = []
        self.handlers: list[str] = []
        self.styles: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [name for name, _ in attrs]
        self.handlers += [n for n in names if n.startswith("on")]
        self.styles += [n for n in names if n == "style"] + (["<style>"] if tag == "style" else [])
        if tag == "script":
            self.scripts.append((str(dict(attrs).get("src", "")).split("?")[0], ""))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.scripts.append(("inline", data))


def _box(x1: float, y1: float, x2: float, y2: float, conf: float | None = None) -> dict[str, Any]:
    box: dict[str, Any] = {"rectangle": [[x1, y1], [x2, y2]]}
    if conf is not None:
        box["confidence"] = conf
    return {"boundingBox": box}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = str(tmp_path_factory.mktemp("viewer"))
    rng = random.Random(3)
    images_dir = os.path.join(root, "imgs")
    os.makedirs(images_dir)
    rows, images = [], {}
    for i in range(N):
        name = f"{i}.jpg"
        img = Image.new("RGB", (160, 120), (rng.randrange(256), 90, 140))
        buf = io.BytesIO()
        img.save(buf, "JPEG")
        images[name] = buf.getvalue()
        with open(os.path.join(images_dir, name), "wb") as f:
            f.write(images[name])
        classes: dict[str, Any] = {"cat": {"instances": [_box(0.1, 0.1, 0.5, 0.6, 0.9)]}}
        if i % 3 == 0:
            classes["dog"] = {"instances": [_box(0.5, 0.5, 0.9, 0.9, 0.4), _box(0.2, 0.6, 0.3, 0.8, 0.7)]}
        if i == 4:
            classes[HOSTILE] = {"instances": [_box(0.3, 0.3, 0.4, 0.4)]}
        rows.append({"kind": "ImageAnnotation", "uid": f"s{i:02d}", "image": {"paths": [name]}, "classes": classes,
                     "metadata": {"camera": HOSTILE if i == 4 else "a", "n": i}})
    jsonl = os.path.join(root, "droplets.jsonl")
    with open(jsonl, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    path = os.path.join(root, "catalog.sqlite")
    with Catalog(path) as cat:
        alice = make_user(cat, "alice")
        bob = make_user(cat, "bob")
        cat.create_database("open", public=True)
        cat.create_database("vault")
        cat.change_database_access("vault", owner="alice")
        opened = publish(cat, "open", "acme", "pets", jsonl, images=images_dir, pool_dir=os.path.join(root, "p1"),
                         splits={"train": 1.0}, silent=True)
        vault = publish(cat, "vault", "acme", "secret", jsonl, images=images_dir, pool_dir=os.path.join(root, "p2"),
                        splits={"train": 1.0}, silent=True)
    return World(path, rows, images, opened.uid, vault.uid, alice, bob)


@pytest.fixture(scope="module")
def app(world: World) -> Any:
    return create_app(ServerConfig(catalog=world.catalog, thumbnail_workers=2))


@pytest.fixture
def client(app: Any) -> TestClient:
    return TestClient(app)


def _signed_in(app: Any, secret: str) -> TestClient:
    client = TestClient(app)
    r = client.post("/view/signin", data={"key": secret, "next": "/view/"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client


def _order(world: World) -> list[str]:
    """Droplet uids of split train, in split order."""
    with Catalog(world.catalog) as cat:
        return [json.loads(d)["uid"] for d in cat.read_range(world.open_uid, "train")]


def test_pages_carry_security_headers_and_no_inline_script(client: TestClient, world: World) -> None:
    for url in ("/view/", "/view/open", "/view/open/acme/pets", f"/view/open/acme/pets/{world.open_uid}/train",
                f"/view/open/acme/pets/{world.open_uid}/train/0", f"/view/open/acme/pets/{world.open_uid}/train/stats",
                "/view/signin", "/view/nothing-here"):
        r = client.get(url)
        assert r.status_code == (404 if "nothing" in url else 200), (url, r.text)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-type"].startswith("text/html")
        # every script is a file of ours; no inline script, no event handler attribute, no inline style
        tags = _Tags()
        tags.feed(r.text)
        assert tags.scripts == [("/view/static/viewer.js", "")], url
        assert not tags.handlers and not tags.styles, url
    js = client.get("/view/static/viewer.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]


def test_private_database_needs_its_owner_by_bearer_or_cookie(app: Any, client: TestClient, world: World) -> None:
    vault = f"/view/vault/acme/secret/{world.vault_uid}/train"
    thumb = f"/view/thumb/{world.vault_uid}/train/0.jpg"
    assert "vault" not in client.get("/view/").text
    for url in ("/view/vault", "/view/vault/acme/secret", vault, vault + "/3", vault + "/stats", thumb,
                f"/view/image/{world.vault_uid}/train/0"):
        assert client.get(url).status_code == 404, url  # as if it did not exist
        assert client.get(url, headers=bearer(world.bob)).status_code == 404, url  # not bob's
        assert client.get(url, headers=bearer(world.alice)).status_code == 200, url
    assert client.get("/view/", headers=bearer("hw_000000000000_" + "x" * 43)).status_code == 401  # a bad key: refused

    alice = _signed_in(app, world.alice)
    cookie = alice.cookies[COOKIE_NAME]
    assert world.alice not in cookie and world.alice.split("_")[2] not in cookie  # no key material
    for url in ("/view/vault", vault, thumb):
        assert alice.get(url).status_code == 200, url
    page = alice.get("/view/").text
    assert "vault" in page and re.search(r'<span id="user">alice</span>', page)


def test_cookie_attributes_and_open_redirects(app: Any, world: World) -> None:
    client = TestClient(app)
    r = client.post("/view/signin", data={"key": world.alice, "next": "https://evil.example/x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/view/"
    set_cookie = r.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie and "path=/view" in set_cookie
    assert "max-age=" in set_cookie and "secure" not in set_cookie  # plain http: a Secure cookie would be dropped
    for target in ("//evil.example/", "/view/\\evil", "/api/database"):
        r = client.post("/view/signin", data={"key": world.alice, "next": target}, follow_redirects=False)
        assert r.headers["location"] == "/view/", target
    r = client.post("/view/signin", data={"key": world.alice, "next": "/view/vault?x=1"}, follow_redirects=False)
    assert r.headers["location"] == "/view/vault?x=1"
    https = TestClient(app, base_url="https://testserver")
    r = https.post("/view/signin", data={"key": world.alice}, follow_redirects=False)
    assert "secure" in r.headers["set-cookie"].lower()
    bad = TestClient(app).post("/view/signin", data={"key": "hw_000000000000_" + "y" * 43})
    assert bad.status_code == 401 and COOKIE_NAME not in bad.cookies and 'id="signin-error"' in bad.text


def test_tampered_expired_and_revoked_sessions_are_refused(app: Any, world: World) -> None:
    with Catalog(world.catalog) as cat:
        key_id, secret = cat.create_api_key("alice")
    signer: SessionSigner = app.state.viewer.signer
    client = TestClient(app)

    def sees_vault(cookie: str) -> bool:
        client.cookies.clear()
        client.cookies.set(COOKIE_NAME, cookie, path="/view")
        return client.get("/view/vault").status_code == 200

    good = signer.sign(key_id)
    assert sees_vault(good)
    head, mac = good.rsplit(".", 1)
    assert not sees_vault(head + "." + ("0" if mac[0] != "0" else "1") + mac[1:])  # tampered signature
    other_id = _key_id(world.bob)
    assert not sees_vault(good.replace(key_id, other_id))  # someone else's key id under alice's signature
    assert not sees_vault(signer.sign(key_id, now=time.time() - signer.max_age - 1))  # expired
    assert not sees_vault(good.replace(".", "", 1)) and not sees_vault("garbage")
    forged = SessionSigner(b"k" * 64, max_age=3600).sign(key_id)
    assert not sees_vault(forged)  # signed with another secret
    with Catalog(world.catalog) as cat:
        cat.revoke_api_key(key_id)
    assert not sees_vault(good)  # revoked: the session ends at once
    assert TestClient(app).post("/view/signin", data={"key": secret}).status_code == 401


def _key_id(secret: str) -> str:
    return secret.split("_")[1]


def test_signout_ends_the_session(app: Any, world: World) -> None:
    client = _signed_in(app, world.alice)
    assert client.get("/view/vault").status_code == 200
    r = client.post("/view/signout", follow_redirects=False)
    assert r.status_code == 303 and COOKIE_NAME in r.headers["set-cookie"]
    assert client.get("/view/vault").status_code == 404
    assert 'id="signin-link"' in client.get("/view/").text


def test_session_secret_is_made_at_first_use(tmp_path: Any) -> None:
    path = str(tmp_path / "c.sqlite")
    client = TestClient(create_app(ServerConfig(catalog=path)))
    assert client.get("/view/").status_code == 200
    client.cookies.set(COOKIE_NAME, "v1.0123456789ab.1.00", path="/view")
    assert client.get("/view/").status_code == 200  # a stale cookie: anonymous
    assert os.path.exists(path + ".session-secret")
    quiet = TestClient(create_app(ServerConfig(catalog=str(tmp_path / "d.sqlite"))))
    assert quiet.get("/view/").status_code == 200 and quiet.get("/api/database").status_code == 200
    assert not os.path.exists(str(tmp_path / "d.sqlite.session-secret"))  # no sign-in, no file


def test_session_secret_is_one_file_shared_by_processes(world: World, tmp_path: Any) -> None:
    other = create_app(ServerConfig(catalog=world.catalog))  # another worker, or the server after a restart
    client = TestClient(create_app(ServerConfig(catalog=world.catalog)))
    cookie = _signed_in(other, world.alice).cookies[COOKIE_NAME]
    secret_file = world.catalog + ".session-secret"
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600
    client.cookies.set(COOKIE_NAME, cookie, path="/view")
    assert client.get("/view/vault").status_code == 200
    path = str(tmp_path / "s" / "secret")
    assert load_session_secret(path) == load_session_secret(path) and len(load_session_secret(path)) >= 32
    (tmp_path / "short").write_text("abc")
    with pytest.raises(ValueError, match="at least 32"):
        load_session_secret(str(tmp_path / "short"))


def test_no_anonymous_sends_pages_to_signin(world: World) -> None:
    app = create_app(ServerConfig(catalog=world.catalog, anonymous_read=False))
    client = TestClient(app)
    r = client.get("/view/open/acme/pets?x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/view/signin?next=%2Fview%2Fopen%2Facme%2Fpets%3Fx%3D1"
    assert client.get(f"/view/thumb/{world.open_uid}/train/0.jpg").status_code == 401
    assert client.get("/view/signin").status_code == 200
    signed = _signed_in(app, world.bob)
    assert signed.get("/view/open/acme/pets").status_code == 200
    thumb = signed.get(f"/view/thumb/{world.open_uid}/train/0.jpg")
    assert thumb.status_code == 200 and thumb.headers["cache-control"].startswith("private")


def test_hostile_names_are_text(client: TestClient, world: World) -> None:
    ordinal = _order(world).index("s04")
    base = f"/view/open/acme/pets/{world.open_uid}/train"
    for url in (f"{base}/{ordinal}", f"{base}/stats", base, "/view/open/acme/pets"):
        text = client.get(url).text
        assert HOSTILE not in text, url
        assert "onerror=alert(1)" not in text.replace("&lt;img src=x onerror=alert(1)&gt;", ""), url
    sample = client.get(f"{base}/{ordinal}").text
    assert 'data-class="&lt;img src=x onerror=alert(1)&gt;"' in sample  # the toggle, as an attribute value
    shown = unescape(re.search(r'<pre id="droplet-json">(.*?)</pre>', sample, re.S).group(1))  # type: ignore[union-attr]
    shown_droplet = json.loads(shown)
    assert shown_droplet["classes"].keys() == world.rows[4]["classes"].keys()
    assert shown_droplet["metadata"] == world.rows[4]["metadata"]
    stats = client.get(f"{base}/stats").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in stats


def test_sample_page_has_image_overlay_toggles_and_links(client: TestClient, world: World) -> None:
    base = f"/view/open/acme/pets/{world.open_uid}/train"
    order = _order(world)
    page = client.get(f"{base}/1").text
    for needle in ('id="sample-image"', 'id="overlay"', 'class="toggle-kind" data-kind="box"',
                   'class="toggle-class" data-class="cat"', 'id="raw-image"', 'id="prev-sample"', 'id="next-sample"'):
        assert needle in page, needle
    raw = re.search(r'id="raw-image" href="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = client.get(raw)
    assert r.content == world.images[f"{int(order[1][1:])}.jpg"] and r.headers["content-type"] == "image/jpeg"
    assert "sandbox" in r.headers["content-security-policy"] and "immutable" in r.headers["cache-control"]
    assert client.get(raw, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    assert 'id="prev-sample"' not in client.get(f"{base}/0").text
    assert 'id="next-sample"' not in client.get(f"{base}/{N - 1}").text
    assert client.get(f"{base}/{N}").status_code == 404
    assert client.get(f"{base}/-1").status_code == 404


def test_filters_change_the_count_and_keep_through_pages_and_samples(client: TestClient, world: World) -> None:
    base = f"/view/open/acme/pets/{world.open_uid}/train"
    order = _order(world)

    def count(query: list[tuple[str, Any]]) -> int:
        text = client.get(base, params=query).text
        return int(re.search(r'<span id="match-count">(\d+)</span>', text).group(1))  # type: ignore[union-attr]

    dogs = [u for u in order if int(u[1:]) % 3 == 0]
    assert count([]) == N
    dog_query = SplitFilter(present=("dog",)).to_query()
    assert count(dog_query) == len(dogs)
    assert count(SplitFilter(present=("dog", HOSTILE)).to_query()) == 0
    grid = client.get(base, params=list[tuple[str, Any]](dog_query)).text
    cells = re.findall(r'<a class="cell" href="([^"]+)"', grid)
    assert len(cells) == len(dogs) == len(re.findall(r'<img class="thumb"', grid))
    # the sample page keeps the filter: next goes to the next *dog*
    second = client.get(unescape(cells[1])).text
    nxt = unescape(re.search(r'id="next-sample" href="([^"]+)"', second).group(1))  # type: ignore[union-attr]
    assert nxt.split("?")[0].endswith(f"/{order.index(dogs[2])}")
    prev = unescape(re.search(r'id="prev-sample" href="([^"]+)"', second).group(1))  # type: ignore[union-attr]
    assert prev.split("?")[0].endswith(f"/{order.index(dogs[0])}")
    # a bad filter is shown, not a crash
    bad = client.get(base, params=[("conf", "lots")])
    assert bad.status_code == 200 and 'id="filter-error"' in bad.text


def test_paging(world: World, app: Any, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.server.routes import viewer

    monkeypatch.setattr(viewer, "PAGE_SIZE", 5)
    base = f"/view/open/acme/pets/{world.open_uid}/train"
    first = client.get(base).text
    assert len(re.findall(r'class="thumb"', first)) == 5 and 'id="prev-page"' not in first
    nxt = unescape(re.search(r'id="next-page" href="([^"]+)"', first).group(1))  # type: ignore[union-attr]
    last = client.get(unescape(re.search(r'id="next-page" href="([^"]+)"',  # type: ignore[union-attr]
                                         client.get(nxt).text).group(1))).text
    assert len(re.findall(r'class="thumb"', last)) == N - 10 and 'id="next-page"' not in last


def test_thumbnails_are_immutable_and_revalidate(client: TestClient, world: World) -> None:
    url = f"/view/thumb/{world.open_uid}/train/2.jpg"
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    with Image.open(io.BytesIO(r.content)) as img:
        assert max(img.size) <= 256 and img.format == "JPEG"
    etag = r.headers["etag"]
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert client.get(url + "?size=64").headers["etag"] != etag  # other options: another thumbnail
    small = client.get(url + "?size=64&masks=0")
    with Image.open(io.BytesIO(small.content)) as img:
        assert max(img.size) <= 64
    assert client.get(url + "?size=5000").status_code == 400
    assert client.get(url + "?boxes=maybe").status_code == 400
    assert client.get(f"/view/thumb/{world.open_uid}/train/{N}.jpg").status_code == 404
    assert client.get(f"/view/thumb/{world.open_uid}/nope/0.jpg").status_code == 404
    assert client.get("/view/thumb/no-such-uid/train/0.jpg").status_code == 404


def test_thumbnail_cache_keeps_to_its_budget(world: World) -> None:
    cache = ThumbnailCache(budget=100)
    for i in range(50):
        cache.put(i, bytes(30))
        assert cache.size <= 100
    assert len(cache) == 3 and cache.get(49) is not None and cache.get(0) is None
    cache.put("big", bytes(101))
    assert cache.get("big") is None
    app = create_app(ServerConfig(catalog=world.catalog, thumbnail_cache_bytes=6000, thumbnail_workers=1))
    client = TestClient(app)
    sizes = [len(client.get(f"/view/thumb/{world.open_uid}/train/{i}.jpg").content) for i in range(N)]
    kept = app.state.viewer.thumbnails
    assert 0 < kept.size <= 6000 and len(kept) < N and sum(sizes) > 6000
    # the most recent one is served from the cache, with the same bytes
    hits = kept.hits
    assert len(client.get(f"/view/thumb/{world.open_uid}/train/{N - 1}.jpg").content) == sizes[-1]
    assert kept.hits == hits + 1


def test_stats_page_draws_svg_histograms(client: TestClient, world: World) -> None:
    text = client.get(f"/view/open/acme/pets/{world.open_uid}/train/stats").text
    charts = re.findall(r'<svg xmlns="http://www.w3.org/2000/svg" class="chart".*?</svg>', text, re.S)
    assert len(charts) >= 4
    classes = charts[0]
    dogs = sum(2 for i in range(N) if i % 3 == 0)
    assert f"<title>cat: {N}</title>" in classes and f"<title>dog: {dogs}</title>" in classes
    assert classes.count('class="bar"') == 3
    assert 'id="stats-count">14<' in text


def test_repository_page_lists_tags_history_and_datasets(client: TestClient, world: World) -> None:
    text = client.get("/view/open/acme/pets").text
    assert 'id="tag-latest"' in text and world.open_uid in text and 'id="tag-history"' in text
    assert f'href="/view/open/acme/pets/{world.open_uid}/train"' in text
    r = client.get("/view/open/acme/pets/latest", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith(f"#dataset-{world.open_uid}")
    # a grid reached by tag links its thumbnails and samples by uid (immutable)
    grid = client.get("/view/open/acme/pets/latest/train").text
    assert f"/view/thumb/{world.open_uid}/train/0.jpg" in grid
    assert f"/view/open/acme/pets/{world.open_uid}/train/0?i=0" in grid


def test_thumbnails_over_loopback_in_parallel(world: World) -> None:
    with live_server(ServerConfig(catalog=world.catalog, thumbnail_workers=2)) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        paths = [f"/view/thumb/{world.open_uid}/train/{i}.jpg?size=128" for i in range(N)] * 3
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(http.get, paths))
        assert all(r.status_code == 200 for r in answers)
        for r in answers:
            with Image.open(io.BytesIO(r.content)) as img:
                assert max(img.size) <= 128
        assert len({r.headers["etag"] for r in answers}) == N


def test_serve_workers_share_one_session_secret(world: World, tmp_path: Any) -> None:
    secret_file = tmp_path / "keys" / "session"
    with serve_process(world.catalog, "--workers", "2", "--session-secret-file", str(secret_file),
                       "--thumbnail-cache", "64KiB") as server:
        assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600  # made once, before the workers started
        cookies = []
        for _ in range(6):  # a new connection each time: the sign-ins and the reads land on both workers
            r = httpx.post(server.url + "/view/signin", data={"key": world.alice}, follow_redirects=False)
            assert r.status_code == 303
            cookies.append(r.cookies[COOKIE_NAME])
        for cookie in cookies:
            for _ in range(3):
                r = httpx.get(server.url + "/view/vault", cookies={COOKIE_NAME: cookie})
                assert r.status_code == 200, r.text
        assert len(set(server.workers())) == 2


def test_serve_refuses_a_bad_session_secret_file_in_one_line(world: World, tmp_path: Any) -> None:
    short = tmp_path / "short"
    short.write_text("too short")
    result = CliRunner().invoke(main, ["serve", "--catalog", world.catalog, "--port", "0",
                                       "--session-secret-file", str(short)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "session secret" in result.output and "Traceback" not in result.output


def test_sample_in_a_served_pool_names_its_shard_and_byte_range(world: World) -> None:
    with Catalog(world.catalog) as cat:
        location = cat.dataset_by_uid(world.open_uid).pools["images"]
    served = TestClient(create_app(ServerConfig(catalog=world.catalog, pools={"acme/pets-images": location})))
    base = f"/view/open/acme/pets/{world.open_uid}/train"
    page = served.get(f"{base}/2").text
    url = unescape(re.search(r'id="shard-url" href="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    first, last = map(int, re.search(r"Range: bytes=(\d+)-(\d+)", page).groups())  # type: ignore[union-attr]
    assert url.startswith("http://testserver/datasets/acme/pets-images/resolve/main/")
    r = served.get(url.removeprefix("http://testserver"), headers={"Range": f"bytes={first}-{last}"})
    assert r.status_code == 206
    assert r.content == served.get(unescape(re.search(r'id="raw-image" href="([^"]+)"', page).group(1))).content  # type: ignore[union-attr]
    assert r.content == world.images[f"{int(_order(world)[2][1:])}.jpg"]
    assert 'id="shard-url"' not in TestClient(create_app(ServerConfig(catalog=world.catalog))).get(f"{base}/2").text


def test_render_pool_is_bounded_and_shares_a_render_per_key() -> None:
    gate = threading.Event()
    calls: list[str] = []

    def job(name: str) -> Any:
        def run() -> str:
            calls.append(name)
            gate.wait(10)
            return name
        return run

    pool = RenderPool(workers=1, max_pending=2)
    try:
        first = pool.submit("a", job("a"))
        assert pool.submit("a", job("a again")) is first  # the same thumbnail asked twice: one render
        second = pool.submit("b", job("b"))
        with pytest.raises(RenderPoolBusy, match="being rendered"):
            pool.submit("c", job("c"))
        gate.set()
        assert first.result(10) == "a" and second.result(10) == "b" and calls == ["a", "b"]
        deadline = time.monotonic() + 5
        while pool.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pool.submit("c", job("c")).result(10) == "c"  # room again once they are done
    finally:
        gate.set()
        pool.close()
