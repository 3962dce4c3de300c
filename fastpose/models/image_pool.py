"""The history buffer of generated samples that PATN's discriminators train on (CycleGAN's
``ImagePool``, Shrivastava et al. 2017).

The discriminator then sees a mix of the newest fakes and fakes from earlier generator states,
which damps oscillations. Rule per sample of a batch, as in the authors' ``util/image_pool.py``:
while the pool holds fewer than ``size`` samples, store the new one and return it; once it is
full, with probability 1/2 return a stored sample chosen uniformly and put the new one in its
place, otherwise return the new one. ``size = 0`` returns the batch unchanged (DeepFashion).

Randomness comes from torch's global generator (seeded by the training loop). The pool's content
is not checkpointed (as in the authors' code): a resumed run starts with an empty pool.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


class ImagePool:
    """A pool of up to ``size`` detached samples (see the module docstring).

    Args:
        size: capacity in samples; 0 disables the pool.
    """

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"ImagePool: size must be >= 0, got {size}")
        self.size = size
        self.items: list[Tensor] = []

    def __len__(self) -> int:
        return len(self.items)

    def query(self, batch: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
        """``batch [N, ...]`` -> ``[N, ...]``: each sample is the new one or a stored older one."""
        batch = batch.detach()
        if self.size == 0:
            return batch
        out = []
        for sample in batch:
            if len(self.items) < self.size:
                self.items.append(sample.clone())
                out.append(sample)
            elif torch.rand((), generator=generator).item() < 0.5:
                j = int(torch.randint(len(self.items), (), generator=generator))
                out.append(self.items[j])
                self.items[j] = sample.clone()
            else:
                out.append(sample)
        return torch.stack(out)
