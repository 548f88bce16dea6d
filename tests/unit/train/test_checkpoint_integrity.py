"""Checkpoints count only when their completion record verifies: resume falls back past damaged ones (truncated,
bit-flipped, half-written, record missing or cut), never deletes an older one first, and retention keeps
`keepCheckpoints` across resumes. The same on local folders and on a real S3 server (moto on 127.0.0.1)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from s3_server import running_s3
from vlmtune import storage
from vlmtune.spec.layout import CHECKPOINT_RECORD, RAY_SNAPSHOT, checkpoint_name
from vlmtune.train import completion
from vlmtune.train.resume import checkpoint_steps, choose, latest_checkpoint, prepare_resume, prune

BUCKET = "vlmtune-ckpt"


@pytest.fixture(scope="module")
def s3():
    with running_s3(BUCKET) as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def output(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "run")
    request.getfixturevalue("s3")
    return f"s3://{BUCKET}/{tmp_path.name}/run"


def rank_share(tmp_path: Path, rank: int, step: int, size: int = 4096) -> Path:
    """One rank's share of a checkpoint, as DeepSpeed and `checkpoint.save` lay it out."""
    folder = tmp_path / f"share-{step}-{rank}"
    rng = random.Random(step * 10 + rank)
    (folder / "state").mkdir(parents=True)
    (folder / "state" / f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt").write_bytes(rng.randbytes(size))
    (folder / f"position_rank{rank}.json").write_text(json.dumps({"step": step, "world_size": 2}))
    if rank == 0:
        (folder / "state" / "mp_rank_00_model_states.pt").write_bytes(rng.randbytes(size))
        (folder / "latest").write_text("state")
    return folder


def write_checkpoint(tmp_path: Path, output: str, step: int, sealed: bool = True) -> str:
    """A two-rank checkpoint uploaded as Ray Train does (each rank's folder merged into one), then sealed."""
    uri = storage.join(output, "checkpoints", checkpoint_name(step))
    shares = []
    for rank in range(2):
        folder = rank_share(tmp_path, rank, step)
        shares.append(completion.describe_folder(folder))
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                storage.write_bytes(storage.join(uri, path.relative_to(folder).as_posix()), path.read_bytes())
    if sealed:
        completion.seal(uri, step, 2, shares)
    return uri


def damage_file(uri: str, how: str) -> None:
    data = storage.read_bytes(uri)
    if how == "truncate":
        storage.write_bytes(uri, data[: len(data) // 2])
    elif how == "flip":
        storage.write_bytes(uri, data[:100] + bytes([data[100] ^ 0x01]) + data[101:])
    else:
        storage.delete_file(uri)


def test_a_sealed_checkpoint_verifies(tmp_path, output):
    uri = write_checkpoint(tmp_path, output, 3)
    record = completion.read_record(uri)
    assert record["step"] == 3 and record["worldSize"] == 2
    assert set(record["files"]) == {
        "latest",
        "position_rank0.json",
        "position_rank1.json",
        "state/mp_rank_00_model_states.pt",
        "state/zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "state/zero_pp_rank_1_mp_rank_00_optim_states.pt",
    }
    assert completion.damage(uri) is None


@pytest.mark.parametrize(
    "how, expected",
    [
        ("truncate", "has 2048 bytes, not 4096"),
        ("flip", "does not match its sha256"),
        ("delete", "is missing"),
    ],
)
def test_damaged_files_are_named(tmp_path, output, how, expected):
    uri = write_checkpoint(tmp_path, output, 3)
    damage_file(storage.join(uri, "state/zero_pp_rank_1_mp_rank_00_optim_states.pt"), how)
    reason = completion.damage(uri)
    assert reason.startswith("state/zero_pp_rank_1_mp_rank_00_optim_states.pt") and expected in reason


def test_no_record_or_a_cut_record_does_not_count(tmp_path, output):
    unsealed = write_checkpoint(tmp_path, output, 3, sealed=False)
    assert "no completion record" in completion.damage(unsealed)
    cut = write_checkpoint(tmp_path, output, 6)
    record = storage.join(cut, CHECKPOINT_RECORD)
    storage.write_bytes(record, storage.read_bytes(record)[:50])
    assert "unreadable" in completion.damage(cut)


def test_seal_refuses_a_store_that_lost_a_file(tmp_path, output):
    uri = storage.join(output, "checkpoints", checkpoint_name(3))
    folder = rank_share(tmp_path, 0, 3)
    share = completion.describe_folder(folder)
    storage.write_bytes(storage.join(uri, "latest"), b"state")  # the rest never arrived (a full disk)
    with pytest.raises(completion.CheckpointIncomplete, match="is missing"):
        completion.seal(uri, 3, 1, [share])
    assert not storage.exists(storage.join(uri, CHECKPOINT_RECORD))


def test_files_two_ranks_wrote_differently_are_recorded_as_stored(tmp_path, output):
    uri = storage.join(output, "checkpoints", checkpoint_name(3))
    storage.write_bytes(storage.join(uri, "latest"), b"from-rank-1")
    shares = [{"latest": {"bytes": 5, "sha256": "a"}}, {"latest": {"bytes": 11, "sha256": "b"}}]
    record = completion.seal(uri, 3, 2, shares)
    assert record["files"]["latest"]["bytes"] == 11 and completion.damage(uri) is None


@pytest.mark.parametrize("how", ["truncate", "flip", "delete", "unsealed"])
def test_resume_falls_back_past_a_damaged_newest_and_keeps_the_older(tmp_path, output, how):
    older = write_checkpoint(tmp_path, output, 3)
    newest = write_checkpoint(tmp_path, output, 6, sealed=how != "unsealed")
    if how != "unsealed":
        damage_file(storage.join(newest, "state/mp_rank_00_model_states.pt"), how)
    storage.write_bytes(storage.join(output, "checkpoints", RAY_SNAPSHOT), b"{}")
    point = prepare_resume(output)
    assert point.latest.step == 3 and point.latest.uri == older and point.latest.world_size == 2
    (warning,) = point.warnings()
    assert warning.startswith(f"{newest} does not count: ") and warning.endswith("resuming from checkpoint-000003")
    assert "\n" not in warning
    assert [step for step, _ in checkpoint_steps(output)] == [3]  # the damaged newest goes, the older stays
    assert completion.damage(older) is None
    assert not storage.exists(storage.join(output, "checkpoints", RAY_SNAPSHOT))


def test_every_checkpoint_damaged_starts_from_scratch(tmp_path, output):
    write_checkpoint(tmp_path, output, 3, sealed=False)
    point = prepare_resume(output)
    assert point.latest is None and point.warnings()[0].endswith("starting from scratch")


def test_nothing_to_resume(tmp_path, output):
    assert prepare_resume(output).latest is None and latest_checkpoint(output) is None


def test_choose_stops_at_the_first_intact_one():
    checked = []

    def damage(uri):
        checked.append(uri)
        return None if uri == "b" else "broken"

    chosen, damaged = choose([(1, "a"), (3, "c"), (2, "b")], damage)
    assert chosen == (2, "b") and damaged == [("c", "broken")] and checked == ["c", "b"]


def test_retention_holds_across_resumes(tmp_path, output):
    """A first run left checkpoints 2 and 4 (keep 2); a resumed run writes 6 and 8: 6 and 8 stay."""
    for step in (2, 4):
        write_checkpoint(tmp_path, output, step)
    assert prepare_resume(output).latest.step == 4
    assert prune(output, keep=2, newest_step=4) == []
    write_checkpoint(tmp_path, output, 6)
    prune(output, keep=2, newest_step=6)
    assert [step for step, _ in checkpoint_steps(output)] == [4, 6]
    write_checkpoint(tmp_path, output, 8)
    prune(output, keep=2, newest_step=8)
    assert [step for step, _ in checkpoint_steps(output)] == [6, 8]


def test_retention_never_counts_unverified_ones_and_leaves_newer_ones(tmp_path, output):
    write_checkpoint(tmp_path, output, 2)
    write_checkpoint(tmp_path, output, 4, sealed=False)  # a checkpoint that never completed
    write_checkpoint(tmp_path, output, 6)
    write_checkpoint(tmp_path, output, 8, sealed=False)  # being written now, by this run
    deleted = prune(output, keep=2, newest_step=6)
    assert [uri.rsplit("/", 1)[-1] for uri in deleted] == ["checkpoint-000004"]
    assert [step for step, _ in checkpoint_steps(output)] == [2, 6, 8]


def test_unseal_makes_a_replayed_checkpoint_not_count_until_sealed_again(tmp_path, output):
    uri = write_checkpoint(tmp_path, output, 3)
    completion.unseal(uri)
    assert "no completion record" in completion.damage(uri)
