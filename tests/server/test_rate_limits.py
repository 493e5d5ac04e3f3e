"""Rate limits of a real ``headwater serve`` process: a token bucket per API key and per anonymous address,
429 with ``Retry-After`` and a JSON message; refused keys cost their address; ``/healthz`` never limited;
off by default on loopback; the stock Hub client waits out its 429s (cheesechaser and datatap run under the
default in tests/interop).

The limits of the exact-count tests are per minute, so that none depends on how fast the machine sends
requests: a bucket refills one token in 20-60 s, far longer than a test takes. The Hub client's test needs
only that eight download threads on loopback outrun 40 requests a second (they send ~200).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from headwater.archive import pack_directory
from headwater.cli import main
from headwater.server.app import ServerConfig, create_app
from headwater.server.errors import ServerConfigError
from headwater.server.rate_limits import DEFAULT_RATE_LIMIT, RateLimit, default_rate_limit

from ..support.files import make_files
from ..support.servers import bearer, live_server, make_user, serve_process, share_pools


def _statuses(client: httpx.Client, url: str, n: int, headers: dict[str, str] | None = None) -> list[int]:
    return [client.get(url, headers=headers).status_code for _ in range(n)]


def test_anonymous_clients_get_429_with_retry_after_once_their_burst_is_spent(tmp_path) -> None:
    catalog = str(tmp_path / "catalog.sqlite")
    with serve_process(catalog, "--rate-limit", "1/min,burst=3") as server, httpx.Client() as client:
        url = server.url + "/api/database"
        assert _statuses(client, url, 3) == [200, 200, 200]
        refused = client.get(url)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["content-type"] == "application/json"
        message = refused.json()["error"]
        assert "too many requests" in message and "1/min,burst=3 per address" in message and "retry in" in message
        assert client.get(server.url + "/healthz").status_code == 200  # never limited


def test_each_api_key_has_its_own_bucket_and_refused_keys_cost_their_address(tmp_path) -> None:
    catalog = str(tmp_path / "catalog.sqlite")
    alice, bob = make_user(catalog, "alice"), make_user(catalog, "bob")
    with serve_process(catalog, "--rate-limit", "2/min,burst=3") as server, httpx.Client() as client:
        url = server.url + "/api/user"
        assert _statuses(client, url, 2, bearer(alice)) == [200, 200]
        # the same key sent raw (as Hub clients send it) draws from the same bucket
        assert _statuses(client, url, 2, bearer(alice, raw=True)) == [200, 429]
        assert _statuses(client, url, 3, bearer(bob)) == [200, 200, 200]  # bob's bucket is his own
        assert client.get(server.url + "/api/database").status_code == 200  # so is the address's
        # keys the server refuses take from the address's bucket: two more spend it…
        assert _statuses(client, url, 2, bearer("hw_000000000000_made-up")) == [401, 401]
        # …and then neither new made-up keys nor anonymous requests from that address get through
        assert client.get(url, headers=bearer("hw_111111111111_another")).status_code == 429
        assert client.get(server.url + "/api/database").status_code == 429


def test_no_limit_unless_configured_and_the_default_depends_on_the_address(tmp_path) -> None:
    assert default_rate_limit("127.0.0.1") == default_rate_limit("::1") == default_rate_limit("localhost") == "off"
    assert default_rate_limit("0.0.0.0") == default_rate_limit("10.0.0.5") == DEFAULT_RATE_LIMIT
    assert str(RateLimit.parse("3000/min")) == "50/s,burst=100"
    for bad in ("fast", "10", "0/s", "5/s,burst=0", "5/day"):
        with pytest.raises(ServerConfigError, match="rate limit"):
            ServerConfig(str(tmp_path / "c.sqlite"), rate_limit=bad)
    with serve_process(str(tmp_path / "catalog.sqlite")) as server, httpx.Client() as client:  # loopback: off
        assert set(_statuses(client, server.url + "/api/database", 250)) == {200}
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert "--rate-limit" in result.output and "loopback" in result.output and "with --workers N" in result.output
    result = CliRunner().invoke(main, ["serve", "--catalog", str(tmp_path / "c.sqlite"), "--port", "0",
                                       "--rate-limit", "fast"])
    assert result.exit_code == 2 and "error: rate limit 'fast'" in result.output


def test_huggingface_hub_waits_out_429s_and_downloads_every_file(tmp_path) -> None:
    """A limit tight enough that the stock Hub client is refused again and again: it honours Retry-After and
    retries, and every file arrives whole (the default limit is far looser: see DEFAULT_RATE_LIMIT)."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    # 20 shards: 40 files and the manifest, fetched far faster than 40/s on loopback. The burst (10) must hold a
    # wave of the 8 workers' retries: with burst 5 the client was refused 6 times in a row and gave up.
    ids = [*range(1, 21), *range(101, 121)]
    make_files(str(tmp_path / "src"), ids, seed=3)
    pool = str(tmp_path / "pool")
    pack_directory(str(tmp_path / "src"), pool, layout="increment-id", base_level=2, silent=True)
    app = create_app(ServerConfig(str(tmp_path / "catalog.sqlite"), pools={"acme/px": pool},
                                  rate_limit="40/s,burst=10"))
    share_pools(app.state.catalog, ["acme/px"], public=True)
    statuses: Counter[int] = Counter()

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        async def tap(message: Any) -> None:
            if message["type"] == "http.response.start":
                statuses[message["status"]] += 1
            await send(message)

        await app(scope, receive, tap if scope["type"] == "http" else send)

    with live_server(counted) as url:
        api = huggingface_hub.HfApi(endpoint=url, token=False)
        files = api.list_repo_files("acme/px", repo_type="dataset")
        assert len(files) >= 40
        out = huggingface_hub.snapshot_download("acme/px", repo_type="dataset", endpoint=url, token=False,
                                                local_dir=str(tmp_path / "out"), max_workers=8)
        for name in files:
            with open(os.path.join(pool, name), "rb") as a, open(os.path.join(out, name), "rb") as b:
                assert a.read() == b.read(), name
    assert statuses[429] > 0, statuses  # it was refused, and got everything all the same
