"""The datamodule: digits, joint and mixed modes, samplers and their DDP sharding, local files."""

from __future__ import annotations

import json

import pytest
import torch

from peftlab.data import DigitsSource, LocalFileSource, MultiTaskDataModule
from peftlab.data.batching import MixedTaskBatches, SequentialBatches, ShuffledBatches, task_probabilities
from peftlab.errors import ConfigError

TASKS = [
    {"name": "digit", "label": "digit", "num_classes": 10},
    {"name": "parity", "label": "parity", "num_classes": 2},
    {"name": "high", "label": "high", "num_classes": 2},
]


def test_digits_are_real_and_labels_derive_from_the_digit():
    table = DigitsSource().load()
    assert tuple(table.x.shape) == (1797, 64)
    assert 0.0 <= float(table.x.min()) and float(table.x.max()) == 1.0
    d = table.labels["digit"]
    assert torch.equal(table.labels["parity"], d.remainder(2))
    assert torch.equal(table.labels["high"], (d >= 5).float())


def test_joint_split_is_seeded_stratified_and_disjoint():
    dm = MultiTaskDataModule(DigitsSource(), TASKS, seed=3)
    dm.setup()
    sizes = {k: len(v) for k, v in dm.splits.items()}
    assert sum(sizes.values()) == 1797
    assert abs(sizes["test"] - 0.15 * 1797) < 2 and abs(sizes["val"] - 0.15 * 1797) < 2
    # stratified: every digit has roughly its share in the test split
    counts = torch.bincount(dm.splits["test"].y[:, 0].long(), minlength=10)
    assert int(counts.min()) >= 25
    # the same seed gives the same split; another seed a different one
    again = MultiTaskDataModule(DigitsSource(), TASKS, seed=3)
    again.setup()
    assert torch.equal(again.splits["test"].x, dm.splits["test"].x)
    other = MultiTaskDataModule(DigitsSource(), TASKS, seed=4)
    other.setup()
    assert not torch.equal(other.splits["test"].x, dm.splits["test"].x)


def test_joint_batches_carry_every_task():
    dm = MultiTaskDataModule(DigitsSource(), TASKS, batch_size=32)
    batch = next(iter(dm.train_dataloader()))
    assert tuple(batch["inputs"].shape) == (32, 64)
    assert tuple(batch["y"].shape) == (32, 3) and bool(batch["task_mask"].all())


def test_mixed_mode_gives_disjoint_single_task_subsets_and_batches():
    dm = MultiTaskDataModule(DigitsSource(), TASKS, mode="mixed", sampling="uniform", batch_size=16)
    dm.setup()
    train = dm.splits["train"]
    assert bool((train.task_mask.sum(1) == 1).all()), "each sample belongs to exactly one task"
    per_task = train.task_mask.sum(0)
    assert int(per_task.max() - per_task.min()) <= 1
    seen = torch.zeros(3)
    for batch in dm.train_dataloader():
        present = batch["task_mask"].any(0)
        assert int(present.sum()) == 1, "mixed batches hold a single task"
        seen += present.float()
    assert bool((seen > 0).all())
    for batch in dm.val_dataloader():
        assert int(batch["task_mask"].any(0).sum()) == 1


def test_task_probabilities():
    assert task_probabilities([100, 300], "proportional") == pytest.approx([0.25, 0.75])
    assert task_probabilities([100, 300], "uniform") == pytest.approx([0.5, 0.5])
    p = task_probabilities([100, 400], "temperature", temperature=2.0)  # ∝ sqrt(n): 10 vs 20
    assert p == pytest.approx([1 / 3, 2 / 3])


def test_mixed_sampler_follows_the_probabilities():
    sampler = MixedTaskBatches([torch.arange(0, 50), torch.arange(50, 100)], [0.2, 0.8], batch_size=1, seed=0)
    sampler.task_indices = [torch.arange(0, 5000), torch.arange(5000, 10000)]  # long epoch
    firsts = torch.tensor([b[0] for b in sampler])
    assert float((firsts >= 5000).float().mean()) == pytest.approx(0.8, abs=0.03)


def test_two_ranks_see_exactly_the_samples_of_one_rank_with_twice_the_batch():
    single = list(ShuffledBatches(100, 8, seed=1))
    ranks = [list(ShuffledBatches(100, 4, seed=1, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for b, r0, r1 in zip(single, *ranks):
        assert sorted(b) == sorted(r0 + r1)
    groups = [torch.arange(0, 7), torch.arange(7, 20)]
    mixed = [list(MixedTaskBatches(groups, [0.5, 0.5], 3, seed=2, rank=r, world_size=2)) for r in range(2)]
    one = list(MixedTaskBatches(groups, [0.5, 0.5], 6, seed=2))
    for b, r0, r1 in zip(one, *mixed):
        assert sorted(b) == sorted(r0 + r1)


def test_eval_shards_cover_every_sample_once_without_padding():
    groups = [torch.arange(0, 11), torch.arange(11, 30)]
    shards = [SequentialBatches(groups, 4, rank=r, world_size=3) for r in range(3)]
    seen = sorted(i for s in shards for b in s for i in b)
    assert seen == list(range(30))


def test_epochs_reshuffle():
    s = ShuffledBatches(50, 50, seed=0)
    first = list(s)[0]
    s.set_epoch(1)
    assert list(s)[0] != first


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_local_file_source_reads_csv_and_jsonl(tmp_path, suffix):
    rows = [{"f0": i, "f1": i * 0.5, "cls": i % 3, "reg": i * 2.0} for i in range(60)]
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        path.write_text("f0,f1,cls,reg\n" + "".join(f"{r['f0']},{r['f1']},{r['cls']},{r['reg']}\n" for r in rows))
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    source = LocalFileSource(str(path), features=["f0", "f1"], labels=["cls", "reg"], stratify_label="cls")
    dm = MultiTaskDataModule(
        source,
        [{"name": "c", "label": "cls", "num_classes": 3}, {"name": "r", "label": "reg", "num_classes": 0, "metric": "r2"}],
        batch_size=8,
    )
    assert dm.input_shape == (2,)
    batch = next(iter(dm.train_dataloader()))
    assert tuple(batch["y"].shape) == (8, 2)
    x, y = batch["inputs"], batch["y"]
    assert torch.allclose(y[:, 1], x[:, 0] * 2.0)


def test_mixed_batches_have_exactly_the_batch_size():
    sampler = MixedTaskBatches([torch.arange(0, 5), torch.arange(5, 40)], [0.5, 0.5], batch_size=8, seed=0)
    sizes = [len(b) for b in sampler]
    assert sizes == [8] * len(sampler)  # a task with 5 rows fills its batch by reshuffling
    halves = [list(MixedTaskBatches([torch.arange(0, 5), torch.arange(5, 40)], [0.5, 0.5], 4, seed=0, rank=r, world_size=2)) for r in range(2)]
    assert all(len(b) == 4 for h in halves for b in h)


def test_input_shape_is_checked_against_the_data():
    dm = MultiTaskDataModule(DigitsSource(), TASKS, input_shape=[64])
    assert dm.input_shape == (64,)
    dm.setup()
    with pytest.raises(ConfigError) as err:
        MultiTaskDataModule(DigitsSource(), TASKS, input_shape=[4]).setup()
    assert err.value.key == "data.input_shape" and "[64]" in str(err.value)


def test_rows_without_a_label_train_only_their_other_tasks():
    """NaN in a label column: the row is not labelled for that task (joint mode masks it out)."""

    class PartlyLabelled(DigitsSource):
        def load(self):
            table = super().load()
            table.labels["parity"][::3] = float("nan")
            return table

    dm = MultiTaskDataModule(PartlyLabelled(), TASKS)
    dm.setup()
    mask = torch.cat([dm.splits[s].task_mask for s in ("train", "val", "test")])
    assert mask.sum(0).tolist() == [1797, 1797 - 599, 1797]
    assert not bool(torch.cat([dm.splits[s].y for s in ("train", "val", "test")]).isnan().any())
