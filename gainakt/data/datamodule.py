"""LightningDataModule serving padded window batches with masks.

Batches are gathered from the flat interaction arrays with one fancy-index per field (no Python
loop over students or steps). With ``bucketing`` on, windows of similar length share a batch that
is padded only to its own longest window instead of to ``window``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from gainakt.data.interactions import InteractionData
from gainakt.data.loading import load_dataset
from gainakt.data.protocol import SPLITS, Windows, make_windows, split_students

Batch = dict[str, torch.Tensor]


class WindowDataset(Dataset):
    """Index space over the windows of one split; collation does the gathering."""

    def __init__(self, data: InteractionData, windows: Windows, student_slot: np.ndarray, pad_to: int | None):
        self.data = data
        self.windows = windows
        self.student_slot = student_slot
        self.pad_to = pad_to

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> int:
        return index

    def collate(self, indices: list[int]) -> Batch:
        """Gather windows ``indices`` into right-padded [B, L] tensors."""
        idx = np.asarray(indices, dtype=np.int64)
        start, length = self.windows.start[idx], self.windows.length[idx]
        steps = self.pad_to or int(length.max())
        pos = np.arange(steps)
        real = pos[None, :] < length[:, None]
        rows = np.where(real, start[:, None] + pos[None, :], 0)
        skills = np.where(real[..., None], self.data.skills[rows], -1)
        batch = {
            "skills": torch.from_numpy(skills.astype(np.int64)),
            "responses": torch.from_numpy((self.data.responses[rows] * real).astype(np.int64)),
            "mask": torch.from_numpy(real),
            "student": torch.from_numpy(self.student_slot[self.windows.student[idx]]),
            "window": torch.from_numpy(idx),
        }
        if self.data.problems is not None:
            batch["problems"] = torch.from_numpy(np.where(real, self.data.problems[rows], -1).astype(np.int64))
        return batch


class LengthBucketBatchSampler(BatchSampler):
    """Batches of windows of similar length, in an order drawn from ``sampler``.

    Takes the sampler's order in pools of ``pool_batches`` batches, sorts each pool by length and
    cuts it into batches, then shuffles the batches when ``shuffle`` is set. Any sampler works,
    so Lightning can swap in a distributed one.
    """

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool,
        lengths: np.ndarray,
        shuffle: bool,
        pool_batches: int = 50,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = lengths
        self.shuffle = shuffle
        self.pool_batches = pool_batches

    def __iter__(self) -> Iterator[list[int]]:
        order = np.fromiter(iter(self.sampler), dtype=np.int64)
        pool = self.batch_size * self.pool_batches
        batches: list[list[int]] = []
        for begin in range(0, len(order), pool):
            chunk = order[begin : begin + pool]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:  # torch's generator, like RandomSampler: seeded by seed_everything, restored on resume
            batches = [batches[i] for i in torch.randperm(len(batches)).tolist()]
        return iter(batches)


class EvalShardSampler(Sampler[int]):
    """Rank ``rank``'s share of ``size`` items, in order, without the repeats ``DistributedSampler`` adds.

    Every item is evaluated exactly once across the ranks, so metrics synced over ranks equal a
    single device's. Ranks may get one item fewer; evaluation has no per-batch collective to stall.
    """

    def __init__(self, size: int, rank: int, world_size: int) -> None:
        self.indices = range(rank, size, world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class KTDataModule(L.LightningDataModule):
    """Knowledge-tracing data under the pykt protocol.

    Args:
        format: reader name (``synthetic``, ``auto``, or a file format of ``loading.FORMATS``).
        root: dataset folder (or file) for file formats.
        fold: validation fold; test is the source's (or the protocol's) held-out students.
        window: maximum window length (pykt: 200).
        min_length: windows shorter than this are dropped (pykt: 3).
        bucketing: pad each batch to its longest window instead of to ``window``.
        synthetic: simulator options (``format=synthetic`` only).
        reader: file-format reader and split options (every format but ``synthetic``).
    """

    def __init__(
        self,
        *,
        format: str,
        root: str | None,
        fold: int,
        window: int,
        min_length: int,
        batch_size: int,
        eval_batch_size: int,
        bucketing: bool,
        num_workers: int,
        cache_dir: str | None,
        synthetic: dict[str, Any] | None,
        reader: dict[str, Any] | None,
    ) -> None:
        super().__init__()
        self.format = format
        self.root = root
        self.fold = fold
        self.window = window
        self.min_length = min_length
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.bucketing = bucketing
        self.num_workers = num_workers
        self.cache_dir = cache_dir
        self.options = dict(synthetic or {}) if format == "synthetic" else dict(reader or {})
        self.data: InteractionData | None = None
        self.datasets: dict[str, WindowDataset] = {}

    def prepare_data(self) -> None:
        """Build the cache once (rank 0) so other ranks only read it; keep what was read, so the
        later calls of a run (``fit``, ``test``) neither read nor log it again."""
        self._load()

    def _load(self) -> None:
        if self.data is None:
            self.data = load_dataset(self.format, self.root, self.options, self.cache_dir)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self._load()
        self.students = split_students(self.data, self.fold)
        students = self.students
        slot = np.full(self.data.num_students, -1, dtype=np.int64)
        slot[students["train"]] = np.arange(len(students["train"]))
        pad_to = None if self.bucketing else self.window
        for split in SPLITS:
            windows = make_windows(self.data, students[split], self.window, self.min_length)
            self.datasets[split] = WindowDataset(self.data, windows, slot, pad_to)
        self.num_train_students = len(students["train"])

    @property
    def num_skills(self) -> int:
        assert self.data is not None, "call setup() first"
        return self.data.num_skills

    def _sampler(self, dataset: WindowDataset, shuffle: bool) -> Sampler[int]:
        """Random or sequential order; under several processes, this rank's share of it.

        Sharding here (with the Trainer's ``use_distributed_sampler: false``, as in
        ``conf/trainer/ddp.yaml``) lets evaluation see every window exactly once.
        """
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        if world == 1:
            return RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
        if shuffle:  # equal shares (a few windows repeated) keep the ranks' gradient steps in lockstep;
            # the permutation must agree across ranks: seed_everything gave every rank the same torch seed
            return DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=torch.initial_seed())
        return EvalShardSampler(len(dataset), rank, world)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        batch_size = self.batch_size if split == "train" else self.eval_batch_size
        sampler = self._sampler(dataset, shuffle)
        if self.bucketing:
            batch_sampler: BatchSampler = LengthBucketBatchSampler(
                sampler, batch_size, False, dataset.windows.length, shuffle=shuffle
            )
        else:
            batch_sampler = BatchSampler(sampler, batch_size, False)
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            collate_fn=dataset.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
