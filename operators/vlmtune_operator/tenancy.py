"""Tenancy on a cluster: a job reads and writes only its own tenant's storage.

A job runs only in a tenant namespace, writes only under its tenant's output prefix, and never to a local path (on
a cluster that is some pod's disk, or the operator's); its Ray pods and the operator's reads of its run files use
the credentials of its own namespace. The chart's ValidatingAdmissionPolicy refuses the same jobs at `kubectl
apply`; this module is the operator's half, so a job that got past an older policy is refused too.
"""

from __future__ import annotations

from vlmtune_operator.errors import BuildError
from vlmtune_operator.runtime import RuntimeConfig, Tenant


class NotATenant(BuildError):
    """The job's namespace is not a tenant: it has no output prefix, queue or admission policy."""

    reason = "NotATenant"


class LocalPathOnCluster(BuildError):
    """A cluster job names a local output folder."""

    reason = "LocalPathOnCluster"


class OutputOutsideTenant(BuildError):
    """A job's output lies outside its tenant's prefix (another tenant's, or shared, storage)."""

    reason = "OutputOutsideTenant"


def is_local(uri: str) -> bool:
    """A path on some machine's disk rather than in an object store."""
    return "://" not in uri or uri.startswith("file://")


def within(uri: str, prefix: str) -> bool:
    """`uri` is the folder `prefix` or lies under it (`s3://runs/team-a` is not under `s3://runs/team`)."""
    folder = prefix.rstrip("/")
    return uri.rstrip("/") == folder or uri.startswith(folder + "/")


def tenant_of(runtime: RuntimeConfig, namespace: str | None) -> Tenant | None:
    """The tenant a namespace belongs to; None when the runtime config has no tenants (no tenancy)."""
    if runtime.tenants is None:
        return None
    tenant = runtime.tenants.get(namespace or "")
    if tenant is None:
        known = ", ".join(sorted(runtime.tenants)) or "none"
        raise NotATenant(
            f"metadata.namespace: {namespace!r} is not a tenant namespace of this cluster (tenants: "
            f"{known}); apply the job in its team's namespace, or add a tenant to the chart's values"
        )
    return tenant


def check_output(runtime: RuntimeConfig, namespace: str | None, output_uri: str) -> None:
    """Refuse an output the job's tenant may not write.

    Raises:
        NotATenant, LocalPathOnCluster, OutputOutsideTenant: with the field path and the fix.
    """
    tenant = tenant_of(runtime, namespace)
    if tenant is None:
        return
    if is_local(output_uri):
        raise LocalPathOnCluster(
            f"spec.output.uri: {output_uri!r} is a local path, which no pod on the cluster can "
            f"share; write under {tenant.output_prefix}"
        )
    if not within(output_uri, tenant.output_prefix):
        raise OutputOutsideTenant(
            f"spec.output.uri: {output_uri!r} is outside namespace {namespace}'s storage; "
            f"write under {tenant.output_prefix}"
        )


def object_store_secret(runtime: RuntimeConfig, namespace: str | None) -> str | None:
    """The Secret a namespace's Ray pods and the operator's reads of its runs use (None: none configured)."""
    tenant = (runtime.tenants or {}).get(namespace or "")
    return (tenant.object_store_secret if tenant else None) or runtime.object_store_secret
