"""hybrid.data.feeding: the two feeding modes give the same batches; the crop transforms."""

from __future__ import annotations

import gc
import math
import os
import threading
import time

import numpy as np
import pytest
import torch
from numpy.lib.format import open_memmap
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms.v2 import functional as TF

from hybrid.data import epoch_batches
from hybrid.data.feeding import (
    CROP_TRIES,
    DeviceFeeder,
    StreamFeeder,
    center_crop_resize,
    choose_feeding,
    random_resized_crop,
    resample_boxes,
    resized_crop_boxes,
)


@pytest.fixture()
def packed(tmp_path):
    """A packed set on disk, opened as training opens it: (images memmap, labels memmap)."""
    n, side = 203, 12
    rng = np.random.default_rng(0)
    images = open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.uint8, shape=(n, 3, side, side))
    images[:] = rng.integers(0, 256, size=images.shape, dtype=np.uint8)
    labels = open_memmap(tmp_path / "labels.npy", mode="w+", dtype=np.int64, shape=(n,))
    labels[:] = rng.integers(0, 1000, size=n)
    images.flush(), labels.flush()
    del images, labels
    return np.load(tmp_path / "images.npy", mmap_mode="r"), np.load(tmp_path / "labels.npy", mmap_mode="r")


def _device_feeder(images, labels):
    return DeviceFeeder(torch.from_numpy(np.array(images)), torch.from_numpy(np.array(labels)))


def _producer_threads():
    return [t for t in threading.enumerate() if t.name == "StreamFeeder"]


def _wait_for_no_producer(seconds=5.0):
    deadline = time.monotonic() + seconds
    while _producer_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return _producer_threads()


@pytest.mark.parametrize("prefetch", [1, 3])
def test_streamed_batches_equal_device_resident_ones(packed, prefetch):
    images, labels = packed
    device_feeder = _device_feeder(images, labels)
    stream_feeder = StreamFeeder(images, labels, "cpu", prefetch=prefetch)
    assert len(stream_feeder) == len(device_feeder) == 203
    assert stream_feeder.image_shape == device_feeder.image_shape == (3, 12, 12)
    assert stream_feeder.nbytes == device_feeder.nbytes == 203 * 3 * 12 * 12 + 203 * 8
    for epoch in range(3):  # 203 = 6 x 32 + a last batch of 11
        index = epoch_batches(len(images), 32, torch.Generator().manual_seed(100 + epoch))
        assert len(index[-1]) == 11
        streamed = list(stream_feeder.batches(index))
        resident = list(device_feeder.batches(index))
        assert len(streamed) == len(resident) == len(index)
        for (xs, ys), (xd, yd), idx in zip(streamed, resident, index):
            assert xs.dtype == torch.uint8 and ys.dtype == torch.int64 and xs.shape == (len(idx), 3, 12, 12)
            assert torch.equal(xs, xd) and torch.equal(ys, yd)
            assert torch.equal(xs, torch.from_numpy(np.array(images))[idx])  # in the index's order
    assert not _wait_for_no_producer()


def test_batches_keep_their_order_with_repeated_and_unsorted_indices(packed):
    images, labels = packed
    index = [torch.tensor([5, 3, 5, 200, 0, 3]), torch.tensor([7]), torch.tensor([202, 1])]
    streamed = list(StreamFeeder(images, labels, "cpu").batches(index))
    for (x, y), idx in zip(streamed, index):
        assert torch.equal(x, torch.from_numpy(np.array(images[idx.numpy()])))
        assert torch.equal(y, torch.from_numpy(np.array(labels[idx.numpy()])))
    assert list(StreamFeeder(images, labels, "cpu").batches([])) == []


def test_early_break_stops_the_thread(packed):
    images, labels = packed
    index = epoch_batches(len(images), 8, torch.Generator().manual_seed(0))  # 26 batches
    feeder = StreamFeeder(images, labels, "cpu", prefetch=2)
    for k, _ in enumerate(feeder.batches(index)):
        if k == 2:
            break
    assert not _wait_for_no_producer()

    iterator = feeder.batches(index)
    next(iterator)
    del iterator  # dropped mid-epoch: garbage collection closes it
    gc.collect()
    assert not _wait_for_no_producer()


def test_an_exception_in_a_gather_reaches_the_consumer_at_its_batch(packed):
    images, labels = packed
    index = [torch.arange(0, 10), torch.arange(10, 20), torch.tensor([1, len(images) + 5]), torch.arange(3)]
    received = []
    with pytest.raises(IndexError):
        for x, _ in StreamFeeder(images, labels, "cpu", prefetch=1).batches(index):
            received.append(x)
    assert len(received) == 2 and torch.equal(received[1], torch.from_numpy(np.array(images[10:20])))
    assert not _wait_for_no_producer()


def test_feeders_reject_malformed_sets(packed):
    images, labels = packed
    with pytest.raises(ValueError, match="labels must have shape"):
        StreamFeeder(images, labels[:-1], "cpu")
    with pytest.raises(ValueError, match="uint8"):
        DeviceFeeder(torch.zeros(4, 3, 8, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="prefetch"):
        StreamFeeder(images, labels, "cpu", prefetch=0)


def test_choose_feeding_rules():
    mode, reason = choose_feeding(2 * 10**9, "cpu", None)
    assert mode == "device" and "of the host's" in reason
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert choose_feeding(int(0.6 * host), "cpu", None)[0] == "stream"  # not read whole into RAM
    assert choose_feeding(2 * 10**9, "cpu", 1.0)[0] == "stream"
    assert choose_feeding(10**9, "cpu", 1.0)[0] == "device"  # at the budget: fits
    assert choose_feeding(1, "cpu", 0)[0] == "stream"
    mode, reason = choose_feeding(3 * 10**9, "cuda", 2.5)  # a given budget asks nothing of the device
    assert mode == "stream" and "3.00 GB exceed the given budget of 2.5 GB" in reason and "\n" not in reason
    with pytest.raises(ValueError, match="budget"):
        choose_feeding(1, "cpu", -1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_choose_feeding_default_cuda_budget_and_streamed_cuda_batches(packed):
    total = torch.cuda.get_device_properties(0).total_memory
    assert choose_feeding(int(0.2 * total), "cuda", None)[0] == "device"
    assert choose_feeding(int(0.3 * total), "cuda", None)[0] == "stream"
    images, labels = packed
    index = epoch_batches(len(images), 32, torch.Generator().manual_seed(1), device="cuda")
    resident = DeviceFeeder(torch.from_numpy(np.array(images)).cuda(), torch.from_numpy(np.array(labels)).cuda())
    for pin in (True, False):
        streamed = StreamFeeder(images, labels, "cuda", prefetch=1, pin_memory=pin)
        for (xs, ys), (xd, yd) in zip(streamed.batches(index), resident.batches(index), strict=True):
            assert xs.is_cuda and torch.equal(xs, xd) and torch.equal(ys, yd)


# --- augmentation ---------------------------------------------------------------------


def _images(n=6, side=57, seed=0):
    return torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_random_resized_crop_is_deterministic_and_in_range():
    images = _images()
    first = random_resized_crop(images, 49, torch.Generator().manual_seed(3))
    again = random_resized_crop(images, 49, torch.Generator().manual_seed(3))
    other = random_resized_crop(images, 49, torch.Generator().manual_seed(4))
    assert first.shape == (6, 3, 49, 49) and first.dtype == torch.float32
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.min() >= 0 and first.max() <= 255


def _torchvision_boxes(area_u, ratio_u, offset_u, height, width, scale, ratio):
    """torchvision's get_params loop, fed the draws resized_crop_boxes documents."""
    boxes = []
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    for a_row, r_row, (u, v) in zip(area_u.tolist(), ratio_u.tolist(), offset_u.tolist()):
        for a, r in zip(a_row, r_row):
            target = height * width * (scale[0] + (scale[1] - scale[0]) * a)
            aspect = math.exp(lo + (hi - lo) * r)
            w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                boxes.append((int(u * (height - h + 1)), int(v * (width - w + 1)), h, w))
                break
        else:
            boxes.append(((height - height) // 2, (width - width) // 2, height, width))
    return torch.tensor(boxes)


@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.9, 1.6)])  # the second hits the fallback
def test_boxes_follow_torchvision_rules_for_the_documented_draws(scale):
    n, height, width, ratio = 500, 40, 40, (3 / 4, 4 / 3)
    boxes = resized_crop_boxes(n, height, width, torch.Generator().manual_seed(5), scale=scale, ratio=ratio)
    g = torch.Generator().manual_seed(5)
    draws = [torch.rand(n, CROP_TRIES, generator=g, dtype=torch.float64) for _ in range(2)]
    offsets = torch.rand(n, 2, generator=g, dtype=torch.float64)
    assert torch.equal(boxes, _torchvision_boxes(*draws, offsets, height, width, scale, ratio))
    top, left, h, w = boxes.T
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= height).all() and (left + w <= width).all()


def test_box_statistics_match_torchvision():
    height = width = 224
    boxes = resized_crop_boxes(20000, height, width, torch.Generator().manual_seed(0)).double()
    area = boxes[:, 2] * boxes[:, 3] / (height * width)
    log_ratio = torch.log(boxes[:, 3] / boxes[:, 2])
    torch.manual_seed(0)
    reference = torch.tensor([RandomResizedCrop.get_params(torch.empty(3, height, width), [0.08, 1.0], [3 / 4, 4 / 3])
                              for _ in range(4000)]).double()
    ref_area = reference[:, 2] * reference[:, 3] / (height * width)
    ref_log_ratio = torch.log(reference[:, 3] / reference[:, 2])
    assert abs(area.mean() - ref_area.mean()) < 0.015 and abs(area.std() - ref_area.std()) < 0.015
    assert abs(log_ratio.mean()) < 0.01 and abs(log_ratio.std() - ref_log_ratio.std()) < 0.01
    assert area.min() > 0.075 and area.max() <= 1
    assert log_ratio.abs().max() < math.log(4 / 3) + 0.02  # past the bound by rounding only


def test_a_whole_image_crop_without_flip_returns_the_input():
    images = _images()
    out = random_resized_crop(images, 57, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=False)
    assert (out - images.float()).abs().max() < 5e-3  # float32 grid coordinates: measured 1.9e-3
    flipped = random_resized_crop(images, 57, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    for k in range(len(images)):  # each image either as is or mirrored
        as_is, mirrored = ((flipped[k] - x).abs().max() < 5e-3 for x in (images[k].float(), images[k].float().flip(-1)))
        assert as_is or mirrored


@pytest.mark.parametrize("box", [(3, 5, 40, 30), (0, 0, 57, 57), (10, 2, 20, 47), (1, 1, 7, 9)])
@pytest.mark.parametrize("size", [13, 49, 64])
def test_resize_of_a_box_matches_torchvision(box, size):
    images = _images(n=2)
    out = resample_boxes(images, torch.tensor([box, box], dtype=torch.float64), size)
    reference = TF.resized_crop(images.float(), *box, [size, size], antialias=False)
    assert (out - reference).abs().max() < 2e-3  # measured up to 1.5e-3 (float32 grid), in 0..255 units
    mirrored = resample_boxes(images, torch.tensor([box, box], dtype=torch.float64), size, torch.tensor([True, False]))
    assert torch.equal(mirrored[0], out[0].flip(-1)) and torch.equal(mirrored[1], out[1])


def test_center_crop_resize():
    images = _images(n=3, side=64)
    out = center_crop_resize(images, 56)
    assert torch.equal(out, images[:, :, 4:60, 4:60].float())  # 0.875 x 64 = 56: the exact centre crop
    odd = center_crop_resize(_images(n=3), 49)
    assert odd.shape == (3, 3, 49, 49) and torch.equal(odd, center_crop_resize(_images(n=3), 49))
    assert odd.min() >= 0 and odd.max() <= 255
    with pytest.raises(ValueError, match="crop_fraction"):
        center_crop_resize(images, 56, crop_fraction=0)


def test_random_resized_crop_on_odd_sizes_and_generator_on_another_device():
    images = _images(n=4, side=57)
    out = random_resized_crop(images, 49, torch.Generator(device="cpu").manual_seed(1))
    assert out.shape == (4, 3, 49, 49)
    if torch.cuda.is_available():  # a CPU generator with images on CUDA: the same crops
        on_cuda = random_resized_crop(images.cuda(), 49, torch.Generator().manual_seed(1))
        assert (on_cuda.cpu() - out).abs().max() < 1e-3
