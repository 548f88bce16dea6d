"""Names of the files and folders vlmtune keeps in a run's output folder (local or s3://), in one place.

```
<output>/lease.json                       who writes this output now (one writer per output; `runners.lease`)
<output>/job.json                         the job's record (phase, spec hash, artifacts)
<output>/metrics.jsonl                    one JSON row per report, appended, never rewritten
<output>/checkpoints/checkpoint-NNNNNN/   a checkpoint: every rank's files, then complete.json, written last
<output>/checkpoints/checkpoint_manager_snapshot.json   Ray Train's own list (removed before a resume)
```
"""

LEASE = "lease.json"
"""The output's lease: holder (user, host, pid, run id) and heartbeat."""
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
CHECKPOINT_RECORD = "complete.json"
"""A checkpoint's completion record: every file with its size and sha256. Written last; without it, or when a
file differs from it, the checkpoint does not count."""
RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"
"""Ray Train's record of a run's checkpoints (it would restore from it on its own)."""


def checkpoint_name(step: int) -> str:
    return f"{CHECKPOINT_PREFIX}{step:06d}"
