"""Training and evaluation data: clean photos, degraded on the fly for a task.

Clean images come from a folder (PNG, JPEG, TIFF, WebP, BMP; 8- or 16-bit; grey, RGB or RGBA;
searched recursively, read by :mod:`edgeir.data.imageio`) or, when no folder is given, from the
photographs bundled with scikit-image. Grey images become three equal channels and alpha is dropped.

The images are split once, by image, into a training and an evaluation set: the names are sorted,
shuffled with ``split_seed`` and the first ``eval_fraction`` (at least one image) are held out.
The split depends only on the file names and the seed, so training never sees an evaluation image,
whatever crop size, batch size or training seed is used.

:class:`TrainingPairs` yields batches of random crops (with random flips and, for square crops,
90-degree rotations) degraded for the task (:mod:`edgeir.data.degradations`). Batch ``k`` is a pure
function of ``(seed, rank, k)``: a resumed run sees exactly the batches it would have seen.
:func:`evaluation_pairs` gives fixed, seeded crops of the held-out images.

A damaged file never trains silently: by default it is skipped with a warning that names it (and
listed in ``skipped``); with ``strict=True`` it raises. A folder without readable images is an error.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeir.data.degradations import check_task, degrade_image, task_scale
from edgeir.data.imageio import IMAGE_EXTENSIONS, load_image
from edgeir.errors import ImageError, UsageError

log = logging.getLogger(__name__)

#: scikit-image's bundled photographs used when no folder is given (natural images and textures;
#: ``motorcycle_right`` is left out: it is the same scene as ``motorcycle_left``).
BUILTIN_TRAINING_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
                           "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png",
                           "motorcycle_left.png", "retina.jpg", "rocket.jpg")
EVAL_FRACTION = 0.2
SPLIT_SEED = 0


@dataclass(frozen=True)
class CleanImage:
    """One clean source image, kept in its file's integer type until a crop is taken.

    Args:
        name: File name relative to the source folder (or the built-in photo's name).
        pixels: HxWx3 uint8 or uint16.
    """

    name: str
    pixels: np.ndarray

    def crop(self, top: int, left: int, height: int, width: int) -> np.ndarray:
        """An HxWx3 float32 crop in [0, 1]."""
        top_max = float(np.iinfo(self.pixels.dtype).max)
        return self.pixels[top:top + height, left:left + width].astype(np.float32) / np.float32(top_max)


@dataclass(frozen=True)
class ImageSet:
    """The readable images of a source, split by image, and the files that were skipped.

    Args:
        source: The folder, or ``"builtin"``.
        train: Images training may use.
        evaluation: Held-out images, never in ``train``.
        skipped: ``(file, reason)`` for each unreadable file.
    """

    source: str
    train: tuple[CleanImage, ...]
    evaluation: tuple[CleanImage, ...]
    skipped: tuple[tuple[str, str], ...] = ()


def image_files(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted), by extension.

    Raises:
        UsageError: if ``folder`` is not a directory or holds no image files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"data folder {folder} does not exist or is not a directory")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                   and not p.name.startswith("."))
    if not files:
        raise UsageError(f"data folder {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def split_names(names: Sequence[str], *, eval_fraction: float = EVAL_FRACTION, seed: int = SPLIT_SEED,
                ) -> tuple[list[str], list[str]]:
    """Deterministic split by image: ``(train, evaluation)`` names.

    Raises:
        UsageError: if fewer than two images are given (no split is possible).
    """
    ordered = sorted(names)
    if len(ordered) < 2:
        raise UsageError(f"need at least 2 images to hold one out for evaluation; got {len(ordered)}")
    held = max(1, min(len(ordered) - 1, round(len(ordered) * eval_fraction)))
    order = np.random.default_rng(seed).permutation(len(ordered))
    evaluation = sorted(ordered[i] for i in order[:held])
    return [n for n in ordered if n not in set(evaluation)], evaluation


def load_images(source: str | Path | None = None, *, strict: bool = False, eval_fraction: float = EVAL_FRACTION,
                split_seed: int = SPLIT_SEED) -> ImageSet:
    """Read every image of ``source`` (a folder; None = the built-in photos) and split them.

    Raises:
        UsageError: if the folder is missing or empty, or fewer than two images are readable.
        ImageError: naming the file, for a damaged file when ``strict``.
    """
    if source is None:
        from edgeir.data.photos import photo_dir

        root, files, label = photo_dir(), [photo_dir() / n for n in BUILTIN_TRAINING_PHOTOS], "builtin"
    else:
        root, label = Path(source), str(source)
        files = image_files(root)
    names = [str(f.relative_to(root)) for f in files]
    train_names, eval_names = split_names(names, eval_fraction=eval_fraction, seed=split_seed)
    images: dict[str, CleanImage] = {}
    skipped: list[tuple[str, str]] = []
    for name, path in zip(names, files, strict=True):
        try:
            images[name] = CleanImage(name, load_image(path).rgb)
        except ImageError as exc:
            if strict:
                raise
            log.warning("skipping %s: %s", path, exc)
            skipped.append((str(path), str(exc)))
    train = tuple(images[n] for n in train_names if n in images)
    evaluation = tuple(images[n] for n in eval_names if n in images)
    if not train or not evaluation:
        raise UsageError(f"data source {label}: {len(images)} readable image(s) of {len(files)} "
                         f"({len(skipped)} skipped as unreadable); need at least one for training and one "
                         "held out for evaluation")
    return ImageSet(label, train, evaluation, tuple(skipped))


def _fit(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """Reflect-pad a crop from an image smaller than the crop size."""
    from edgeir.data.photos import fit_to

    return fit_to(crop, height, width) if crop.shape[:2] != (height, width) else crop


def _to_tensor(batch: list[np.ndarray]):
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.stack(batch).transpose(0, 3, 1, 2), dtype=np.float32))


def _check_crop(crop: int, scale: int) -> None:
    if crop <= 0 or crop % scale:
        raise UsageError(f"crop size {crop} must be a positive multiple of the scale {scale}")


class TrainingPairs:
    """Endless batches of ``(degraded, clean)`` float32 NCHW tensors in [0, 1] for one task.

    ``degraded`` has ``in_channels`` channels and is ``scale`` times smaller than ``clean`` for
    super-resolution; ``clean`` is ``batch x 3 x crop x crop``. Iterating yields batch 0, 1, 2...;
    :meth:`batch` gives batch ``k`` directly (what a resumed run uses).

    Args:
        task: Task whose degradation is applied (``denoise25``, ``sr4``, ``allinone3``...).
        source: Folder of clean images; None = the built-in photos. An :class:`ImageSet` is reused.
        crop: Side of the clean crops.
        batch: Crops per batch.
        seed: Seed of crops, flips and degradations.
        in_channels: Channels the model takes (4 for inpainting with a mask channel).
        scale: The model's output/input size ratio; must match the task's (``srS`` -> S).
        strict: Raise on a damaged file instead of skipping it with a warning.
        rank: Process rank under data-parallel training; each rank draws different crops.

    Raises:
        UsageError: for an unknown task, a scale that disagrees with the task, a bad crop size or
            an unusable source.
    """

    def __init__(self, task: str, *, source: str | Path | ImageSet | None = None, crop: int = 64, batch: int = 4,
                 seed: int = 0, in_channels: int = 3, scale: int = 1, strict: bool = False, rank: int = 0) -> None:
        self.task = check_task(task)
        if task_scale(task) != scale:
            raise UsageError(f"task {task} down-scales by {task_scale(task)} but the model's scale is {scale}")
        _check_crop(crop, scale)
        if batch <= 0:
            raise UsageError(f"batch size must be positive; got {batch}")
        self.images = source if isinstance(source, ImageSet) else load_images(source, strict=strict)
        self.crop, self.batch_size, self.seed = crop, batch, seed
        self.in_channels, self.scale, self.rank = in_channels, scale, rank

    @property
    def skipped(self) -> tuple[tuple[str, str], ...]:
        """``(file, reason)`` of files left out as unreadable."""
        return self.images.skipped

    def batch(self, index: int):
        """Batch ``index`` as ``(degraded, clean)`` tensors; a pure function of the seed, rank and index."""
        rng = np.random.default_rng([self.seed, self.rank, index])
        clean, degraded = [], []
        for _ in range(self.batch_size):
            image = self.images.train[int(rng.integers(len(self.images.train)))]
            h, w = image.pixels.shape[:2]
            top, left = int(rng.integers(0, max(1, h - self.crop + 1))), int(rng.integers(0, max(1, w - self.crop + 1)))
            patch = _fit(image.crop(top, left, self.crop, self.crop), self.crop, self.crop)
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            if rng.random() < 0.5:
                patch = patch[::-1]
            patch = np.ascontiguousarray(np.rot90(patch, int(rng.integers(4))))
            clean.append(patch)
            degraded.append(degrade_image(patch, self.task, rng, self.in_channels))
        return _to_tensor(degraded), _to_tensor(clean)

    def batches(self, start: int = 0) -> Iterator:
        """Batches ``start``, ``start + 1``... without end."""
        index = start
        while True:
            yield self.batch(index)
            index += 1

    def __iter__(self) -> Iterator:
        return self.batches(0)


@dataclass(frozen=True)
class EvalPair:
    """One evaluation sample: 1xCxHxW float32 tensors and the image it was cropped from."""

    name: str
    degraded: object
    clean: object


def evaluation_pairs(task: str, *, source: str | Path | ImageSet | None = None, crop: int = 128, count: int = 6,
                     seed: int = 0, in_channels: int = 3, scale: int = 1, strict: bool = False) -> list[EvalPair]:
    """Fixed crops of the held-out images, degraded for ``task``; the same for the same arguments.

    The ``count`` crops go round the evaluation images in name order; crop ``i`` of an image is
    placed and degraded by a generator seeded with ``(seed, crc32(name), i)``.

    Raises:
        UsageError: as :class:`TrainingPairs`.
    """
    check_task(task)
    if task_scale(task) != scale:
        raise UsageError(f"task {task} down-scales by {task_scale(task)} but the model's scale is {scale}")
    _check_crop(crop, scale)
    images = source if isinstance(source, ImageSet) else load_images(source, strict=strict)
    pairs = []
    for i in range(count):
        image = images.evaluation[i % len(images.evaluation)]
        turn = i // len(images.evaluation)
        rng = np.random.default_rng([seed, zlib.crc32(image.name.encode()), turn])
        h, w = image.pixels.shape[:2]
        if turn == 0:  # the first crop of each image is its centre
            top, left = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
        else:
            top, left = int(rng.integers(0, max(1, h - crop + 1))), int(rng.integers(0, max(1, w - crop + 1)))
        clean = _fit(image.crop(top, left, crop, crop), crop, crop)
        degraded = degrade_image(clean, task, rng, in_channels)
        pairs.append(EvalPair(f"{image.name}#{turn}", _to_tensor([degraded]), _to_tensor([clean])))
    return pairs
