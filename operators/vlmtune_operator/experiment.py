"""Experiments on a cluster, as pure functions: the child jobs, their aggregate status, the report RayJob.

An Experiment never runs as such. `vlmtune.spec.expand` turns it into ordinary TuningJob/EvalJob documents;
the operator creates each as a child custom resource owned by the Experiment (deleting the Experiment deletes
them, and through them their RayJobs), and the children run through the same per-job machinery as jobs
applied by hand: chaining waits for `from: {job: ...}` upstreams, Kueue queues each RayJob. Once every child
succeeded, a last small RayJob (a head pod only) writes the comparison report into the experiment's output.
"""

from __future__ import annotations

import json
import shlex
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from vlmtune.spec import EXPERIMENT_LABEL, Expansion, Experiment, Phase, ResourcesSpec, RunLayout
from vlmtune_operator.rayjob import MANAGED_BY, MANAGED_BY_LABEL, SPEC_HASH_ANNOTATION, build_rayjob, spec_hash
from vlmtune_operator.runtime import RuntimeConfig
from vlmtune_operator.status import Verdict

CHILD_KINDS = ("TuningJob", "EvalJob")
"""Kinds an Experiment creates; the operator needs `create` on exactly these."""
REPORT_DEADLINE_SECONDS = 3600
"""The report reads records and draws plots: an hour is generous, and a hung report must not hold quota."""
_ACTIVE = (Phase.Running, Phase.Suspended, Phase.Queued)


def child_documents(expansion: Expansion, namespace: str | None) -> list[dict]:
    """The child custom resources in dependency order, without the owner reference (that needs the live uid).

    Names, labels (the experiment's own, Kueue queue and priority included, plus experiment and arm) and
    outputs come from `expand`; the spec-hash annotation tells a child made from an older experiment spec.
    Without a namespace (rendering a file) `kubectl apply -n` decides.
    """
    documents = []
    for job in expansion.jobs:
        document = job.to_doc()
        meta = document["metadata"]
        if namespace:
            meta["namespace"] = namespace
        meta["labels"] = {**meta.get("labels", {}), MANAGED_BY_LABEL: MANAGED_BY}
        meta["annotations"] = {**meta.get("annotations", {}), SPEC_HASH_ANNOTATION: spec_hash(job.to_doc())}
        documents.append(document)
    return documents


def is_root(document: Mapping) -> bool:
    """A child that starts from a model, not from another child: its RayJob is created at once."""
    return "from" not in ((document.get("spec") or {}).get("model") or {})


@dataclass(frozen=True)
class Aggregate:
    """The experiment's status as its children make it."""

    verdict: Verdict
    all_succeeded: bool
    progress: str
    counts: dict[str, int]
    children: list[dict] = field(default_factory=list)
    arms: list[dict] = field(default_factory=list)

    def fields(self) -> dict:
        return {"progress": self.progress, "counts": self.counts, "children": self.children, "arms": self.arms}


def aggregate(expansion: Expansion, statuses: Mapping[str, Mapping | None]) -> Aggregate:
    """Phase, counts, per-child and per-arm tables from the children's statuses (None: not created yet).

    A failed child fails the experiment once nothing else is running (its downstream jobs fail with it through
    chaining; other arms finish, so their results are not lost); until then the experiment keeps Running and
    names the failure.
    """
    phases = {job.name: _phase(statuses.get(job.name)) for job in expansion.jobs}
    counts = dict(Counter(phase.value for phase in phases.values()))
    succeeded = counts.get(Phase.Succeeded.value, 0)
    children = [_child_row(expansion, job, statuses.get(job.name), phases[job.name]) for job in expansion.jobs]
    arms = [_arm_row(arm, phases, statuses) for arm in expansion.arms]
    verdict = _verdict(phases, statuses, len(expansion.jobs))
    return Aggregate(
        verdict, succeeded == len(expansion.jobs), f"{succeeded}/{len(expansion.jobs)}", counts, children, arms
    )


def _verdict(phases: Mapping[str, Phase], statuses: Mapping[str, Mapping | None], total: int) -> Verdict:
    failed = [name for name, phase in phases.items() if phase is Phase.Failed]
    active = [name for name, phase in phases.items() if phase in _ACTIVE]
    if failed:
        # Name the cause first: a child that failed on its own, not one that failed because its upstream did.
        causes = [n for n in failed if (statuses.get(n) or {}).get("reason") != "UpstreamFailed"] or failed
        detail = "; ".join(
            f"{name} ({(statuses.get(name) or {}).get('reason') or 'Failed'}: "
            f"{(statuses.get(name) or {}).get('message') or 'no message'})"
            for name in causes
        )
        if active:
            return Verdict(
                Phase.Running, "ChildFailed", f"failed: {detail}; still running: {', '.join(active)}", "jobs"
            )
        waiting = [name for name, phase in phases.items() if phase is Phase.Pending]
        if not waiting:
            return Verdict(Phase.Failed, "ChildFailed", f"{len(failed)} of {total} job(s) failed: {detail}", "done")
        return Verdict(Phase.Running, "ChildFailed", f"failed: {detail}; settling: {', '.join(waiting)}", "jobs")
    if all(phase is Phase.Succeeded for phase in phases.values()):
        return Verdict(Phase.Running, "JobsSucceeded", f"all {total} jobs succeeded; writing the report", "reporting")
    running = [name for name, phase in phases.items() if phase in (Phase.Running, Phase.Suspended)]
    done = sum(phase is Phase.Succeeded for phase in phases.values())
    if running or done:
        return Verdict(
            Phase.Running,
            "JobsRunning",
            f"{done}/{total} jobs succeeded; running: {', '.join(running) or 'none'}",
            "jobs",
        )
    if any(phase is Phase.Queued for phase in phases.values()):
        return Verdict(Phase.Queued, "JobsQueued", "the first jobs wait in their Kueue queue", "queued")
    return Verdict(Phase.Pending, "JobsCreated", f"{total} child jobs created", "creating")


def _phase(status: Mapping | None) -> Phase:
    value = (status or {}).get("phase")
    return Phase(value) if value in Phase.__members__ else Phase.Pending


def _child_row(expansion: Expansion, job, status: Mapping | None, phase: Phase) -> dict:
    row = {
        "name": job.name,
        "kind": job.kind,
        "stage": expansion.stages[job.name],
        "phase": phase.value,
        "reason": (status or {}).get("reason"),
        "progress": (status or {}).get("progress"),
    }
    return {key: value for key, value in row.items() if value is not None}


def _arm_row(arm, phases: Mapping[str, Phase], statuses: Mapping[str, Mapping | None]) -> dict:
    own = [phases[name] for name in arm.jobs]
    done = sum(phase is Phase.Succeeded for phase in own)
    if Phase.Failed in own:
        phase = Phase.Failed
    elif done == len(own):
        phase = Phase.Succeeded
    else:
        phase = next(
            (p for p in (Phase.Running, Phase.Suspended, Phase.Queued) if p in own),
            Phase.Running if done else Phase.Pending,
        )
    row = {"name": arm.name, "phase": phase.value, "jobs": f"{done}/{len(own)}"}
    results = (statuses.get(arm.evaluation) or {}).get("results")
    if results:
        row["results"] = dict(results)
    return row


# ------------------------------------------------------------------------------------------------ report


def vanished_child(kind: str, name: str, previous: Mapping) -> Verdict | None:
    """The experiment's verdict when its child job is gone: Failed if the child had started (someone deleted it; a
    new one would rerun work the experiment counted), None if it was never created (create it)."""
    if any(row.get("name") == name and row.get("phase") for row in previous.get("children") or []):
        message = f"child {kind} {name} was deleted before the experiment finished; re-apply the experiment"
        return Verdict(Phase.Failed, "ChildVanished", message, "done")
    return None


def child_claim(kind: str, name: str, existing: Mapping, experiment_uid: str | None) -> Verdict | str:
    """Whether a job of the child's name is the experiment's own: "own"; "wait" while an earlier experiment's job
    of that name is being deleted; otherwise the experiment's Failed verdict (NameConflict)."""
    meta = existing.get("metadata") or {}
    owners = [ref.get("uid") for ref in meta.get("ownerReferences") or [] if ref.get("controller")]
    if experiment_uid in owners:
        return "own"
    if meta.get("deletionTimestamp"):
        return "wait"
    owner = (meta.get("labels") or {}).get(EXPERIMENT_LABEL)
    message = f"{kind} {name} exists and belongs to {f'experiment {owner}' if owner else 'no experiment'}"
    return Verdict(Phase.Failed, "NameConflict", message, "done")


def report_rayjob(experiment: Experiment, runtime: RuntimeConfig, namespace: str | None = None) -> dict:
    """The RayJob that writes the comparison report: a head pod only, running `vlmtune report` on the output.

    It is built like every other RayJob (image, Kueue labels, secret, owner) from the experiment with
    default resources, so it never asks for the arms' GPUs; its driver reads records and draws plots, no tasks.

    Raises:
        BuildError: the runtime config cannot run it (e.g. an unknown default node pool).
    """
    light = experiment.model_copy(
        update={
            "spec": experiment.spec.model_copy(
                update={"resources": ResourcesSpec(active_deadline_seconds=REPORT_DEADLINE_SECONDS)}
            )
        }
    )
    rayjob = build_rayjob(light, runtime, {}, namespace)
    rayjob["metadata"]["annotations"][SPEC_HASH_ANNOTATION] = spec_hash(experiment.to_doc())
    spec = rayjob["spec"]
    spec["entrypoint"] = report_entrypoint(experiment)
    spec["rayClusterSpec"].pop("workerGroupSpecs", None)
    return rayjob


def report_entrypoint(experiment: Experiment) -> str:
    """`vlmtune report` with the experiment document, so it can write experiment.json before the report."""
    document = json.dumps(experiment.to_doc(), separators=(",", ":"))
    return f"vlmtune report --spec-json {shlex.quote(document)} {shlex.quote(experiment.spec.output.uri)}"


def report_uri(experiment: Experiment) -> str:
    return RunLayout(experiment.spec.output.uri).report
