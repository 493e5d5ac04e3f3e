"""Upload a local pool (tar shards) into a pool a headwater server serves, resumably.

Why this shape:

* **The server indexes.** Only the ``.tar`` shards travel; the server indexes each one as it arrives
  and writes the index JSON and the pool manifest itself (``PUT /api/pools/{repo}/files/{path}``), so
  an index can never disagree with its shard, whoever uploaded it.
* **Resume by content.** Before sending, the pool's current files are listed once
  (``/api/datasets/{repo}?blobs=true``: path, size, sha256). A shard already there with the same sha256
  is skipped, so an interrupted upload is finished by running the same command again, and nothing is
  sent twice. The local sha256 comes from the shard's index JSON (``hash_lfs``) when it has one that
  matches the file's size, else it is computed.
* **Checked end to end.** The server answers with the sha256 of what it received; a mismatch stops the
  upload with an error naming the shard. A ``PUT`` of the same bytes is idempotent, so a shard whose
  request failed transiently is simply sent again (the transport's retry policy).

Example:
    >>> import tempfile
    >>> shards = local_shards(tempfile.mkdtemp())   # a folder without tars: nothing to upload
    >>> shards
    []
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote

from tqdm import tqdm

from ..archive import index_path_for
from .errors import ClientError
from .transports import HttpTransport

__all__ = ["LocalShard", "UploadReport", "local_shards", "upload_pool"]

_READ = 1 << 20


@dataclass(frozen=True)
class LocalShard:
    """One tar of a local pool: its path relative to the pool root (``/``-separated), size and sha256."""

    path: str
    full_path: str
    size: int
    sha256: str


@dataclass
class UploadReport:
    """What an upload did: shards sent and skipped (already there, same bytes), bytes sent, the commit."""

    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    commit: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"uploaded": self.uploaded, "skipped": self.skipped, "bytes_sent": self.bytes_sent,
                "commit": self.commit}


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_READ):
            digest.update(block)
    return digest.hexdigest()


def _indexed_sha256(tar_path: str, size: int) -> str | None:
    """The tar's sha256 from its hfutils index, if the index exists and describes a file of this size."""
    try:
        with open(index_path_for(tar_path), "rb") as f:
            index = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("filesize") != size or not isinstance(index.get("hash_lfs"), str):
        return None
    return str(index["hash_lfs"])


def local_shards(root: str) -> list[LocalShard]:
    """Every ``*.tar`` under ``root`` (sorted by relative path; hidden and temp names skipped)."""
    if not os.path.isdir(root):
        raise ClientError(f"{root!r} is not a folder holding a pool")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.endswith(".tar") or name.startswith("."):
                continue
            full = os.path.join(folder, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            size = os.path.getsize(full)
            found.append(LocalShard(rel, full, size, _indexed_sha256(full, size) or _file_sha256(full)))
    return sorted(found, key=lambda s: s.path)


def _remote_shas(transport: HttpTransport, repo: str) -> dict[str, str]:
    info = transport.request_json("GET", f"/api/datasets/{_quote_repo(repo)}", params={"blobs": "true"})
    out = {}
    for sibling in info.get("siblings", []) if isinstance(info, dict) else []:
        lfs = sibling.get("lfs") or {}
        if isinstance(lfs, dict) and isinstance(lfs.get("sha256"), str):
            out[str(sibling.get("rfilename"))] = lfs["sha256"]
    return out


def _quote_repo(repo: str) -> str:
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts):
        raise ClientError(f"a pool repo is 'owner/name', got {repo!r}")
    return "/".join(quote(p, safe="") for p in parts)


def _chunks(path: str, on_bytes: Callable[[int], None]) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while block := f.read(_READ):
            on_bytes(len(block))
            yield block


def upload_pool(transport: HttpTransport, repo: str, root: str, *, prefix: str = "", replace: bool = False,
                silent: bool | None = True) -> UploadReport:
    """Upload the tars under local folder ``root`` into the server's pool ``repo`` (``owner/name``),
    under ``prefix`` (a folder inside the pool, e.g. ``"batch2"``). Skips shards already there with the
    same sha256. A shard of the same path but other bytes is replaced only with ``replace=True`` —
    otherwise nothing is sent and :class:`ClientError` names them (in an increment-id pool, ids 1 and
    1001 share ``images/0001.tar``: replacing it drops id 1). Raises
    :class:`~headwater.client.errors.RemoteError` subclasses for server refusals (401/403 key, 404
    unknown pool, 413 too big) and :class:`ClientError` for a sha256 mismatch after an upload."""
    prefix = prefix.strip("/")
    shards = local_shards(root)
    remote = _remote_shas(transport, repo)
    report = UploadReport()
    todo = []
    for shard in shards:
        target = f"{prefix}/{shard.path}" if prefix else shard.path
        if remote.get(target) == shard.sha256:
            report.skipped.append(target)
        else:
            todo.append((target, shard))
    clashes = [target for target, _ in todo if target in remote]
    if clashes and not replace:
        raise ClientError(f"{len(clashes)} shard(s) already exist in {repo} with other bytes (e.g. {clashes[0]}); "
                          "nothing was uploaded. Replace them (their old members are no longer served) with "
                          "replace=True / --replace, or upload under another --prefix")
    with tqdm(total=sum(s.size for _, s in todo), unit="B", unit_scale=True, desc=f"Uploading to {repo}",
              disable=silent) as bar:
        for target, shard in todo:
            sent = [0]

            def count(n: int, sent: list[int] = sent) -> None:
                sent[0] += n
                bar.update(n)

            def body(shard: LocalShard = shard, sent: list[int] = sent) -> Iterator[bytes]:
                bar.update(-sent[0])  # a retried attempt starts the shard again
                sent[0] = 0
                return _chunks(shard.full_path, count)

            answer = transport.request_json(
                "PUT", f"/api/pools/{_quote_repo(repo)}/files/{quote(target)}", content=body,
                params={"replace": "true"} if target in remote else None,  # the server refuses it otherwise
                headers={"Content-Length": str(shard.size), "Content-Type": "application/x-tar"},
                read_timeout=max(transport.timeout, 120.0 + shard.size / 20e6))  # the server indexes it first
            if not isinstance(answer, dict) or answer.get("sha256") != shard.sha256:
                got = answer.get("sha256") if isinstance(answer, dict) else answer
                raise ClientError(f"{target}: the server stored sha256 {got}, but the local shard is "
                                  f"{shard.sha256}; the upload was corrupted on the way (run again to retry it)")
            report.uploaded.append(target)
            report.bytes_sent += shard.size
            report.commit = answer.get("commit")
    if report.commit is None:
        info = transport.request_json("GET", f"/api/datasets/{_quote_repo(repo)}")
        report.commit = info.get("sha") if isinstance(info, dict) else None
    return report
