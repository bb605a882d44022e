"""The end of a training process destroys its default process group (runs/multirun_ddp.py): a gloo
group still alive at interpreter exit can abort the rank ("terminate called without an active exception")."""

from __future__ import annotations

import torch.distributed as dist

from peftlab.runs.multirun_ddp import release_process_group


def test_release_destroys_an_initialised_group_and_is_a_no_op_without_one(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.is_initialized()
    release_process_group()
    assert not dist.is_initialized()
    release_process_group()  # nothing left to destroy: no error
    assert not dist.is_initialized()
