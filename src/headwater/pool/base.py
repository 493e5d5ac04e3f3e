"""``DataPool``: the cheesechaser base class, with a batch download that keeps its promises.

Subclasses implement :meth:`DataPool.mock_resource`. The generic
:meth:`DataPool.batch_download_to_directory` here works for any such subclass: bounded work in flight,
an exact ``max_downloads``, metainfo written into ``dst_dir``, atomic copies, one progress bar, and a
:class:`DownloadReport`. Index-backed pools (:class:`~headwater.pool.indexed.IndexedPool`) override it
with the planned, resumable range-read engine.

Example:
    >>> import os, tempfile
    >>> from contextlib import contextmanager
    >>> class Echo(DataPool):
    ...     @contextmanager
    ...     def mock_resource(self, resource_id, resource_info, silent=False):
    ...         with tempfile.TemporaryDirectory() as td:
    ...             open(os.path.join(td, f"{resource_id}.txt"), "w").write(str(resource_id))
    ...             yield td, resource_info
    >>> out = tempfile.mkdtemp()
    >>> Echo().batch_download_to_directory([1, 2, 3], out, max_downloads=2, silent=True).delivered
    2
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from typing import Any

from tqdm import tqdm

from ..archive import safe_target
from ..storage import DiskFullError, StoreAuthError, atomic_path
from .errors import ResourceNotFoundError
from .report import DownloadReport

__all__ = ["DataPool", "split_resource_item", "write_metainfo"]

log = logging.getLogger(__name__)


def split_resource_item(item: Any) -> tuple[Any, Any]:
    """cheesechaser accepts ``id`` or ``(id, info)`` items."""
    if isinstance(item, tuple) and len(item) == 2:
        return item
    return item, None


def write_metainfo(dst_dir: str, metainfo_fmt: str, resource_id: Any, info: Any) -> str:
    """Write a resource's info JSON into ``dst_dir`` atomically (cheesechaser writes it to a temp dir)."""
    target = safe_target(dst_dir, metainfo_fmt.format(resource_id=resource_id))
    with atomic_path(target) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(info, f, indent=4, sort_keys=True, ensure_ascii=False)
    return target


class DataPool:
    """Abstract pool of resources addressed by id (cheesechaser's interface)."""

    def mock_resource(
        self, resource_id: Any, resource_info: Any, silent: bool = False
    ) -> AbstractContextManager[tuple[str, Any]]:
        """Context manager yielding ``(directory holding the resource's files, resource_info)``."""
        raise NotImplementedError

    def batch_download_to_directory(
        self,
        resource_ids: Iterable[Any],
        dst_dir: str,
        max_workers: int = 12,
        save_metainfo: bool = True,
        metainfo_fmt: str = "{resource_id}_metainfo.json",
        max_downloads: int | None = None,
        silent: bool | None = False,
    ) -> DownloadReport:
        """Download resources into ``dst_dir`` through :meth:`mock_resource`; see the module docstring."""
        start = time.perf_counter()
        os.makedirs(dst_dir, exist_ok=True)
        report = DownloadReport()
        lock = threading.Lock()
        fatal: list[StoreAuthError | DiskFullError] = []  # stop the batch: refused credentials, a full disk

        def one(resource_id: Any, info: Any) -> bool:
            try:
                with self.mock_resource(resource_id, info, silent=True) as (td, info2):
                    files = 0
                    for root, _dirs, names in os.walk(td):
                        for name in names:
                            rel = os.path.relpath(os.path.join(root, name), td)
                            with atomic_path(safe_target(dst_dir, rel)) as tmp:
                                shutil.copyfile(os.path.join(root, name), tmp)
                            files += 1
                    if save_metainfo and info2 is not None:
                        write_metainfo(dst_dir, metainfo_fmt, resource_id, info2)
                with lock:
                    report.downloaded.append(resource_id)
                    report.files += files
                return True
            except ResourceNotFoundError:
                with lock:
                    report.missing.append(resource_id)
            except (StoreAuthError, DiskFullError) as err:
                fatal.append(err)
            except Exception as err:  # noqa: BLE001 - recorded per resource in the report
                log.warning("resource %r failed: %r", resource_id, err)
                with lock:
                    report.failed[resource_id] = repr(err)
            return False

        items: Iterator[Any] = iter(resource_ids)
        running: dict[Future[bool], Any] = {}
        delivered = 0
        with tqdm(desc="Downloading", unit="res", disable=silent) as bar, ThreadPoolExecutor(max_workers) as ex:
            while True:
                limit = max_workers if max_downloads is None else min(max_workers, max_downloads - delivered)
                while not fatal and len(running) < limit:
                    item = next(items, StopIteration)
                    if item is StopIteration:
                        break
                    rid, info = split_resource_item(item)
                    running[ex.submit(one, rid, info)] = rid
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    running.pop(fut)
                    delivered += fut.result()
                    bar.update()
        if fatal:
            raise fatal[0]
        report.seconds = time.perf_counter() - start
        return report
