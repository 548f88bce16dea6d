"""One gloo process group for every in-process DeepSpeed test of the session.

DeepSpeed keeps the first process group it sees in module state (``deepspeed.comm.cdb``); a test that destroys
the group and a later test that makes a new one leave DeepSpeed holding a dead group. So the group is made once,
on first use, and destroyed when the session ends."""

from __future__ import annotations

import os
import socket

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def gloo_world():
    import torch.distributed as dist

    from vlmtune.train.deepspeed_internals import skip_shm_comm

    skip_shm_comm()  # as the train loop does: no C++ build of an op training never calls

    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    yield
    dist.destroy_process_group()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
