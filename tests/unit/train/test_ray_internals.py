"""The Ray Train internals vlmtune relies on exist in the installed Ray and mean what the adapter says."""

from __future__ import annotations

import inspect

from vlmtune.spec.layout import RAY_SNAPSHOT
from vlmtune.train import ray_internals


def test_the_snapshot_name_is_ray_trains_own():
    from ray.train.v2._internal.execution import storage as ray_storage

    assert ray_internals.snapshot_name() == RAY_SNAPSHOT
    # Ray writes the snapshot under that name in the run's storage folder.
    source = inspect.getsource(ray_storage)
    assert "CHECKPOINT_MANAGER_SNAPSHOT_FILENAME" in source


def test_forgetting_removes_only_rays_list(tmp_path):
    (tmp_path / RAY_SNAPSHOT).write_text("{}")
    (tmp_path / "checkpoint-000004").mkdir()
    ray_internals.forget_ray_checkpoints(str(tmp_path))
    ray_internals.forget_ray_checkpoints(str(tmp_path))  # absent: nothing to do, no error
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint-000004"]
