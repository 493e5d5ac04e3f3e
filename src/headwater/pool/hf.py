"""Hugging Face-hosted pools: ``HfBasedDataPool`` and ``IncrementIDDataPool`` (cheesechaser names).

Files are read straight from the Hub's ``resolve`` URLs with ``Range`` requests — the contract every
Hub-compatible server (huggingface.co, a mirror, ``headwater serve``) implements — so a batch costs a few
merged range reads per shard. ``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured like ``huggingface_hub`` does;
a refused token is reported as an authorisation error, not "not found".

**Revision pinning.** A branch such as ``main`` moves: an upload can land between reading the manifest (or
an index) and reading the tar, and offsets from one version applied to the bytes of another give wrong
bytes or hash failures. So before its first read a pool asks the Hub API once which commit the revision
names (``GET /api/datasets/{repo}/revision/{rev}`` → ``sha``; huggingface.co and ``headwater serve`` both
answer it) and reads every file at ``resolve/{commit}`` from then on: one consistent version, whatever
lands later. ``HfBasedDataPool.data_commit`` tells which. A server that keeps only current bytes (``headwater
serve`` does) answers 404 for a file changed since the pinned commit; that is reported as
:class:`~headwater.pool.errors.PoolChangedError` naming both commits, never as other bytes. A server
without the API (a static mirror of ``resolve/`` paths) gets the unpinned revision, as before. A revision
that is already a 40-hex commit id costs no lookup.

Example (needs a Hub-compatible server, so not run here)::

    pool = IncrementIDDataPool("deepghs/danbooru2024", base_level=[3, 4])
    report = pool.batch_download_to_directory([7000001, 7000002], "out/")
    pool.data_commit   # the commit every byte above came from
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

import httpx

from ..archive import Manifest
from ..storage import RetryPolicy, Store, StoreNotFoundError
from .errors import PoolChangedError, PoolNotFoundError, UnpinnedWarning
from .indexed import IndexedPool
from .layouts import IncrementIDLayout, Layout, ScanLayout
from .planner import PlanPolicy

__all__ = ["HfBasedDataPool", "IncrementIDDataPool", "HfResolveStore", "hf_resolve_store"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_COMMIT_ID = re.compile(r"[0-9a-f]{40}")
_REPO_PREFIX = {"dataset": "datasets/", "space": "spaces/", "model": ""}
_API_KIND = {"dataset": "datasets", "space": "spaces", "model": "models"}


class HfResolveStore(Store):
    """A read-only store over ``{endpoint}/{datasets/}{repo}/resolve/{revision}/`` that pins the revision.

    The revision is resolved to a commit on first use (lazily, so constructing a pool stays offline as in
    cheesechaser) and every path is read under that commit afterwards — see the module docstring for why.
    ``pin=False`` reads the revision as given on every request.
    """

    def __init__(
        self,
        endpoint: str,
        repo_id: str,
        revision: str = "main",
        *,
        repo_type: str = "dataset",
        headers: dict[str, str] | None = None,
        retry: RetryPolicy | None = None,
        pin: bool = True,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.repo_id = repo_id
        self.revision = revision
        self.repo_type = repo_type
        self._headers = dict(headers or {})
        self._commit: str | None = revision if _COMMIT_ID.fullmatch(revision) else None
        self._pinned = not pin or self._commit is not None  # nothing (more) to look up
        self._pin_lock = threading.Lock()
        super().__init__(self.resolve_url(revision), headers=headers, retry=retry)

    def resolve_url(self, revision: str) -> str:
        """The ``resolve`` root URL of this repo at ``revision``."""
        return f"{self.endpoint}/{_REPO_PREFIX[self.repo_type]}{self.repo_id}/resolve/{quote(revision, safe='')}"

    # -- pinning -----------------------------------------------------------------------------------------
    @property
    def commit(self) -> str | None:
        """The commit every read goes to (looked up on first access), or ``None`` if the server named none."""
        return self.pin()

    def pin(self) -> str | None:
        """Resolve the revision to a commit once (thread-safe) and move the store root onto it."""
        if self._pinned:
            return self._commit
        with self._pin_lock:
            if not self._pinned:
                commit = self._lookup_commit()
                if commit is not None:
                    self._commit = commit
                    self.url = self.root = self.resolve_url(commit)  # for HTTP the fsspec root is the URL
                self._pinned = True
        return self._commit

    def _request(self, method: str, url: str) -> httpx.Response:
        # trust_env=False like the range reader that reads the data: both reach the same hosts the same way.
        # verify=False only for a plain http:// URL, where there is no TLS to verify: loading the CA bundle
        # costs 40-100 ms per client, paid on the cold start of every download from such a server.
        verify = not url.startswith("http://")
        with httpx.Client(headers=self._headers, timeout=30, trust_env=False, verify=verify) as client:
            return client.request(method, url)

    def _lookup_commit(self) -> str | None:
        """The commit the Hub API names for the revision; ``None`` when the server does not say."""
        api = f"{self.endpoint}/api/{_API_KIND[self.repo_type]}/{self.repo_id}/revision/{quote(self.revision, safe='')}"

        def get() -> httpx.Response:
            try:
                response = self._request("GET", api + "?expand=sha")  # huggingface.co: only the sha, no file list
            except httpx.TransportError as err:  # refused, reset, timed out: retried like any store read
                raise ConnectionError(f"{api}: {err}") from err
            self._raise_if_absent(response)
            response.raise_for_status()  # 401/403 → auth error, 404 → not found, 429/5xx → retried (by status)
            return response

        try:
            response = self._call(get, f"commit of {self.repo_id}@{self.revision} ({api})")
        except PoolNotFoundError:
            raise
        except StoreNotFoundError:
            self._unpinned("the server has no Hub API revision route")
            return None
        except httpx.HTTPStatusError as err:  # e.g. 400/405 from a mirror that does not implement the API
            self._unpinned(f"the revision lookup answered HTTP {err.response.status_code}")
            return None
        try:
            sha = response.json().get("sha")
        except (ValueError, AttributeError):  # not a JSON object: a static server's page
            sha = None
        if isinstance(sha, str) and _COMMIT_ID.fullmatch(sha):
            return sha
        self._unpinned("the revision lookup named no commit")
        return None

    def _raise_if_absent(self, response: httpx.Response) -> None:
        """:class:`PoolNotFoundError` when a Hub-compatible server says the repo or the revision does not exist
        (``X-Error-Code``), rather than taking the 404 for a server without the API."""
        code = response.headers.get("x-error-code")
        if response.status_code not in (401, 404) or code not in ("RepoNotFound", "RevisionNotFound"):
            return
        if code == "RevisionNotFound":
            raise PoolNotFoundError(f"revision {self.revision!r} not found in {self.repo_type} repo {self.repo_id} "
                                    f"on {self.endpoint}")
        hint = " (or it is private: give a token)" if response.status_code == 401 else ""
        raise PoolNotFoundError(f"{self.repo_type} repo {self.repo_id!r} not found on {self.endpoint}{hint}")

    def _unpinned(self, why: str) -> None:
        warnings.warn(f"{self.endpoint}: {why}; reading {self.repo_id}@{self.revision} unpinned (a change on the "
                      "server mid-read may mix versions; commit ids will be None)", UnpinnedWarning, stacklevel=4)

    def _explain_missing(self, path: str, err: StoreNotFoundError) -> BaseException:
        """A 404 under the pinned commit: :class:`PoolChangedError` if the file exists at the revision now
        under another commit (the server no longer serves the pinned bytes), else the 404 unchanged (a file
        that is simply absent, e.g. a shard without an index, must stay "not found")."""
        commit = self._commit
        if commit is None or commit == self.revision:
            return err
        try:
            probe = self._request("HEAD", f"{self.resolve_url(self.revision)}/{quote(path.lstrip('/'), safe='/')}")
        except httpx.HTTPError:
            return err
        finally:
            self.stats.add(requests=1)
        now = probe.headers.get("x-repo-commit")
        if probe.status_code >= 400 or not now or now == commit:
            return err
        return PoolChangedError(
            f"{path!r} is not served at commit {commit} of {self.repo_id}, the commit {self.revision!r} named when "
            f"this pool first read it, but is at {self.revision!r} now (commit {now}): the pool changed since "
            f"(a server that keeps only current bytes, like headwater's, answers 404 for a file changed after "
            f"the commit). Open the pool again to read the new version.",
            repo_id=self.repo_id, revision=self.revision, commit=commit, current_commit=now, path=path,
        )

    def _explained(self, path: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except StoreNotFoundError as err:
            explained = self._explain_missing(path, err)
            if explained is err:
                raise
            raise explained from err

    # -- every access goes through the pinned root ------------------------------------------------------
    def full_path(self, path: str) -> str:
        self.pin()
        return super().full_path(path)

    def describe(self, path: str) -> str:
        self.pin()
        return super().describe(path)

    def find(self, suffix: str = "") -> list[str]:
        self.pin()
        return super().find(suffix)

    def root_exists(self) -> bool | None:
        """Pins the revision, which raises :class:`PoolNotFoundError` for a repo or revision the server does
        not have; None otherwise (a ``resolve/`` root cannot be listed)."""
        self.pin()
        return None

    def read_range(self, path: str, start: int, end: int) -> bytes:
        return self._explained(path, lambda: super(HfResolveStore, self).read_range(path, start, end))

    def read_bytes(self, path: str) -> bytes:
        return self._explained(path, lambda: super(HfResolveStore, self).read_bytes(path))

    def open(self, path: str) -> BinaryIO:
        return self._explained(path, lambda: super(HfResolveStore, self).open(path))

    def info(self, path: str) -> dict[str, Any]:
        return self._explained(path, lambda: super(HfResolveStore, self).info(path))

    def size(self, path: str) -> int:
        return self._explained(path, lambda: super(HfResolveStore, self).size(path))


def hf_resolve_store(repo_id: str, revision: str = "main", *, hf_token: str | None = None,
                     endpoint: str | None = None, repo_type: str = "dataset", pin: bool = True,
                     retry: RetryPolicy | None = None) -> HfResolveStore:
    """A read-only store over ``{endpoint}/{datasets/}{repo}/resolve/{revision}/``, pinned to the revision's
    commit on first use unless ``pin=False`` (see :class:`HfResolveStore`); ``retry``: how patient its reads
    are (default: the store's)."""
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    token = hf_token or os.environ.get("HF_TOKEN")
    if repo_type not in _REPO_PREFIX:
        raise ValueError(f"repo_type must be one of {sorted(_REPO_PREFIX)}, not {repo_type!r}")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return HfResolveStore(endpoint, repo_id, revision, repo_type=repo_type, headers=headers, pin=pin, retry=retry)


class HfBasedDataPool(IndexedPool):
    """A pool whose shards live in a Hugging Face dataset repo, indexes optionally in another.

    Revisions are pinned to commits on first use (``pin_revision=False`` turns that off); see
    :attr:`data_commit` and :attr:`idx_commit`. ``retry``: how patient reads are (e.g.
    ``RetryPolicy.lasting(60)`` to wait out a restarting server).
    """

    def __init__(
        self,
        data_repo_id: str,
        data_revision: str = "main",
        idx_repo_id: str | None = None,
        idx_revision: str = "main",
        hf_token: str | None = None,
        *,
        layout: Layout | None = None,
        plan: PlanPolicy | None = None,
        endpoint: str | None = None,
        pin_revision: bool = True,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.data_repo_id = data_repo_id
        self.data_revision = data_revision
        self.idx_repo_id = idx_repo_id or data_repo_id
        self.idx_revision = idx_revision
        data = hf_resolve_store(data_repo_id, data_revision, hf_token=hf_token, endpoint=endpoint, pin=pin_revision,
                                retry=retry)
        if (self.idx_repo_id, idx_revision) == (data_repo_id, data_revision):
            index = data  # one store: index and shards pinned to the same commit
        else:
            index = hf_resolve_store(self.idx_repo_id, idx_revision, hf_token=hf_token, endpoint=endpoint,
                                     pin=pin_revision, retry=retry)
        self._data_hub, self._idx_hub = data, index
        super().__init__(data, index, layout=layout or ScanLayout(), plan=plan)

    def _open_manifest(self) -> Manifest | bool:
        """The manifest at the pinned commit — or none when it changed since (any upload rewrites it): then
        ids resolve through the per-shard indexes of that commit, which a server keeps serving for every
        shard that did not change, instead of failing every lookup."""
        try:
            return super()._open_manifest()
        except PoolChangedError as err:
            log.warning("%s Resolving ids through the per-shard indexes of commit %s instead.", err, err.commit)
            return False

    @property
    def data_commit(self) -> str | None:
        """The commit the shards are read at (resolved now if no read happened yet); ``None`` when the server
        names no commit (a static mirror) or pinning is off."""
        return self._data_hub.commit

    @property
    def idx_commit(self) -> str | None:
        """The commit the indexes and the manifest are read at (see :attr:`data_commit`)."""
        return self._idx_hub.commit


class IncrementIDDataPool(HfBasedDataPool):
    """Integer ids in shards chosen by ``id % 10**base_level`` (cheesechaser's layout)."""

    def __init__(
        self,
        data_repo_id: str,
        data_revision: str = "main",
        idx_repo_id: str | None = None,
        idx_revision: str = "main",
        base_level: int | Sequence[int] = 3,
        base_dir: str = "images",
        hf_token: str | None = None,
        *,
        plan: PlanPolicy | None = None,
        endpoint: str | None = None,
        pin_revision: bool = True,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_level = base_level
        self.base_dir = base_dir
        super().__init__(
            data_repo_id, data_revision, idx_repo_id, idx_revision, hf_token,
            layout=IncrementIDLayout(base_level, base_dir), plan=plan, endpoint=endpoint, pin_revision=pin_revision,
            retry=retry,
        )
