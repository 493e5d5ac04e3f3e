"""One S3 for the tests: a moto server on 127.0.0.1, with the environment s3fs and a server process read.

Why one helper: three test modules started moto the same way (dummy credentials, a threaded server on a
free port, ``AWS_ENDPOINT_URL``, s3fs's instance cache cleared so no cached filesystem points at an earlier
server); a fix to one of them (e.g. the cache) now reaches all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

__all__ = ["moto_s3"]


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """Start a moto S3 server and point this process at it until the block ends; yields its endpoint URL.

    ``AWS_ENDPOINT_URL`` is set too, so ``s3://`` URLs work without ``storage_options`` and a child
    process (``headwater serve``) started inside the block finds the same server. Skips the test when the
    ``s3`` extra or moto is not installed.
    """
    s3fs = pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                            "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(name, value)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            mp.setenv("AWS_ENDPOINT_URL", endpoint)
            s3fs.S3FileSystem.clear_instance_cache()
            yield endpoint
        finally:
            s3fs.S3FileSystem.clear_instance_cache()  # its instances point at this server
            server.stop()
