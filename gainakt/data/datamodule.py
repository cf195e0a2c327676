"""LightningDataModule serving padded window batches with masks.

Batches are gathered from the flat interaction arrays with one fancy-index per field (no Python
loop over students or steps). With ``bucketing`` on, windows of similar length share a batch that
is padded only to its own longest window (rounded up to ``pad_multiple``) instead of to ``window``;
``batch_tokens`` fills each batch up to a budget of padded steps instead of a number of windows;
``auto`` (the default) picks the budget that gives ``batch_size`` windows a batch on average
(bucketed batches only: unbucketed ones are random mixes of ``batch_size`` windows).
The batches of an epoch are a pure function of (``shuffle_seed``, epoch).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler

from gainakt.data.interactions import InteractionData
from gainakt.data.loading import load_dataset
from gainakt.data.protocol import SPLITS, Windows, make_windows, split_students

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Padding:
    """How far a batch is padded: to ``window`` (fixed padding), or with ``bucketing`` to its longest
    window rounded up to a multiple of ``multiple`` (at most ``window``), so that shapes repeat."""

    window: int
    bucketing: bool
    multiple: int

    def steps(self, longest: np.ndarray | int) -> np.ndarray | int:
        """Padded length of a batch whose longest window has ``longest`` steps (arrays element-wise)."""
        if not self.bucketing:
            return np.full_like(longest, self.window) if isinstance(longest, np.ndarray) else self.window
        return np.minimum(-(-longest // self.multiple) * self.multiple, self.window)


class WindowDataset(Dataset):
    """Index space over the windows of one split; collation does the gathering."""

    def __init__(self, data: InteractionData, windows: Windows, student_slot: np.ndarray, padding: Padding):
        self.data = data
        self.windows = windows
        self.student_slot = student_slot
        self.padding = padding

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> int:
        return index

    def collate(self, indices: list[int] | np.ndarray) -> Batch:
        """Gather windows ``indices`` into right-padded [B, L] tensors."""
        idx = np.asarray(indices, dtype=np.int64)
        start, length = self.windows.start[idx], self.windows.length[idx]
        steps = int(self.padding.steps(int(length.max())))
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


class EpochOrder(Sampler[int]):
    """The order of ``size`` windows in one epoch: a permutation drawn from (``seed``, epoch), or
    0..size-1 without ``shuffle``. Lightning calls :meth:`set_epoch` before every epoch, so the order
    of any epoch can be recomputed (a resumed run draws what an uninterrupted one would)."""

    def __init__(self, size: int, shuffle: bool, seed: int) -> None:
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def generator(self, stream: int) -> np.random.Generator:
        """Random numbers of this epoch; ``stream`` separates independent uses."""
        return np.random.default_rng((self.seed, self.epoch, stream))

    def order(self) -> np.ndarray:
        return self.generator(0).permutation(self.size) if self.shuffle else np.arange(self.size)

    def __iter__(self) -> Iterator[int]:
        yield from self.order().tolist()

    def __len__(self) -> int:
        return self.size


AUTO = "auto"  # data.batch_tokens: the budget of batch_size windows of the mean training length


def mean_batch_budget(batch_size: int, padded: np.ndarray) -> int:
    """The token budget whose batches hold ``batch_size`` windows on average (``padded``: each
    window's padded length alone), so an epoch takes as many optimiser steps as ``batch_size``
    batches would.

    Why a budget at all: the loss of a batch is the mean over its answers. Bucketed batches of
    ``batch_size`` windows put 64 windows of 5 answers in one step and 64 of 200 in another, so an
    answer in a short window weighs about 50 times one in a long window (4 scored answers a window
    against 199). Equal budgets weigh every answer the same, as random batches do, at the speed of
    bucketed ones.
    """
    return max(int(np.ceil(batch_size * float(np.mean(padded)))), 1)


def token_budget_cuts(padded: np.ndarray, budget: int) -> np.ndarray:
    """Batch boundaries over windows sorted by length: each batch takes as many windows as fit in
    ``budget`` padded steps (rows x its longest window's padded length), at least one.

    Args:
        padded: [N] padded length each window would give its batch as the longest one (non-decreasing).
    Returns the start of every batch and N: batch k is ``[cuts[k], cuts[k+1])``.
    """
    capacity = np.maximum(budget // padded, 1)
    # window j fits in a batch starting at i iff j - i + 1 <= capacity[j], i.e. capacity[j] - j >= 1 - i;
    # capacity[j] - j strictly decreases, so the windows that fit are a prefix: one search per batch
    slack = np.arange(len(padded)) - capacity  # strictly increasing
    cuts = [0]
    while cuts[-1] < len(padded):
        cuts.append(int(np.searchsorted(slack, cuts[-1] - 1, side="right")))
    return np.asarray(cuts)


class WindowBatchSampler(BatchSampler):
    """The batches of one epoch for this rank: a pure function of the seed and the epoch.

    - fixed size (``batch_tokens`` None): ``batch_size`` windows a batch; with ``padding.bucketing``
      the epoch's order is taken in pools of ``pool_batches`` batches, each sorted by length and cut
      into batches, so a batch holds windows of similar length;
    - token budget: the split sorted by length (ties in the epoch's random order) is cut into
      batches of at most ``batch_tokens`` padded steps each, so short windows come many to a batch;
      the cuts depend only on the lengths, so every epoch has the same batch shapes.

    With ``shuffle`` the batches' order is drawn from the epoch too. Under several processes rank
    ``rank`` takes every ``world``-th batch; in training (``equal_shares``) all ranks take the same
    number of batches, so their gradient steps stay in lockstep (a few batches rest each epoch);
    in evaluation every window is seen exactly once.
    """

    def __init__(
        self,
        order: EpochOrder,
        lengths: np.ndarray,
        padding: Padding,
        batch_size: int,
        batch_tokens: int | None,
        pool_batches: int,
        rank: int,
        world: int,
        equal_shares: bool,
    ) -> None:
        super().__init__(order, batch_size, drop_last=False)
        self.lengths = lengths
        self.padding = padding
        self.batch_tokens = batch_tokens
        self.pool_batches = pool_batches
        self.rank = rank
        self.world = world
        self.equal_shares = equal_shares
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def all_batches(self) -> list[np.ndarray]:
        """Every rank's batches of the current epoch, in order."""
        order: EpochOrder = self.sampler
        if self._cache is not None and self._cache[0] == order.epoch:
            return self._cache[1]
        windows = order.order()
        if self.batch_tokens is not None:
            windows = windows[np.argsort(self.lengths[windows], kind="stable")]
            cuts = token_budget_cuts(self.padding.steps(self.lengths[windows]), self.batch_tokens)
            batches = np.split(windows, cuts[1:-1])
        else:
            pool = self.batch_size * self.pool_batches if self.padding.bucketing else len(windows)
            batches = []
            for begin in range(0, len(windows), pool):
                chunk = windows[begin : begin + pool]
                if self.padding.bucketing:
                    chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
                batches.extend(np.split(chunk, range(self.batch_size, len(chunk), self.batch_size)))
        if order.shuffle:
            batches = [batches[i] for i in order.generator(1).permutation(len(batches))]
        self._cache = (order.epoch, batches)
        return batches

    def _mine(self) -> list[np.ndarray]:
        batches = self.all_batches()
        if self.world == 1:
            return batches
        mine = batches[self.rank :: self.world]
        return mine[: len(batches) // self.world] if self.equal_shares else mine

    def __iter__(self) -> Iterator[list[int]]:
        # a generator: the epoch's batches are drawn at the first batch, after Lightning's set_epoch
        # (it creates the iterator of a resumed run's first epoch before setting the epoch)
        for batch in self._mine():
            yield batch.tolist()

    def __len__(self) -> int:
        return len(self._mine())


class KTDataModule(L.LightningDataModule):
    """Knowledge-tracing data under the pykt protocol.

    Args:
        format: reader name (``synthetic``, ``auto``, or a file format of ``loading.FORMATS``).
        root: dataset folder (or file) for file formats.
        fold: validation fold; test is the source's (or the protocol's) held-out students.
        window: maximum window length (pykt: 200).
        min_length: windows shorter than this are dropped (pykt: 3).
        batch_size, eval_batch_size: windows per training / evaluation batch.
        batch_tokens, eval_batch_tokens: if set, batches hold as many windows of similar length
            as fit in this many padded steps instead (``batch_size`` then only sizes the pools);
            ``batch_tokens="auto"``: :func:`mean_batch_budget` of the training windows when
            ``bucketing``, else ``batch_size`` windows.
        bucketing: pad each batch to its longest window instead of to ``window``.
        pad_multiple: round a bucketed batch's padded length up to a multiple of this (1: exact).
        shuffle_seed: the training batches of epoch e are drawn from (shuffle_seed, e).
        pool_batches: bucketing sorts the epoch's order in pools of this many batches.
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
        batch_tokens: int | str | None,
        eval_batch_tokens: int | None,
        bucketing: bool,
        pad_multiple: int,
        shuffle_seed: int,
        pool_batches: int,
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
        self.batch_tokens = batch_tokens
        self.eval_batch_tokens = eval_batch_tokens
        self.bucketing = bucketing
        self.pad_multiple = pad_multiple
        self.shuffle_seed = shuffle_seed
        self.pool_batches = pool_batches
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
        padding = Padding(self.window, self.bucketing, self.pad_multiple)
        for split in SPLITS:
            windows = make_windows(self.data, students[split], self.window, self.min_length)
            self.datasets[split] = WindowDataset(self.data, windows, slot, padding)
        self.num_train_students = len(students["train"])
        self.train_batch_tokens = self.batch_tokens
        if self.batch_tokens == AUTO:  # unbucketed batches are random mixes: batch_size windows each
            padded = padding.steps(self.datasets["train"].windows.length)
            self.train_batch_tokens = mean_batch_budget(self.batch_size, padded) if self.bucketing else None

    @property
    def num_skills(self) -> int:
        assert self.data is not None, "call setup() first"
        return self.data.num_skills

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        """This rank's batches of ``split``; pinned host memory when training on a CUDA device, so
        the copy to the device runs asynchronously (Lightning copies with ``non_blocking``)."""
        dataset = self.datasets[split]
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        on_cuda = trainer is not None and trainer.strategy.root_device.type == "cuda"
        train = split == "train"
        batch_sampler = WindowBatchSampler(
            EpochOrder(len(dataset), shuffle, self.shuffle_seed),
            dataset.windows.length,
            dataset.padding,
            batch_size=self.batch_size if train else self.eval_batch_size,
            batch_tokens=self.train_batch_tokens if train else self.eval_batch_tokens,
            pool_batches=self.pool_batches,
            rank=rank,
            world=world,
            equal_shares=train,
        )
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            collate_fn=dataset.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=on_cuda,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
