"""A real S3-compatible HTTP server for the object-store tests: moto's standalone server (``moto_server``),
a stand-in for MinIO or S3 (neither runs here). It speaks the S3 REST API over real HTTP, so obstore's
requests, signatures and errors are the ones it sends to S3."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1",
               "AWS_ALLOW_HTTP": "true"}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def s3_server() -> Iterator[str]:
    """The endpoint URL of a fresh moto server; stopped on exit."""
    port = _free_port()
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise RuntimeError("moto_server did not start")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(10)


def create_bucket(endpoint: str, bucket: str) -> None:
    """Buckets are the operator's to create (editgate never does); moto takes an unsigned PUT /bucket."""
    httpx.put(f"{endpoint}/{bucket}").raise_for_status()
