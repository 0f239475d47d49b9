"""What a run trains on (chapter 6): the training set (downloaded by one process under
torchrun), and for every step the data order, the augmentation and the masking noise, each
drawn from its own seeded stream for the whole global batch, so a step is a pure function of
(seed, step) and every process takes its share of the same batch. Every draw is made on the
CPU and then copied to the device, so a CPU, a T4 and an H100 run the same experiment (up to
the arithmetic of each device)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist

from .augment import AugmentedImages, DeviceAugment, loader_transform
from .config import TrainConfig
from .data import ImageSet, load_dataset
from .mae import MODEL_PRESETS
from .masking import block_masking_noise, grid_masking_noise
from .runtime import derive_seed


class EpochOrder:
    """The data order (chapter 6): one permutation of the `n` images per epoch, drawn from the
    run's seed; `batch(it)` gives the global batch of micro-step `it` (the last partial batch
    of an epoch is dropped). The current epoch's permutation is kept, not redrawn per step."""

    def __init__(self, n: int, batch_size: int, seed: int,
                 device: torch.device | str = "cpu") -> None:
        self.n, self.batch_size, self.seed, self.device = n, batch_size, seed, device
        self.per_epoch = n // batch_size
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def batch(self, it: int) -> torch.Tensor:
        epoch, pos = divmod(it, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "order", epoch))
            order = torch.randperm(self.n, generator=g)  # drawn on the CPU: the same anywhere
            self._epoch, self._order = epoch, order.to(self.device)  # one copy per epoch
        return self._order[pos * self.batch_size:(pos + 1) * self.batch_size]


def step_generator(seed: int, stream: str, it: int) -> torch.Generator:
    """The CPU generator of one random stream ("mask", "augment", ...) at micro-step `it`:
    the draws of a step depend on (seed, stream, step) only, never on the device. Chapter 6."""
    return torch.Generator().manual_seed(derive_seed(seed, stream, it))


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields, for micro-step `it` onwards, this process's share of the global batch as
    (index, augmentation seed) pairs, for the `DataLoader` pipeline. Chapter 6."""

    def __init__(self, n: int, batch_size: int, seed: int, start: int, stop: int,
                 rank: int = 0, world: int = 1) -> None:
        self.order = EpochOrder(n, batch_size, seed)
        self.batch_size, self.seed = batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        local = self.batch_size // self.world
        for it in range(self.start, self.stop):
            chunk = self.order.batch(it)
            first = self.rank * local
            yield [(int(chunk[j]), derive_seed(self.seed, "augment-image",
                                               it * self.batch_size + j))
                   for j in range(first, first + local)]


def step_batches(cfg: TrainConfig, data: ImageSet, device: torch.device, start: int = 0,
                 stop: int | None = None, *, rank: int = 0, world: int = 1
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, masking noise) of micro-steps `start` to `stop` (default: one epoch of
    `data`), for process `rank` of `world` (its share of each global batch). Chapter 6."""
    stop = start + len(data) // cfg.batch_size if stop is None else stop
    local = cfg.batch_size // world
    share = slice(rank * local, (rank + 1) * local)
    size, num_patches = MODEL_PRESETS[cfg.model].img_size, MODEL_PRESETS[cfg.model].num_patches

    def noise_for(it: int) -> torch.Tensor:  # (N, L): the smallest K values stay visible
        g = step_generator(cfg.seed, "mask", it)
        grid = int(num_patches**0.5)
        noise = (torch.rand(cfg.batch_size, num_patches, generator=g) if cfg.masking == "random"
                 else grid_masking_noise(cfg.batch_size, grid, g) if cfg.masking == "grid"
                 else block_masking_noise(cfg.batch_size, grid, cfg.mask_ratio, g))  # Table 1f
        return noise[share].to(device)

    if cfg.pipeline == "device":
        images = data.images.to(device)  # the whole dataset, uint8, on the device
        augment = DeviceAugment(data.mean, data.std, size)
        order = EpochOrder(len(data), cfg.batch_size, cfg.seed, device)
        for it in range(start, stop):
            idx = order.batch(it)[share]
            g = step_generator(cfg.seed, "augment", it)
            boxes, flip = augment.sample(cfg.batch_size, *images.shape[-2:], g, device)
            yield augment.apply(images[idx], boxes[share], flip[share]), noise_for(it)
    else:
        dataset = AugmentedImages(data, loader_transform(data.mean, data.std, size))
        sampler = StepBatchSampler(len(data), cfg.batch_size, cfg.seed, start, stop, rank, world)
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
            pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0)
        for it, (imgs, _) in zip(range(start, stop), loader, strict=True):
            yield imgs.to(device, non_blocking=True), noise_for(it)


def load_training_data(cfg: TrainConfig, world: int, local_rank: int) -> ImageSet:
    """The training set. Under torchrun, local rank 0 downloads CIFAR-10 while the other
    processes wait at a barrier, then load what it wrote (without downloading): N processes
    never write the same archive at once. The errata appendix and chapter 9."""
    def load(download: bool) -> ImageSet:
        return load_dataset(cfg.dataset, cfg.data_root, train=True, download=download,
                            synthetic_size=cfg.synthetic_size, seed=cfg.data_seed)

    if world == 1 or cfg.dataset != "cifar10":
        return load(download=True)
    failure: Exception | None = None
    if local_rank == 0:
        try:
            data = load(download=True)
        except Exception as exc:  # let the others pass the barrier, then fail together
            failure = exc
    dist.barrier()
    if failure is not None:
        raise failure
    return data if local_rank == 0 else load(download=False)
