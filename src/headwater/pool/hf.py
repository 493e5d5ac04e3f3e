"""Hugging Face-hosted pools: ``HfBasedDataPool`` and ``IncrementIDDataPool`` (cheesechaser names).

Files are read straight from the Hub's ``resolve`` URLs with ``Range`` requests — the contract every
Hub-compatible server (huggingface.co, a mirror, ``headwater serve``) implements — so a batch costs a few
merged range reads per shard and no API calls. ``HF_ENDPOINT`` and ``HF_TOKEN`` are honoured like
``huggingface_hub`` does; a refused token is reported as an authorisation error, not "not found".

Example (needs a Hub-compatible server, so not run here)::

    pool = IncrementIDDataPool("deepghs/danbooru2024", base_level=[3, 4])
    report = pool.batch_download_to_directory([7000001, 7000002], "out/")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import quote

from ..storage import Store
from .indexed import IndexedPool
from .layouts import IncrementIDLayout, Layout, ScanLayout
from .planner import PlanPolicy

__all__ = ["HfBasedDataPool", "IncrementIDDataPool", "hf_resolve_store"]


def hf_resolve_store(repo_id: str, revision: str = "main", *, hf_token: str | None = None,
                     endpoint: str | None = None, repo_type: str = "dataset") -> Store:
    """A read-only store over ``{endpoint}/{datasets/}{repo}/resolve/{revision}/``."""
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    token = hf_token or os.environ.get("HF_TOKEN")
    prefix = {"dataset": "datasets/", "space": "spaces/", "model": ""}[repo_type]
    url = f"{endpoint}/{prefix}{repo_id}/resolve/{quote(revision, safe='')}"
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return Store(url, headers=headers)


class HfBasedDataPool(IndexedPool):
    """A pool whose shards live in a Hugging Face dataset repo, indexes optionally in another."""

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
    ) -> None:
        self.data_repo_id = data_repo_id
        self.data_revision = data_revision
        self.idx_repo_id = idx_repo_id or data_repo_id
        self.idx_revision = idx_revision
        data = hf_resolve_store(data_repo_id, data_revision, hf_token=hf_token, endpoint=endpoint)
        if (self.idx_repo_id, idx_revision) == (data_repo_id, data_revision):
            index = data
        else:
            index = hf_resolve_store(self.idx_repo_id, idx_revision, hf_token=hf_token, endpoint=endpoint)
        super().__init__(data, index, layout=layout or ScanLayout(), plan=plan)


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
    ) -> None:
        self.base_level = base_level
        self.base_dir = base_dir
        super().__init__(
            data_repo_id, data_revision, idx_repo_id, idx_revision, hf_token,
            layout=IncrementIDLayout(base_level, base_dir), plan=plan, endpoint=endpoint,
        )
