"""Read-only access to a run's files in its output folder: a local path or s3://.

The operator only ever reads small files (job.json, results.json) and the tail of metrics.jsonl, never a
whole history: a long run's metrics file grows without bound and the status timer runs every few seconds.
S3 goes through s3fs (imported on first use, so the operator starts without it). On a cluster each reader holds
one tenant namespace's credentials (the keys of its object-store Secret: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
AWS_SESSION_TOKEN, AWS_ENDPOINT_URL for MinIO and other S3-compatible stores, AWS_REGION) and reads no local path;
without credentials (`vlmtune render`, tests) it uses the process's AWS environment and local folders.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from vlmtune.spec import RunLayout
from vlmtune_operator.figures import RunFiles

TAIL_BYTES = 64 * 1024
"""How much of the end of metrics.jsonl is read: hundreds of rows, of which only the last matters."""


class StoreUnavailable(RuntimeError):
    """The store could not be asked (no credentials, no route, access denied); the message says which URI."""


class StoreReader:
    """Reads files of runs; a missing file is None, never an error.

    Args:
        credentials: the AWS_* variables of one tenant's Secret; None: the process's own environment.
        allow_local: read local paths (never on a cluster: they would be the operator's own disk).
    """

    def __init__(
        self, tail_bytes: int = TAIL_BYTES, credentials: Mapping[str, str] | None = None, allow_local: bool = True
    ):
        self.tail_bytes = tail_bytes
        self.credentials = None if credentials is None else dict(credentials)
        self.allow_local = allow_local
        self._s3 = None

    def read_json(self, uri: str) -> dict | None:
        """The JSON object in `uri`, or None when the file is missing, unfinished or not an object."""
        data = self.read_tail(uri, max_bytes=None)
        if data is None:
            return None
        try:
            document = json.loads(data)
        except ValueError:
            return None  # written while we read it: next time
        return document if isinstance(document, dict) else None

    def read_tail(self, uri: str, max_bytes: int | None = TAIL_BYTES) -> bytes | None:
        """The last `max_bytes` of `uri` (all of it when None), or None when it does not exist.

        Raises:
            StoreUnavailable: the store refused or could not be reached.
        """
        try:
            if uri.startswith("s3://"):
                return self._read_s3(uri.removeprefix("s3://"), max_bytes)
            if "://" in uri and not uri.startswith("file://"):
                raise StoreUnavailable(f"{uri}: only local paths and s3:// URIs can be read by the operator")
            if not self.allow_local:
                raise StoreUnavailable(f"{uri}: local paths are not read on a cluster")
            return _read_local(Path(uri.removeprefix("file://")).expanduser(), max_bytes)
        except FileNotFoundError:
            return None
        except StoreUnavailable:
            raise
        except Exception as err:  # botocore and aiohttp errors are not OSErrors; all mean "not now"
            raise StoreUnavailable(f"cannot read {uri}: {type(err).__name__}: {err}") from err

    def _read_s3(self, path: str, max_bytes: int | None) -> bytes:
        fs = self._s3_filesystem()
        size = fs.info(path)["size"]
        start = 0 if max_bytes is None else max(0, size - max_bytes)
        return fs.cat_file(path, start=start, end=size) if size else b""

    def _s3_filesystem(self):
        if self._s3 is None:
            import s3fs

            # No listings cache: a status must show the file as it is now, not as it was at the last listing.
            # Short timeouts and few retries: an unreachable store costs a status tick seconds, not minutes;
            # the next tick asks again anyway.
            self._s3 = s3fs.S3FileSystem(
                use_listings_cache=False,
                skip_instance_cache=True,
                **s3_options(self.credentials),
                config_kwargs={
                    "connect_timeout": 3,
                    "read_timeout": 10,
                    "retries": {"max_attempts": 2, "mode": "standard"},
                },
            )
        return self._s3


def s3_options(credentials: Mapping[str, str] | None) -> dict:
    """s3fs arguments from one tenant's Secret, or (None) from the process's environment.

    Raises:
        StoreUnavailable: the Secret holds no access key: falling back to the operator's own identity would read
            with credentials that are not the tenant's.
    """
    source = os.environ if credentials is None else credentials
    endpoint = source.get("AWS_ENDPOINT_URL_S3") or source.get("AWS_ENDPOINT_URL")
    client = {"endpoint_url": endpoint} if endpoint else {}
    region = source.get("AWS_REGION") or source.get("AWS_DEFAULT_REGION")
    if region:
        client["region_name"] = region
    if credentials is None:
        return {"client_kwargs": client}
    if not credentials.get("AWS_ACCESS_KEY_ID") or not credentials.get("AWS_SECRET_ACCESS_KEY"):
        raise StoreUnavailable("the object-store Secret has no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    return {
        "key": credentials["AWS_ACCESS_KEY_ID"],
        "secret": credentials["AWS_SECRET_ACCESS_KEY"],
        "token": credentials.get("AWS_SESSION_TOKEN") or None,
        "client_kwargs": client,
    }


def read_run(reader: StoreReader, kind: str, output_uri: str) -> tuple[RunFiles, bool]:
    """The files of one run that its status needs, and whether the metrics tail is the whole file.

    Raises:
        StoreUnavailable: the store refused or could not be reached.
    """
    layout = RunLayout(output_uri)
    record = reader.read_json(layout.record)
    if kind == "EvalJob":
        results = None if (record or {}).get("phase") == "Succeeded" else reader.read_json(layout.results)
        return RunFiles(record=record, results=results), True
    tail = reader.read_tail(layout.metrics, reader.tail_bytes)
    return RunFiles(metrics_tail=tail, record=record), tail is None or len(tail) < reader.tail_bytes


def _read_local(path: Path, max_bytes: int | None) -> bytes:
    with path.open("rb") as handle:
        if max_bytes is not None:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - max_bytes))
        return handle.read()


def join(uri: str, name: str) -> str:
    return f"{uri.rstrip('/')}/{name}"
