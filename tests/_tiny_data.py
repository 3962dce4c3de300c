"""A tiny in-memory pair dataset for the training tests: the sample dicts of
fastpose.data.PairDataset (images in [-1, 1], keypoints (y, x), disks and PG2 pose masks) at
32x16, generated from a seed, so the tests need no dataset on disk."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from fastpose.train.data import DataBundle

SIZE = (32, 16)


def _disks(kp: torch.Tensor, size, radius: float) -> torch.Tensor:
    h, w = size
    yy = torch.arange(h, dtype=torch.float32).view(1, h, 1)
    xx = torch.arange(w, dtype=torch.float32).view(1, 1, w)
    d2 = (yy - kp[:, 0].view(-1, 1, 1)) ** 2 + (xx - kp[:, 1].view(-1, 1, 1)) ** 2
    return ((d2 <= radius ** 2) & (kp >= 0).all(1).view(-1, 1, 1)).float()


class TinyPairs(Dataset):
    """``n`` pairs of one of 4 identities (a coloured figure on a grey background) in two poses."""

    def __init__(self, n: int, seed: int, size=SIZE) -> None:
        g = torch.Generator().manual_seed(seed)
        self.size = size
        h, w = size
        self.colours = torch.rand(4, 3, generator=g) * 2 - 1
        self.ids = torch.randint(0, 4, (n,), generator=g)
        base = torch.tensor([[4, 8], [7, 8], [7, 5], [11, 4], [15, 4], [7, 11], [11, 12], [15, 12],
                             [17, 6], [22, 6], [27, 6], [17, 10], [22, 10], [27, 10],
                             [3, 9], [3, 7], [4, 10], [4, 6]], dtype=torch.float32)
        self.kps = (base[None, None] + torch.randn(n, 2, 18, 2, generator=g) * 1.2).round()
        self.kps[..., 0].clamp_(0, h - 1)
        self.kps[..., 1].clamp_(0, w - 1)
        self.kps[:, :, 16:] = -1  # ears missing

    def __len__(self) -> int:
        return len(self.ids)

    def _render(self, i: int, j: int):
        kp = self.kps[i, j]
        disks = _disks(kp, self.size, 2.0)
        body = _disks(kp, self.size, 3.0).amax(0, keepdim=True)
        img = torch.full((3, *self.size), -0.2) * (1 - body) + self.colours[self.ids[i]].view(3, 1, 1) * body
        return img, kp, disks, body

    def __getitem__(self, i: int) -> dict:
        si, skp, sd, sm = self._render(i, 0)
        ti, tkp, td, tm = self._render(i, 1)
        return {"source_image": si, "target_image": ti, "source_keypoints": skp, "target_keypoints": tkp,
                "source_disks": sd, "target_disks": td,
                "source_pose_mask_pg2": sm, "target_pose_mask_pg2": tm}


class FixedImages(torch.nn.Module):
    """A "model" whose ``generate`` returns the given images (one batch holds every pair)."""

    def __init__(self, images):
        super().__init__()
        self.images = images
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def generate(self, batch):
        return self.images


def tiny_bundle(n_train: int = 24, n_test: int = 6) -> DataBundle:
    return DataBundle(TinyPairs(n_train, 1), TinyPairs(n_test, 2), SIZE, "synthetic")


def tiny_pg2_config(tmp_path, **over):
    from fastpose.train.config import apply_overrides, default_config
    cfg = default_config("pg2", "synthetic")
    apply_overrides(cfg, dict(out=str(tmp_path), run_name="run", batch_size=4, base_channels=8,
                              z_dim=8, d_base_channels=8, stage1_steps=2, stage2_steps=2,
                              image_h=0, image_w=0, log_every=1, sample_every=0,
                              checkpoint_every=0, eval_pairs=4, eval_batch_size=4, sample_pairs=2,
                              lr=1e-3, device="cpu", workers=0))
    apply_overrides(cfg, over)
    return cfg


def _tiny_builder(kind, root, encodings, opts):
    return TinyPairs(24, 1), TinyPairs(6, 2)


# `--data tiny` in the command-line tests.
from fastpose.train.data import register_data  # noqa: E402

register_data("tiny")(_tiny_builder)
