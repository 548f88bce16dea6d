"""One writer per output: a lease file, `<output>/lease.json`, held by the driver while it writes the output.

The file names its holder (user, host, pid, job, run id) and a heartbeat the holder renews every
`heartbeat_s`; a second run on the same output is refused with a line naming the holder. What each store
guarantees:

* Local folders (and network filesystems with working locks): the lease is an exclusive `flock` on the file,
  held open for the run. Exactly one process holds it; when the holder dies, however it dies, the kernel drops
  the lock at once, so a killed run never blocks the next one. A holder that hangs keeps it.
* s3://: conditional writes. The lease is created with `If-None-Match: *` (exactly one creator wins) and
  renewed or taken over with `If-Match: <ETag>` (exactly one of several takers wins). A lease whose heartbeat
  is older than `ttl_s` by the store's own clock (its Last-Modified against the Date of the answer, so clock
  skew between machines does not matter), or whose holder is a process of this host that no longer exists, is
  stale and may be taken over. A lease that has already missed two heartbeats is waited for until it is stale
  (a RayJob retried on a fresh cluster finds its dead predecessor's lease, and takes it over within the TTL
  instead of failing); one that is still beating is refused at once. A holder that finds its lease taken (a
  renewal refused) stops writing.
  Stores that ignore the conditional headers (old S3-compatible servers) get a best-effort lease only: check,
  then write, with a window of one request.
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from vlmtune import storage
from vlmtune.spec.layout import RunLayout

TTL_S = 120.0
"""A lease whose heartbeat is older than this is stale (object stores; locally a dead holder frees it at once)."""
HEARTBEAT_S = 15.0
_LOCAL_RECORD_BYTES = 1024  # a holder's JSON is about 250 bytes; padded, every rewrite has the same size


@dataclass(frozen=True)
class Holder:
    """Who holds a lease, as its file records it."""

    run: str
    owner: str
    host: str
    pid: int
    job: str
    acquired_at: float
    heartbeat_at: float

    @classmethod
    def me(cls, job: str) -> Holder:
        now = time.time()
        return cls(secrets.token_hex(6), _user(), socket.gethostname(), os.getpid(), job, now, now)

    def beat(self) -> Holder:
        return Holder(**{**asdict(self), "heartbeat_at": time.time()})

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=1).encode()

    @classmethod
    def parse(cls, data: bytes) -> Holder | None:
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            return None  # written half, or by something else

    def describe(self, age_s: float | None = None) -> str:
        beat = f", last heartbeat {age_s:.0f}s ago" if age_s is not None else ""
        return f"{self.owner} (pid {self.pid} on {self.host}, job {self.job}, run {self.run}{beat})"

    def dead_here(self) -> bool:
        """Whether the holder was a process of this host that no longer exists."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


class LeaseHeld(RuntimeError):
    """Another run holds the output's lease."""

    def __init__(self, output: str, holder: str, ttl_s: float):
        self.output, self.holder, self.ttl_s = output, holder, ttl_s
        super().__init__(
            f"{output} is being written by another run: {holder}; wait for it to finish or stop it "
            f"(an object-store lease is taken over once its heartbeat is {ttl_s:.0f}s old)"
        )

    def __reduce__(self):
        return (LeaseHeld, (self.output, self.holder, self.ttl_s))


class LeaseLost(RuntimeError):
    """This run's lease was taken over (it was thought dead) or removed: it must stop writing."""


class Lease:
    """A held lease on an output folder; renewed in the background until `release`.

    Args:
        on_lost: called once (from the heartbeat thread) if a renewal finds the lease taken.
    """

    def __init__(
        self,
        output_uri: str,
        job: str,
        ttl_s: float = TTL_S,
        heartbeat_s: float = HEARTBEAT_S,
        on_lost: Callable[[str], None] | None = None,
    ):
        self.uri = RunLayout(output_uri).lease
        self.output, self.ttl_s, self.heartbeat_s, self.on_lost = output_uri, ttl_s, heartbeat_s, on_lost
        self.holder = Holder.me(job)
        self.store = _LocalLease(self.uri) if storage.local_path(self.uri) else _S3Lease(self.uri, heartbeat_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None

    def acquire(self) -> Lease:
        """Take the lease and start the heartbeat.

        Raises:
            LeaseHeld: another live run holds it.
        """
        self.store.acquire(self.holder, self.ttl_s, self.output)
        self._thread = threading.Thread(target=self._beat, name=f"lease-{self.holder.job}", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat_s + 5)
        if self.lost is None:
            self.store.release()

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            self.holder = self.holder.beat()
            try:
                self.store.renew(self.holder)
            except LeaseLost as lost:
                self.lost = str(lost)
                if self.on_lost:
                    self.on_lost(self.lost)
                return
            except OSError:
                continue  # the store blinked; the next beat tries again, well within the TTL


class _LocalLease:
    def __init__(self, uri: str):
        self.path = Path(storage.absolute(uri))
        self.fd: int | None = None

    def acquire(self, holder: Holder, ttl_s: float, output: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                raise LeaseHeld(output, self._describe_current(), ttl_s) from None
            if self._same_file(fd):
                break
            os.close(fd)  # a holder released and removed the file between our open and our lock: try again
        self.fd = fd
        self._write(holder)

    def renew(self, holder: Holder) -> None:
        self._write(holder)

    def release(self) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)  # while still locked: a waiting opener sees another inode and retries
        os.close(self.fd)
        self.fd = None

    def _write(self, holder: Holder) -> None:
        # One write of a fixed size, never a truncation: a run reading the holder's name never sees an empty file.
        data = holder.to_bytes().ljust(_LOCAL_RECORD_BYTES)
        if os.fstat(self.fd).st_size > len(data):
            os.ftruncate(self.fd, len(data))
        os.pwrite(self.fd, data, 0)
        os.fsync(self.fd)

    def _same_file(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False

    def _describe_current(self) -> str:
        try:
            holder = Holder.parse(self.path.read_bytes())
        except OSError:
            holder = None
        if holder is None:
            return "a run that has not yet written its name"
        return holder.describe(time.time() - holder.heartbeat_at)


class _S3Lease:
    def __init__(self, uri: str, heartbeat_s: float):
        self.bucket, _, self.key = uri.removeprefix("s3://").partition("/")
        self.client = _s3_client()
        self.heartbeat_s = heartbeat_s
        self.etag: str | None = None

    def acquire(self, holder: Holder, ttl_s: float, output: str) -> None:
        try:
            self.etag = self._put(holder, IfNoneMatch="*")
            return
        except _Conflict:
            pass
        current, etag, age = self._read()
        if current is None and etag is None:  # released between our two requests
            self.etag = self._put_or_refuse(holder, output, ttl_s, "a run that has just released it", IfNoneMatch="*")
            return
        if current is not None and not current.dead_here() and 2 * self.heartbeat_s < age <= ttl_s:
            time.sleep(ttl_s - age + 1)  # it stopped beating: wait until it is stale, then look again
            current, new_etag, age = self._read()
            if new_etag != etag:
                raise LeaseHeld(output, current.describe(age) if current else "a run that took it meanwhile", ttl_s)
        stale = current is None or age > ttl_s or current.dead_here()
        if not stale:
            raise LeaseHeld(output, current.describe(age), ttl_s)
        self.etag = self._put_or_refuse(holder, output, ttl_s, "another run that took it over first", IfMatch=etag)

    def renew(self, holder: Holder) -> None:
        try:
            self.etag = self._put(holder, IfMatch=self.etag)
        except _Conflict:
            raise LeaseLost(f"the lease s3://{self.bucket}/{self.key} was taken over by another run") from None

    def release(self) -> None:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError:
            return
        if head["ETag"] == self.etag:
            self.client.delete_object(Bucket=self.bucket, Key=self.key)

    def _put_or_refuse(self, holder: Holder, output: str, ttl_s: float, who: str, **condition) -> str:
        try:
            return self._put(holder, **condition)
        except _Conflict:
            raise LeaseHeld(output, who, ttl_s) from None

    def _put(self, holder: Holder, **condition) -> str:
        from botocore.exceptions import ClientError

        try:
            return self.client.put_object(Bucket=self.bucket, Key=self.key, Body=holder.to_bytes(), **condition)["ETag"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
                "NoSuchKey",
                "412",
                "409",
            ):
                raise _Conflict() from None
            raise OSError(f"s3://{self.bucket}/{self.key}: {err}") from None

    def _read(self) -> tuple[Holder | None, str | None, float]:
        """The holder, the object's ETag and its age by the store's clock; (None, None, 0) when there is none."""
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None, None, 0.0
            raise OSError(f"s3://{self.bucket}/{self.key}: {err}") from None
        now = _store_time(answer)
        return Holder.parse(answer["Body"].read()), answer["ETag"], now - answer["LastModified"].timestamp()


class _Conflict(Exception):
    """A conditional write lost."""


def _store_time(answer: dict) -> float:
    from email.utils import parsedate_to_datetime

    date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    return parsedate_to_datetime(date).timestamp() if date else time.time()


def _s3_client():
    import botocore.session
    from botocore.config import Config

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config = Config(
        connect_timeout=5,
        read_timeout=15,
        retries={"max_attempts": 4, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else None,
    )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return botocore.session.get_session().create_client("s3", endpoint_url=endpoint, region_name=region, config=config)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
