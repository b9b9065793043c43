"""Shared test settings: small thread count, quick profile, no network, and a tiny in-memory data set."""
from __future__ import annotations

import os
import socket

import pytest
import torch

os.environ.setdefault("COLORBOOK_PROFILE", "quick")
os.environ.setdefault("MPLBACKEND", "Agg")
# one thread: tests are many small ops, where a second thread costs more than it gives (and CI runs
# notebooks beside them)
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests must never touch the network: any connection attempt fails loudly."""
    real_connect = socket.socket.connect

    def refuse_inet(sock, address, *args, **kwargs):
        if sock.family in (socket.AF_INET, socket.AF_INET6):  # local Unix sockets (multiprocessing) are fine
            raise RuntimeError(f"a test tried to open a network connection to {address}")
        return real_connect(sock, address, *args, **kwargs)
    monkeypatch.setattr(socket.socket, "connect", refuse_inet)


class TinyLab(torch.utils.data.Dataset):
    """``n`` random normalised-Lab images (3, size, size) with labels; seeded."""

    color_space = "lab"

    def __init__(self, n: int = 16, size: int = 16, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, size, size, generator=gen)
        self.labels = torch.randint(0, 10, (n,), generator=gen)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index])

    def as_tensors(self):
        return self.images, self.labels


class TinyRGBFolderLike(TinyLab):
    """Like TinyLab but RGB and without ``as_tensors``, so the trainer uses a DataLoader; random crop
    from torch's global RNG, to check that resuming replays augmentations exactly."""

    color_space = "rgb"
    as_tensors = None  # type: ignore[assignment]

    def __getitem__(self, index: int):
        image = self.images[index]
        shift = int(torch.randint(0, 4, ()).item())
        return torch.roll(image, shift, dims=-1), -1


@pytest.fixture
def tiny_lab():
    return TinyLab


@pytest.fixture
def tiny_rgb():
    return TinyRGBFolderLike


@pytest.fixture
def tiny():
    """``tiny(name="H", **options)``: the quick recipe at 16 px, batch 4, with a 4-channel UNet and a ResNet-10
    critic: a real recipe small enough for a training test."""
    import dataclasses

    from colorbook import recipes

    def make(name: str = "H", **options):
        base = recipes.get(name).resolve("quick")
        options = {"base_channels": 4, "critic": "resnet10", **options}
        return dataclasses.replace(base.with_options(**options), batch_size=4, image_size=16)
    return make
