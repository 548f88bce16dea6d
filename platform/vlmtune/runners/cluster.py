"""Talk to a Ray cluster's Jobs API: where it is, how to authenticate, and errors that say what to do."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO
from urllib.parse import urlparse

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
TIMEOUT_S = 30.0
"""Default bound on each request to the Jobs API (connect, and each wait for an answer)."""


class RemoteError(Exception):
    """Something the user fixes (address, token, paths): the message says what and how, in a line or two."""


@dataclass(frozen=True)
class Connection:
    """Where the cluster's dashboard is and how to authenticate to it."""

    address: str
    token: str | None = None
    token_source: str = "Ray's own token lookup (RAY_AUTH_MODE=token, ~/.ray/auth_token)"
    verify: bool | str = True
    timeout_s: float = TIMEOUT_S
    """Bound on connecting and on each wait for an answer: an address that accepts connections and never
    answers fails in bounded time instead of hanging."""

    @classmethod
    def resolve(
        cls,
        address: str | None = None,
        token: str | None = None,
        verify: bool | str = True,
        timeout_s: float = TIMEOUT_S,
    ) -> Connection:
        """Fill address and token from the environment as Ray's own CLI does; flags win."""
        return replace(cls._resolve(address, token, verify), timeout_s=timeout_s)

    @classmethod
    def _resolve(cls, address: str | None, token: str | None, verify: bool | str) -> Connection:
        address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
        if not address:
            raise RemoteError("no cluster address: pass --address http://HOST:8265 or set RAY_ADDRESS")
        if "://" not in address:
            address = f"http://{address}"
        if urlparse(address).scheme not in ("http", "https"):
            raise RemoteError(
                f"{address} is not a dashboard address: use http://HOST:8265 (the Jobs API), "
                "not a ray:// client or GCS address"
            )
        address = address.rstrip("/")
        if token:
            return cls(address, token, "--token", verify)
        if os.environ.get("RAY_AUTH_TOKEN"):
            return cls(address, os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN", verify)
        if os.environ.get("RAY_AUTH_TOKEN_PATH"):
            path = os.environ["RAY_AUTH_TOKEN_PATH"]
            try:
                return cls(
                    address,
                    Path(path).expanduser().read_text(encoding="utf-8").strip(),
                    f"RAY_AUTH_TOKEN_PATH={path}",
                    verify,
                )
            except OSError as err:
                raise RemoteError(f"RAY_AUTH_TOKEN_PATH={path}: cannot read the token file ({err.strerror})") from None
        return cls(address, verify=verify)

    @property
    def headers(self) -> dict[str, str] | None:
        # An explicit header makes Ray skip its own lookup, which only runs when RAY_AUTH_MODE=token.
        return {"Authorization": f"Bearer {self.token}"} if self.token else None


def address_is_here(address: str) -> bool:
    """Whether the address reaches this machine (a local head, or a port-forward to a remote one)."""
    try:
        infos = socket.getaddrinfo(urlparse(address).hostname, None)
    except (OSError, UnicodeError):
        return False
    return any(_is_this_machine(info[4][0]) for info in infos)


def _is_this_machine(ip: str) -> bool:
    # Binding succeeds only for addresses held by one of this machine's interfaces.
    try:
        with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as probe:
            probe.bind((ip, 0))
        return True
    except OSError:
        return False


class Cluster:
    """A Jobs API client whose failures arrive as RemoteError with advice."""

    def __init__(self, connection: Connection):
        self.connection = connection
        with self.errors():
            self.client = _bounded_client(connection)

    def jobs(self) -> list:
        with self.errors():
            return self.client.list_jobs()

    def info(self, job_id: str):
        with self.errors():
            return self.client.get_job_info(job_id)

    def logs(self, job_id: str) -> str:
        with self.errors():
            return self.client.get_job_logs(job_id)

    def head_is_local(self, timeout_s: float = 15.0) -> bool:
        from ray.util.state.api import StateApiClient
        from ray.util.state.common import ListApiOptions, StateResource

        state = StateApiClient(self.connection.address, headers=self.connection.headers)
        deadline = time.monotonic() + timeout_s
        options = ListApiOptions(filters=[("is_head_node", "=", "True")], timeout=max(2, int(timeout_s / 3)))
        while True:
            try:
                nodes = state.list(StateResource.NODES, options, raise_on_missing_output=False)
            except Exception:  # noqa: BLE001 - an unanswered probe means "treat as remote", the strict side
                return False
            # A head that has just started lists no nodes for a few seconds.
            if nodes or time.monotonic() > deadline:
                return any(_is_this_machine(node.node_ip) for node in nodes)
            time.sleep(0.5)

    def wait(self, job_id: str, timeout_s: float = 30.0):
        """Poll until the job is terminal or `timeout_s` passes; returns its latest JobDetails."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.info(job_id)
            if info.status.value in TERMINAL or time.monotonic() > deadline:
                return info
            time.sleep(0.5)

    def follow(self, job_id: str, out: TextIO):
        """Stream the job's logs to `out` until it ends; returns its final JobDetails."""

        async def tail() -> None:
            async for chunk in self.client.tail_job_logs(job_id):
                out.write(chunk)
                out.flush()

        with self.errors():
            asyncio.run(tail())
        return self.wait(job_id)  # the stream closes as the job ends; its status may lag a moment

    def stop(self, job_id: str):
        """Ask the job to stop and wait for it to end; returns its final JobDetails."""
        with self.errors():
            self.client.stop_job(job_id)
        return self.wait(job_id)

    @contextmanager
    def errors(self) -> Iterator[None]:
        import requests
        from aiohttp import ClientError
        from ray.exceptions import AuthenticationError

        address = self.connection.address
        try:
            yield
        except requests.exceptions.Timeout:
            raise RemoteError(
                f"{address} did not answer within {self.connection.timeout_s:.0f}s: is it the Ray dashboard's HTTP "
                "port (8265) of a running cluster? (--timeout SECONDS waits longer)"
            ) from None
        except AuthenticationError as err:
            if str(err).startswith("Authentication required"):
                raise RemoteError(
                    f"the Ray cluster at {address} requires a token: export RAY_AUTH_TOKEN (KubeRay: "
                    "`kubectl get secret CLUSTER -o jsonpath='{.data.auth_token}' | base64 -d`; a head on this "
                    "machine: `ray get-auth-token`) or pass --token"
                ) from None
            raise RemoteError(
                f"the Ray cluster at {address} rejected the token from {self.connection.token_source}: "
                "check that it is this cluster's token (KubeRay keeps it in the secret named after "
                "the RayCluster, key auth_token)"
            ) from None
        except (ConnectionError, requests.exceptions.ConnectionError, ClientError) as err:
            ssl_error = requests.exceptions.SSLError
            if isinstance(err, ssl_error) or isinstance(err.__context__, ssl_error):
                raise RemoteError(
                    f"TLS with {address} failed: use http:// if it serves plain HTTP, --ca-bundle FILE "
                    "for a private CA, or --no-verify for a self-signed test cluster"
                ) from None
            raise RemoteError(
                f"cannot reach the Ray dashboard at {address}: is the cluster up and its port forwarded "
                "(`kubectl port-forward svc/CLUSTER-head-svc 8265:8265`)? The address is the dashboard's HTTP "
                "port (8265), not the GCS port (6379)"
            ) from None
        except FileNotFoundError as err:  # a --ca-bundle that does not exist
            raise RemoteError(str(err)) from None
        except RuntimeError as err:  # the Jobs API's non-2xx answers; anything else is a bug and propagates
            if not str(err).startswith(("Request failed", "Version check")):
                raise
            raise RemoteError(f"{address}: {_last_line(str(err))}") from None


def _bounded_client(connection: Connection):
    """Ray's JobSubmissionClient, every request of it bounded by the connection's timeout.

    The SDK calls `requests` without a timeout, so a server that accepts the connection and never answers
    would hang the command forever; this adapter adds one to `_do_request`, the SDK's single path to the
    server (Ray 2.60; `tests/unit/runners/test_cluster_timeouts.py` checks it against the pinned version).
    """
    from ray.job_submission import JobSubmissionClient

    class BoundedJobSubmissionClient(JobSubmissionClient):
        def _do_request(self, method, endpoint, **kwargs):
            kwargs.setdefault("timeout", (connection.timeout_s, connection.timeout_s))
            return super()._do_request(method, endpoint, **kwargs)

    return BoundedJobSubmissionClient(connection.address, headers=connection.headers, verify=connection.verify)


def _last_line(text: str) -> str:
    # Server-side failures arrive as whole tracebacks; their last line names the problem.
    lines = [line.strip() for line in text.splitlines() if line.strip(" .")]
    last = lines[-1] if lines else text
    return re.sub(r"^Request failed with status code \d+: ", "", last)
