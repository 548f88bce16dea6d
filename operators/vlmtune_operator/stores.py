"""One store reader per tenant namespace, holding that namespace's own object-store credentials.

The operator never reads a run with a credential of its own: a job in team-b that names team-a's output would
otherwise get team-a's figures. Without tenants (a laptop, tests) one reader uses the process's environment.
"""

from __future__ import annotations

from vlmtune_operator.runtime import RuntimeConfig
from vlmtune_operator.store import StoreReader
from vlmtune_operator.tenancy import object_store_secret


class Stores:
    """Readers by namespace, rebuilt when the namespace's Secret changes."""

    def __init__(self, client, runtime: RuntimeConfig):
        self._client = client
        self._runtime = runtime
        self._readers: dict[tuple[str, str, str], StoreReader] = {}
        self._default = StoreReader()

    def for_namespace(self, namespace: str) -> StoreReader | None:
        """The reader for runs of jobs in `namespace`; None when the namespace has no readable Secret."""
        if self._runtime.tenants is None:
            return self._default
        name = object_store_secret(self._runtime, namespace)
        secret = self._client.get_secret(namespace, name) if name else None
        if secret is None:
            return None
        key = (namespace, name, secret["resourceVersion"])
        if key not in self._readers:
            self._readers = {k: v for k, v in self._readers.items() if k[:2] != key[:2]}  # the Secret rotated
            self._readers[key] = StoreReader(credentials=secret["data"], allow_local=False)
        return self._readers[key]
