"""Why a job cannot run on this cluster: errors carry the status reason they set, and pickle (kopf logs them)."""

from __future__ import annotations


class BuildError(ValueError):
    """The job cannot run on this cluster as configured; the message names the field and the fix."""

    reason = "InvalidForCluster"
    """The `status.reason` of a job refused for this error."""

    def __reduce__(self):
        return (type(self), (str(self),))


class RayJobRefused(BuildError):
    """The API server's admission (a ValidatingAdmissionPolicy, a webhook, the schema) refused the RayJob: retrying
    the same RayJob would be refused forever, so the job fails with the server's words."""

    reason = "RayJobRefused"
