"""What a batch download did, exactly: per resource, and in requests and bytes.

Example:
    >>> r = DownloadReport(downloaded=[1, 2], missing=[3])
    >>> r.summary()
    'downloaded 2, skipped 0, missing 1, failed 0; 0 requests, 0 bytes in 0.00s'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DownloadReport"]


@dataclass
class DownloadReport:
    downloaded: list[Any] = field(default_factory=list)
    skipped: list[Any] = field(default_factory=list)  # already complete in dst_dir (resume)
    missing: list[Any] = field(default_factory=list)  # no shard holds them
    failed: dict[Any, str] = field(default_factory=dict)  # resource → reason
    files: int = 0
    requests: int = 0  # store requests, index and manifest fetches included
    retries: int = 0
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def delivered(self) -> int:
        """Resources now complete in the destination (downloaded or already there)."""
        return len(self.downloaded) + len(self.skipped)

    def summary(self) -> str:
        return (
            f"downloaded {len(self.downloaded)}, skipped {len(self.skipped)}, missing {len(self.missing)}, "
            f"failed {len(self.failed)}; {self.requests} requests, {self.bytes_read} bytes in {self.seconds:.2f}s"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed"] = {str(k): v for k, v in self.failed.items()}
        return data
