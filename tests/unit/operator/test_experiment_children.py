"""The experiment's verdicts about its child jobs, as pure functions of what the API server returned."""

from __future__ import annotations

from vlmtune.spec import EXPERIMENT_LABEL, Phase
from vlmtune_operator.experiment import child_claim, vanished_child

UID = "uid-of-the-experiment"


def job(owner_uid: str | None = None, deleting: bool = False, label: str | None = None) -> dict:
    meta: dict = {"name": "exp-arm-stage1"}
    if owner_uid:
        meta["ownerReferences"] = [{"uid": owner_uid, "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    if label:
        meta["labels"] = {EXPERIMENT_LABEL: label}
    return {"metadata": meta}


def test_a_child_never_created_is_created_and_a_started_one_that_vanished_fails_the_experiment():
    assert vanished_child("TuningJob", "exp-arm-stage1", {}) is None
    assert vanished_child("TuningJob", "exp-arm-stage1", {"children": [{"name": "exp-arm-stage1"}]}) is None
    verdict = vanished_child(
        "TuningJob", "exp-arm-stage1", {"children": [{"name": "exp-arm-stage1", "phase": "Running"}]}
    )
    assert verdict.phase == Phase.Failed and verdict.reason == "ChildVanished" and "re-apply" in verdict.message


def test_only_the_experiments_own_child_is_used():
    assert child_claim("TuningJob", "exp-arm-stage1", job(UID), UID) == "own"
    assert child_claim("TuningJob", "exp-arm-stage1", job("another", deleting=True), UID) == "wait"
    conflict = child_claim("TuningJob", "exp-arm-stage1", job("another", label="other-exp"), UID)
    assert conflict.reason == "NameConflict" and "experiment other-exp" in conflict.message
    assert "no experiment" in child_claim("EvalJob", "exp-arm-eval", job(), UID).message
