"""Feeding packed image sets to training: whole on the device, or streamed from a memory map.

A packed set is uint8 images (N, 3, S, S), channels first, and int64 labels (N,), in `.npy`
files opened with `numpy.load(path, mmap_mode="r")`. `choose_feeding` picks one of two modes
from the set's size and a memory budget:

- "device": `DeviceFeeder` holds both tensors whole on the training device, and a batch is
  one gather there (as `hybrid.data` does for CIFAR).
- "stream": `StreamFeeder` leaves the images in the memory-mapped file. A background thread
  gathers each index batch's rows (in sorted order, then back in the batch's order) into
  pinned host buffers and, on CUDA, copies them to the device on a side stream while the
  training step works on the batch before.

The guarantee: for the same list of index batches (say `hybrid.data.epoch_batches` from a
generator seeded from (run seed, epoch)), both feeders yield the same uint8 images and int64
labels, bit for bit, in the same order, so a run resumed at an epoch boundary ends where an
uninterrupted one does in either mode, and a run may switch modes between epochs. Its
conditions: the arrays hold the same values (the device tensors are the file's contents),
the index batches are the same integers, and what the caller does with a batch is itself
deterministic. Nothing here draws a random number: the order is the caller's.

`random_resized_crop` and `center_crop_resize` are the ImageNet-style training and
evaluation transforms for such sets, batched on the device; every random draw comes from
the `torch.Generator` passed in, as in `hybrid.data.augment`.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

# With no budget given on CUDA, a data set lives on the device when it takes at most this
# share of the device's memory: the rest is for the weights, optimizer state, activations
# (a ResNet-50 at batch 256 in bf16 needs tens of GB) and the caching allocator's slack.
DEFAULT_CUDA_SHARE = 0.25
# The same on the CPU, of the host's physical memory: the training process needs the rest.
DEFAULT_HOST_SHARE = 0.5
# RandomResizedCrop's candidate boxes per image before its centre-crop fallback (torchvision).
CROP_TRIES = 10

Batch = tuple[torch.Tensor, torch.Tensor]


# --- the choice -------------------------------------------------------------------------


def choose_feeding(nbytes: int, device: torch.device | str, budget_gb: float | None) -> tuple[str, str]:
    """("device" or "stream", a one-line reason for result.json) for a set of `nbytes`.

    The rules: a set goes on the device when `nbytes` is at most the budget, else it is
    streamed. `budget_gb` is in GB of 10^9 bytes; 0 always streams. With `budget_gb` None,
    on CUDA the budget is DEFAULT_CUDA_SHARE of the device's total memory (the rest is the
    training's own); on the CPU it is DEFAULT_HOST_SHARE of the host's physical memory: a
    set "on the device" there is read whole into RAM, while a streamed one is gathered from
    the memory map batch by batch (ImageNet packed at 256 px is 250 GB).
    """
    device = torch.device(device)
    if nbytes < 0:
        raise ValueError(f"choose_feeding: nbytes must be >= 0, got {nbytes}")
    if budget_gb is not None and budget_gb < 0:
        raise ValueError(f"choose_feeding: the feeding budget must be >= 0 GB (0 streams always), got {budget_gb}")
    size = f"{nbytes / 1e9:.2f} GB"
    if budget_gb is not None:
        budget, source = budget_gb * 1e9, f"the given budget of {budget_gb:g} GB"
    elif device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        budget = DEFAULT_CUDA_SHARE * total
        source = (f"the default budget of {budget / 1e9:.2f} GB ({DEFAULT_CUDA_SHARE:.0%} of {device}'s "
                  f"{total / 1e9:.1f} GB, the rest left to the model and its activations)")
    else:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        budget = DEFAULT_HOST_SHARE * total
        source = (f"the default budget of {budget / 1e9:.2f} GB ({DEFAULT_HOST_SHARE:.0%} of the host's "
                  f"{total / 1e9:.1f} GB of memory)")
    if nbytes <= budget:
        return "device", f"{size} fit {source} on {device}"
    return "stream", f"{size} exceed {source} on {device}: streamed from the memory-mapped file"


# --- the feeders ------------------------------------------------------------------------


class _Feeder:
    """What both feeders say of their set: `images` (N, 3, S, S) and `labels` (N,)."""

    images: torch.Tensor | np.ndarray
    labels: torch.Tensor | np.ndarray

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    @property
    def nbytes(self) -> int:
        return self.images.nbytes + self.labels.nbytes


class DeviceFeeder(_Feeder):
    """A packed set held whole on its device: each batch is one gather there."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        _check_set(images.shape, images.dtype == torch.uint8, tuple(labels.shape), "DeviceFeeder")
        if labels.device != images.device:
            raise ValueError(f"DeviceFeeder: images on {images.device} but labels on {labels.device}; move both")
        self.images, self.labels = images, labels.long()

    def batches(self, index_batches: Sequence[torch.Tensor]) -> Iterator[Batch]:
        """(uint8 images (b, 3, S, S), int64 labels (b,)) on the device, one per index batch, in order."""
        for index in index_batches:
            index = index.to(self.images.device, non_blocking=True)  # the training loop's are there already
            yield self.images[index], self.labels[index]


class StreamFeeder(_Feeder):
    """A packed set left in host memory (a memory map, usually), streamed to `device`.

    A background thread gathers each index batch's rows: numpy takes them from the memory
    map in ascending order (sequential reads, which the page cache and read-ahead reward),
    then puts them back in the batch's order. On CUDA with `pin_memory` (the default there)
    it gathers into a ring of `prefetch + 1` page-locked buffers and copies each to the
    device with non_blocking=True on a side stream; an event per batch marks its copy's end,
    and the thread waits on a buffer's latest one before it gathers into it again, so a buffer is never
    overwritten while its copy is in flight. The consumer's stream waits on the copy's event,
    and the batch's tensors are recorded on the consumer's stream, so the caching allocator
    does not hand their memory to the side stream while the consumer still uses them. At most
    `prefetch` batches wait ready ahead of the consumer.

    On the CPU (or with pin_memory=False) there are no pinned buffers and no streams: each
    batch is a fresh array, gathered by the thread. The values and the order are the same in
    every case, and the same as `DeviceFeeder`'s for the same arrays.

    An exception in the thread (an index out of range, an unreadable file) is raised in the
    consumer at the batch where it happened. A consumer that stops early (break, close(), or
    dropping the iterator) stops the thread: it is told to stop, the queue is drained, and
    it is joined before the iterator's close returns.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, device: torch.device | str, *,
                 prefetch: int = 2, pin_memory: bool | None = None):
        _check_set(images.shape, images.dtype == np.uint8, np.shape(labels), "StreamFeeder")
        if prefetch < 1:
            raise ValueError(f"StreamFeeder: prefetch must be >= 1 batch, got {prefetch}")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)  # 8 bytes an image: held in memory
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.prefetch = prefetch
        self.pin_memory = self.device.type == "cuda" if pin_memory is None else pin_memory

    def gather(self, index: np.ndarray, images_out: np.ndarray | None = None,
               labels_out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The rows of `index`, in its order: read in ascending order, then un-permuted
        (into `images_out`/`labels_out` when given)."""
        order = np.argsort(index, kind="stable")
        rows = np.take(self.images, index[order], axis=0)  # ascending reads from the map
        if images_out is None:
            images_out = np.empty_like(rows)
        images_out[order] = rows  # row order[k] of the batch is the k-th smallest index
        return images_out, np.take(self.labels, index, axis=0, out=labels_out)

    def batches(self, index_batches: Sequence[torch.Tensor]) -> Iterator[Batch]:
        """(uint8 images (b, 3, S, S), int64 labels (b,)) on the device, one per index batch, in order."""
        sizes = [len(index) for index in index_batches]
        if not sizes:
            return
        flat = torch.cat([index.reshape(-1) for index in index_batches]).to("cpu", torch.int64).numpy()
        indices = np.split(flat, np.cumsum(sizes)[:-1])  # one host sync for batches on a device
        ready: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        produce = self._produce_pinned if self.device.type == "cuda" and self.pin_memory else self._produce
        thread = threading.Thread(target=_run_producer, args=(produce, indices, ready, stop),
                                  name="StreamFeeder", daemon=True)
        thread.start()
        try:
            for _ in indices:
                kind, item = ready.get()
                if kind == "error":
                    raise item
                yield self._handover(item)
        finally:
            stop.set()
            while thread.is_alive():  # unblock a thread waiting to put, then wait for it
                try:
                    ready.get(timeout=0.05)
                except queue.Empty:
                    pass
            thread.join()

    def _produce(self, indices: list[np.ndarray], put) -> None:
        """Host arrays, a fresh pair per batch (the CPU, or CUDA without pinning)."""
        for index in indices:
            images, labels = self.gather(index)
            batch = torch.from_numpy(images), torch.from_numpy(labels)
            if self.device.type != "cpu":  # pageable memory: the copy is synchronous anyway
                batch = tuple(t.to(self.device) for t in batch)
            if not put((batch, None)):
                return

    def _produce_pinned(self, indices: list[np.ndarray], put) -> None:
        """Pinned ring buffers, copied on a side stream; the CUDA path."""
        largest = max(len(index) for index in indices)
        slots = [(torch.empty((largest, *self.image_shape), dtype=torch.uint8, pin_memory=True),
                  torch.empty(largest, dtype=torch.int64, pin_memory=True)) for _ in range(self.prefetch + 1)]
        last_copy: list[torch.cuda.Event | None] = [None] * len(slots)  # per buffer, its latest copy's end
        with torch.cuda.device(self.device):
            side = torch.cuda.Stream(self.device)
            try:
                with torch.cuda.stream(side):
                    for k, index in enumerate(indices):
                        slot = k % len(slots)
                        host_images, host_labels = slots[slot]
                        if last_copy[slot] is not None:
                            last_copy[slot].synchronize()  # the buffer's previous copy has landed
                        b = len(index)
                        self.gather(index, host_images[:b].numpy(), host_labels[:b].numpy())
                        images = host_images[:b].to(self.device, non_blocking=True)
                        labels = host_labels[:b].to(self.device, non_blocking=True)
                        copied = last_copy[slot] = torch.cuda.Event()  # one event per batch
                        copied.record(side)
                        if not put(((images, labels), copied)):
                            return
            finally:
                side.synchronize()  # no copy from a buffer outlives the buffers

    def _handover(self, item) -> Batch:
        (images, labels), copied = item
        if copied is not None:  # the consumer's stream waits for the copy, then owns the tensors
            consumer = torch.cuda.current_stream(self.device)
            consumer.wait_event(copied)
            images.record_stream(consumer)
            labels.record_stream(consumer)
        return images, labels


def _run_producer(produce, indices, ready: queue.Queue, stop: threading.Event) -> None:
    def put(item) -> bool:
        """Queue `item` for the consumer; False once the consumer has stopped."""
        while not stop.is_set():
            try:
                ready.put(("batch", item), timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    try:
        produce(indices, put)
    except BaseException as error:  # noqa: BLE001 -- raised again in the consumer, at this batch
        if not stop.is_set():
            ready.put(("error", error))


def _check_set(image_shape, is_uint8: bool, label_shape, who: str) -> None:
    if len(image_shape) != 4 or image_shape[1] != 3 or not is_uint8:
        raise ValueError(f"{who}: images must be uint8 (N, 3, S, S), channels first, got shape {tuple(image_shape)}")
    if tuple(label_shape) != (image_shape[0],):
        raise ValueError(f"{who}: labels must have shape ({image_shape[0]},), one per image, got {tuple(label_shape)}")


# --- augmentation for larger images -----------------------------------------------------


def resized_crop_boxes(n: int, height: int, width: int, generator: torch.Generator, *,
                       scale: tuple[float, float] = (0.08, 1.0),
                       ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """int64 (n, 4) boxes (top, left, box height, box width): torchvision's
    RandomResizedCrop.get_params, for n images at once, on the generator's device.

    Per image, CROP_TRIES candidates: area fraction uniform in `scale`, aspect ratio
    (width / height) log-uniform in `ratio`, w = round(sqrt(area * ratio)), h =
    round(sqrt(area / ratio)) (round half to even, as Python's round); the first with
    0 < w <= width and 0 < h <= height is taken, at top = floor(u * (height - h + 1)) and
    left = floor(v * (width - w + 1)). With none valid, torchvision's fallback: the whole
    image when its aspect ratio lies within `ratio`, else the centred crop of the nearest
    allowed ratio. The draws, all float64, always all of them: u_area (n, 10), then
    u_ratio (n, 10), then the offsets (n, 2) as (u, v).
    """
    if not (0 < scale[0] <= scale[1]) or not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"random_resized_crop: need 0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1], "
                         f"got scale={scale}, ratio={ratio}")
    dev, f64 = generator.device, torch.float64
    area = height * width * (scale[0] + (scale[1] - scale[0]) * torch.rand(n, CROP_TRIES, generator=generator, device=dev, dtype=f64))
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, CROP_TRIES, generator=generator, device=dev, dtype=f64))
    offsets = torch.rand(n, 2, generator=generator, device=dev, dtype=f64)
    w = torch.round(torch.sqrt(area * aspect)).long()
    h = torch.round(torch.sqrt(area / aspect)).long()
    valid = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = valid.long().argmax(1, keepdim=True)  # the first valid try (0 when none is)
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]

    in_ratio = width / height
    if in_ratio < ratio[0]:
        fallback_h, fallback_w = round(width / ratio[0]), width
    elif in_ratio > ratio[1]:
        fallback_h, fallback_w = height, round(height * ratio[1])
    else:
        fallback_h, fallback_w = height, width
    any_valid = valid.any(1)
    h = torch.where(any_valid, h, fallback_h)
    w = torch.where(any_valid, w, fallback_w)
    top = torch.where(any_valid, (offsets[:, 0] * (height - h + 1)).long().clamp(max=height - h), (height - h) // 2)
    left = torch.where(any_valid, (offsets[:, 1] * (width - w + 1)).long().clamp(max=width - w), (width - w) // 2)
    return torch.stack([top, left, h, w], 1)


def random_resized_crop(images: torch.Tensor, size: int, generator: torch.Generator, *,
                        scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        flip: bool = True) -> torch.Tensor:
    """float32 (n, 3, size, size) in 0..255 units: torchvision's RandomResizedCrop(size,
    scale, ratio, antialias=False) then RandomHorizontalFlip, per image, in one grid_sample.

    The boxes are `resized_crop_boxes`'s (its draws first), then the flips: rand(n) < 0.5
    (not drawn when flip=False); every draw from `generator`, on its device, then moved to
    the images'. The resize is bilinear without antialiasing, as torchvision's with
    antialias=False: fine for the shrink factors of packed sets near the training size,
    aliased when a box is over twice `size`.
    """
    n, _, height, width = images.shape
    boxes = resized_crop_boxes(n, height, width, generator, scale=scale, ratio=ratio)
    flips = torch.rand(n, generator=generator, device=generator.device) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    boxes, flips = boxes.to(images.device, torch.float64), flips.to(images.device)
    return resample_boxes(images, boxes, size, flips)


def center_crop_resize(images: torch.Tensor, size: int, *, crop_fraction: float = 0.875) -> torch.Tensor:
    """float32 (n, 3, size, size) in 0..255 units: the central `crop_fraction` of each
    (square) image, resized bilinearly to `size`: the ImageNet evaluation transform (resize
    to size / crop_fraction, then centre crop size) on packed images, deterministic.

    The box is continuous, of side crop_fraction * S, centred: when that side is a whole
    number with the margins whole too (64 * 0.875 = 56, margin 4) the result is the exact
    centre crop; otherwise bilinear samples at the box's size-by-size pixel centres, no
    antialiasing.
    """
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"center_crop_resize: crop_fraction must be in (0, 1], got {crop_fraction}")
    n, _, height, width = images.shape
    side_h, side_w = crop_fraction * height, crop_fraction * width
    box = torch.tensor([(height - side_h) / 2, (width - side_w) / 2, side_h, side_w], dtype=torch.float64)
    return resample_boxes(images, box.to(images.device).expand(n, 4), size)


def resample_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int,
                   flips: torch.Tensor | None = None) -> torch.Tensor:
    """float32 (n, 3, size, size): box k = (top, left, height, width) of image k (float64 on
    the images' device) resized bilinearly, one grid_sample for the batch.

    Output pixel x samples the source at left + (x + 0.5) * width / size - 0.5, clamped to
    [left, left + width - 1] (the same for rows), which is what torch's bilinear interpolate
    (align_corners=False, no antialias) does on the box cropped out, so samples never read
    outside the box. A flipped image's columns are taken in reverse.
    """
    n, _, height, width = images.shape
    steps = (torch.arange(size, device=images.device, dtype=torch.float64) + 0.5) / size

    def coords(start, extent, full):  # (n, size) normalized grid coordinates
        pixel = start[:, None] + steps * extent[:, None] - 0.5
        pixel = torch.minimum(torch.maximum(pixel, start[:, None]), (start + extent - 1)[:, None])
        return (2 * pixel + 1) / full - 1

    rows = coords(boxes[:, 0], boxes[:, 2], height)
    cols = coords(boxes[:, 1], boxes[:, 3], width)
    if flips is not None:
        cols = torch.where(flips[:, None], cols.flip(1), cols)
    grid = torch.stack([cols[:, None, :].expand(n, size, size), rows[:, :, None].expand(n, size, size)], -1)
    return F.grid_sample(images.float(), grid.float(), mode="bilinear", padding_mode="border", align_corners=False)
