"""Batches for training: deterministic, so that a resumed run sees the same batches.

Introduced in chapter 4 of the book (book/04-reconstruction).
"""
from __future__ import annotations

import os
import random
from typing import Iterator

import numpy as np
import torch

from colorbook import color

__all__ = ["BatchStream", "spread_indices", "fixed_examples"]


class _SeededItems(torch.utils.data.Dataset):
    """Wraps a data set so that item ``(index, seed)`` is drawn with all RNGs seeded by ``seed``:
    random crops then depend only on the iteration, which makes resuming exact."""

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        index, seed = key
        py_state, np_state = random.getstate(), np.random.get_state()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            try:
                return self.dataset[index]
            finally:
                random.setstate(py_state)
                np.random.set_state(np_state)


class BatchStream:
    """Deterministic batches: batch ``k`` of a run is a function of (seed, k) only.

    Epoch ``e`` visits the data in the order ``randperm(n)`` seeded by ``(seed, e)``; the last
    incomplete batch of an epoch is dropped. Data sets with ``as_tensors()`` are kept whole on the
    device and indexed there (no DataLoader); others go through a DataLoader with workers.
    Yields ``(images (B,3,H,W) float in [0,1] in the data set's colour space, labels (B,))``.
    """

    def __init__(self, dataset, batch_size: int, device: torch.device, seed: int = 0,
                 num_workers: int | None = None) -> None:
        n = len(dataset)
        if n < batch_size:
            raise ValueError(f"the data set has {n} images, fewer than one batch of {batch_size}: "
                             "give more data or a smaller --batch-size")
        self.dataset, self.batch_size, self.device, self.seed = dataset, batch_size, device, seed
        self.steps_per_epoch = n // batch_size
        self.tensors = None
        if callable(getattr(dataset, "as_tensors", None)):
            images, labels = dataset.as_tensors()
            self.tensors = (images.to(device), labels.to(device))
        if num_workers is None:
            num_workers = min(4, max(0, (os.cpu_count() or 1) - 1))
        self.num_workers = num_workers

    def _indices(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.steps_per_epoch)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.dataset), generator=gen)
        return order[position * self.batch_size:(position + 1) * self.batch_size]

    def batches(self, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.tensors is not None:
            images, labels = self.tensors
            step = start_step
            while True:
                index = self._indices(step).to(self.device)
                yield images[index], labels[index]
                step += 1
        stream = self

        class _Sampler(torch.utils.data.Sampler):
            def __iter__(self):
                step = start_step
                while True:
                    yield [(int(i), stream.seed * 7919 + step * 131 + j)
                           for j, i in enumerate(stream._indices(step))]
                    step += 1

        loader = torch.utils.data.DataLoader(
            _SeededItems(self.dataset), batch_sampler=_Sampler(), num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0)
        for images, labels in loader:
            yield images.to(self.device, non_blocking=True), torch.as_tensor(labels).to(self.device)


def spread_indices(length: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(length)`` (all of them when ``count >= length``)."""
    if count >= length:
        return list(range(length))
    return torch.linspace(0, length - 1, count).round().long().tolist()


def fixed_examples(dataset, count: int, space: str, device: torch.device) -> torch.Tensor:
    """``count`` images spread evenly over ``dataset`` (evaluation view; data sets may be sorted by class),
    converted to ``space``: ``(count,3,H,W)``."""
    count = min(count, len(dataset))
    images = torch.stack([dataset[i][0] for i in spread_indices(len(dataset), count)]).to(device)
    return color.convert(images, dataset.color_space, space)
