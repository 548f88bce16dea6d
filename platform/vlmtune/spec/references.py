"""Problems between jobs of one file set: names used twice, references to no job, cycles, shared outputs."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Iterator

from vlmtune.spec.errors import SpecIssue
from vlmtune.spec.experiment import Experiment, expand


def reference_issues(jobs: Iterable[tuple], known: Iterable[str] = ()) -> list[SpecIssue]:
    """Duplicate names, `from: {job: X}` references that name no job in the set, dependency cycles, and
    two jobs writing one output folder (Experiments counted by the jobs they generate).

    Args:
        jobs: (job, source) pairs.
        known: names of jobs defined elsewhere.
    """
    jobs = list(jobs)
    return [*_name_issues(jobs, known), *_cycle_issues(jobs), *_output_issues(jobs)]


def _name_issues(jobs: list[tuple], known: Iterable[str]) -> Iterator[SpecIssue]:
    seen = set()
    for job, source in jobs:
        if job.name in seen:
            yield SpecIssue(
                source,
                "metadata.name",
                f"job name {job.name!r} is used twice",
                "give every job in a file set its own name",
            )
        seen.add(job.name)
    names = seen | set(known)
    for job, source in jobs:
        for upstream in job.upstream_jobs():
            if upstream == job.name:
                yield SpecIssue(
                    source,
                    "spec.model.from.job",
                    "a job cannot start from itself",
                    "name the job whose model this one starts from",
                )
            elif upstream not in names:
                yield SpecIssue(
                    source,
                    "spec.model.from.job",
                    f"no job named {upstream!r} is defined",
                    f"define it in the same file set; known jobs: {', '.join(sorted(names)) or 'none'}",
                )


def _cycle_issues(jobs: list[tuple]) -> Iterator[SpecIssue]:
    """One issue per cycle of two or more jobs (a job naming itself is reported as such above)."""
    upstreams = {job.name: [u for u in job.upstream_jobs() if u != job.name] for job, _ in jobs}
    sources = {job.name: source for job, source in jobs}
    reported: set[frozenset] = set()
    for name in upstreams:
        cycle = _cycle_from(name, upstreams)
        if cycle and frozenset(cycle) not in reported:
            reported.add(frozenset(cycle))
            yield SpecIssue(
                sources[cycle[0]],
                "spec.model.from.job",
                f"jobs form a cycle: {' -> '.join([*cycle, cycle[0]])}",
                "a job can only start from a job that does not (indirectly) start from it; "
                "remove one `from: {job}` reference",
            )


def _cycle_from(start: str, upstreams: dict[str, list[str]]) -> list[str] | None:
    """The cycle through `start`, if following `from` references from it leads back to it."""
    path, on_path = [start], {start}
    trail = [iter(upstreams.get(start, []))]
    while trail:
        upstream = next(trail[-1], None)
        if upstream is None:
            trail.pop()
            on_path.discard(path.pop())
        elif upstream == start:
            return path
        elif upstream not in on_path and upstream in upstreams:
            path.append(upstream)
            on_path.add(upstream)
            trail.append(iter(upstreams[upstream]))
    return None


def _output_issues(jobs: list[tuple]) -> Iterator[SpecIssue]:
    owners: dict[str, str] = {}
    for job, source in jobs:
        for name, uri in _outputs(job):
            key = output_key(uri)
            if key in owners and owners[key] != name:
                yield SpecIssue(
                    source,
                    "spec.output.uri",
                    f"{uri} is also the output of job {owners[key]!r}"
                    + (f" (generated as {name!r})" if name != job.name else ""),
                    "give every job its own output folder: two runs in one folder delete each "
                    "other's checkpoints and mix their metrics",
                )
            owners.setdefault(key, name)


def _outputs(job) -> list[tuple[str, str]]:
    """(job name, output URI) of what the job writes: an Experiment's generated jobs, else the job itself."""
    if isinstance(job, Experiment):
        return [(generated.name, generated.spec.output.uri) for generated in expand(job).jobs]
    return [(job.name, job.spec.output.uri)]


def output_key(uri: str) -> str:
    """A URI normalised so that two spellings of one folder compare equal (`./runs/a/`, `file://$PWD/runs/a`)."""
    if uri.startswith("s3://"):
        return "s3://" + posixpath.normpath(uri.removeprefix("s3://")).lstrip("/")
    return os.path.normpath(os.path.abspath(os.path.expanduser(uri.removeprefix("file://"))))
