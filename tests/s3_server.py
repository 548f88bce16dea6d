"""A real S3-compatible server (moto) on 127.0.0.1 for the object-store tests; import as `from s3_server import ...`
(tests/ is on sys.path because its conftest.py lives there)."""

from __future__ import annotations

import contextlib

import pytest


class S3Server:
    """moto's S3 server on 127.0.0.1 in this process, stoppable and restartable on the same port (state survives)."""

    def __init__(self):
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self) -> None:
        from moto import server as moto_server

        self._server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


@contextlib.contextmanager
def running_s3(*buckets: str):
    """A real S3-compatible server, reached the way pods do: through the AWS environment variables
    (set in os.environ, so spawned workers see the same store)."""
    import boto3

    server = S3Server()
    server.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            for key, value in {
                "AWS_ENDPOINT_URL": server.endpoint,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_REGION": "us-east-1",
            }.items():
                env.setenv(key, value)
            for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3"):
                env.delenv(key, raising=False)
            client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
            for bucket in buckets:
                client.create_bucket(Bucket=bucket)
            yield server
    finally:
        server.stop()
