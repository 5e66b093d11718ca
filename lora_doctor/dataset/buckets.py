"""sd-scripts' aspect-ratio bucketing, re-implemented exactly (sd-scripts library/model_util.py make_bucket_resolutions, library/train_util.py BucketManager).

`make_bucket_resolutions` is `library/model_util.py`'s; `BucketPlan` mirrors `BucketManager` plus
`BaseDataset.make_buckets`: which bucket each image lands in, the table sd-scripts prints
(`bucket <i>: resolution (w, h), count: <n>`, counts with repeats) and the batches per epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def make_bucket_resolutions(max_reso: tuple[int, int], min_size: int = 256, max_size: int = 1024,
                            divisible: int = 64) -> list[tuple[int, int]]:
    """The predefined buckets (sorted), as sd-scripts computes them."""
    max_width, max_height = max_reso
    max_area = max_width * max_height
    resos = set()
    width = int(math.sqrt(max_area) // divisible) * divisible
    resos.add((width, width))
    width = min_size
    while width <= max_size:
        height = min(max_size, int((max_area // width) // divisible) * divisible)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += divisible
    return sorted(resos)


def adjust_min_max(min_reso: int, max_reso: int, steps: int) -> tuple[int, int]:
    """min rounded down and max rounded up to multiples of steps (sd-scripts warns when it does)."""
    if min_reso % steps:
        min_reso = min_reso - min_reso % steps
    if max_reso % steps:
        max_reso = max_reso + steps - max_reso % steps
    return min_reso, max_reso


@dataclass(frozen=True)
class Placement:
    """Where one image goes: its bucket, the size it is resized to before cropping, the aspect error."""

    bucket: tuple[int, int]
    resized: tuple[int, int]
    ar_error: float

    def crop_fraction(self) -> float:
        """Share of the resized image that is cropped away to fit the bucket."""
        rw, rh = self.resized
        if rw <= 0 or rh <= 0:
            return 0.0
        return max(0.0, 1.0 - (self.bucket[0] * self.bucket[1]) / (rw * rh))


@dataclass
class BucketPlan:
    """BucketManager: `no_upscale`, the training resolution, bucket bounds and steps."""

    resolution: tuple[int, int]
    enable_bucket: bool = False
    min_size: int = 256
    max_size: int = 1024
    steps: int = 64
    no_upscale: bool = False
    predefined: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.enable_bucket:
            self.predefined = [tuple(self.resolution)]
        elif not self.no_upscale:
            self.predefined = make_bucket_resolutions(tuple(self.resolution), self.min_size, self.max_size, self.steps)
        self._ratios = [w / h for w, h in self.predefined]
        self._set = set(self.predefined)

    def _round(self, x: float) -> int:
        x = int(x + 0.5)
        return x - x % self.steps

    def select(self, width: int, height: int) -> Placement:
        """sd-scripts' `select_bucket` (raises ZeroDivisionError on a 0 size, like sd-scripts)."""
        aspect = width / height
        if not (self.enable_bucket and self.no_upscale):
            reso = (width, height)
            if reso not in self._set:
                errors = [abs(r - aspect) for r in self._ratios]
                reso = self.predefined[errors.index(min(errors))]  # numpy argmin: first minimum
            ar_reso = reso[0] / reso[1]
            scale = reso[1] / height if aspect > ar_reso else reso[0] / width
            resized = (int(width * scale + 0.5), int(height * scale + 0.5))
        else:
            max_area = self.resolution[0] * self.resolution[1]
            if width * height > max_area:
                rw = math.sqrt(max_area * aspect)
                rh = max_area / rw
                bw = self._round(rw)
                bh_w = self._round(bw / aspect)
                ar_w = bw / bh_w if bh_w else float("inf")
                bh = self._round(rh)
                bw_h = self._round(bh * aspect)
                ar_h = bw_h / bh if bh else float("inf")
                if abs(ar_w - aspect) < abs(ar_h - aspect):
                    resized = (bw, int(bw / aspect + 0.5))
                else:
                    resized = (int(bh * aspect + 0.5), bh)
            else:
                resized = (width, height)
            reso = (resized[0] - resized[0] % self.steps, resized[1] - resized[1] % self.steps)
        ar_error = (reso[0] / reso[1]) - aspect if reso[1] else float("inf")
        return Placement(reso, resized, ar_error)


@dataclass
class BucketTable:
    """The buckets in use, sorted like sd-scripts prints them, with counts including repeats."""

    counts: dict[tuple[int, int], int] = field(default_factory=dict)
    mean_ar_error: float = 0.0

    def rows(self) -> list[tuple[int, tuple[int, int], int]]:
        return [(i, reso, self.counts[reso]) for i, reso in enumerate(sorted(self.counts))]

    def batches(self, batch_size: int) -> int:
        """Batches per epoch: each bucket rounds up separately (sd-scripts library/train_util.py, BaseDataset.make_buckets)."""
        return sum(math.ceil(n / batch_size) for n in self.counts.values())

    def lines(self) -> list[str]:
        return [f"bucket {i}: resolution {reso}, count: {n}" for i, reso, n in self.rows()]


def tabulate(placements: list[tuple[Placement, int]]) -> BucketTable:
    """(placement, repeats) pairs -> the bucket table sd-scripts would print."""
    table = BucketTable()
    errors = []
    for placement, repeats in placements:
        table.counts[placement.bucket] = table.counts.get(placement.bucket, 0) + repeats
        errors.append(abs(placement.ar_error))
    table.mean_ar_error = sum(errors) / len(errors) if errors else 0.0
    return table
