"""The data sets: CIFAR through torchvision on fake files, the generated set, batching."""

import pickle
import urllib.error

import pytest
import torch
import torch.nn.functional as F
import torchvision.datasets.cifar as tv_cifar
from fake_cifar import checksum_tables, write_fake_cifar10, write_fake_cifar100

import hybrid.data.synthetic as synthetic
from hybrid.data import (
    DataConfig,
    DataNotFoundError,
    augment,
    epoch_batches,
    load_splits,
    normalization_stats,
    normalize,
)
from hybrid.data.__main__ import main

SMALL = {"synthetic_train": 200, "synthetic_test": 50}


def _pixel(rows, i: int, c: int, y: int, x: int) -> int:
    """A pixel in the pickles' layout: red, green, blue 32x32 planes, row-major."""
    return int(rows[i, c * 1024 + y * 32 + x])


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    """Writes a fake CIFAR copy and points torchvision's md5 table at it.

    torchvision verifies each file against the md5 sums in the class attributes
    `train_list`, `test_list` and `meta` (those of the real files). The loading code
    under test is the real one, reading files in the real format; only that checksum
    table is adjusted to the fake files.
    """

    def write(name: str):
        cls, writer = {"cifar10": (tv_cifar.CIFAR10, write_fake_cifar10),
                       "cifar100": (tv_cifar.CIFAR100, write_fake_cifar100)}[name]
        fake = writer(tmp_path)
        for attribute, value in checksum_tables(cls, tmp_path).items():
            monkeypatch.setattr(cls, attribute, value)
        return fake

    return write


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", refuse)


def test_config_names_the_offending_key():
    with pytest.raises(ValueError, match=r"dataset\.name: input should be 'cifar10', 'cifar100', 'synthetic', 'tiny-imagenet', 'imagenette' or 'imagefolder', got 'imagenet'"):
        DataConfig(name="imagenet")
    with pytest.raises(ValueError, match=r"val_fraction"):
        DataConfig(val_fraction=1.0)


# --- CIFAR ----------------------------------------------------------------------------


def test_fake_files_read_as_the_real_ones_do(fake_cifar):
    fake = fake_cifar("cifar10")
    with open(fake.folder / "data_batch_1", "rb") as f:
        entry = pickle.load(f, encoding="bytes")  # the CIFAR page's recipe
    assert set(entry) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert entry[b"data"].shape == (20, 3072) and entry[b"data"].dtype.name == "uint8"


def test_cifar10_loads_into_uint8_nchw(fake_cifar, tmp_path):
    fake = fake_cifar("cifar10")
    splits = load_splits(DataConfig("cifar10", str(tmp_path)))
    assert splits.train_images.shape == (100, 3, 32, 32) and splits.train_images.dtype == torch.uint8
    assert splits.eval_images.shape == (20, 3, 32, 32)
    assert splits.train_labels.dtype == torch.int64 and splits.num_classes == 10
    assert splits.train_labels.tolist() == fake.train_labels.tolist()
    assert splits.eval_labels.tolist() == fake.test_labels.tolist()
    assert splits.val_images is None and splits.val_labels is None
    for i, c, y, x in [(0, 0, 0, 0), (37, 1, 5, 30), (99, 2, 31, 7)]:
        assert splits.train_images[i, c, y, x].item() == _pixel(fake.train_data, i, c, y, x)
    assert splits.eval_images[3, 2, 17, 9].item() == _pixel(fake.test_data, 3, 2, 17, 9)


def test_cifar100_loads_the_fine_labels(fake_cifar, tmp_path):
    fake = fake_cifar("cifar100")
    splits = load_splits(DataConfig("cifar100", str(tmp_path)))
    assert splits.num_classes == 100
    assert splits.train_images.shape == (40, 3, 32, 32)
    assert splits.train_labels.tolist() == fake.train_labels.tolist()
    assert splits.train_images[5, 1, 2, 3].item() == _pixel(fake.train_data, 5, 1, 2, 3)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_data_names_the_root_and_the_fetch_command(tmp_path, name):
    root = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError) as error:
        load_splits(DataConfig(name, str(root)))
    assert isinstance(error.value, FileNotFoundError)
    assert str(root) in str(error.value)
    assert f"python -m hybrid.data download {name} --root {root}" in str(error.value)


@pytest.mark.parametrize("file", ["data_batch_3", "test_batch", "batches.meta"])
def test_corrupted_file_gives_the_same_error(fake_cifar, tmp_path, file):
    fake = fake_cifar("cifar10")
    path = fake.folder / file
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataNotFoundError, match="download cifar10 --root"):
        load_splits(DataConfig("cifar10", str(tmp_path)))


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_download_with_data_present_needs_no_network(fake_cifar, no_network, tmp_path, capsys, name):
    fake_cifar(name)
    assert main(["download", name, "--root", str(tmp_path)]) == 0
    assert f"{name} ready" in capsys.readouterr().out


def test_failed_download_says_what_to_do(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    assert main(["download", "cifar10", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "cifar-10-python.tar.gz" in err and "internet" in err


# --- the synthetic data set -----------------------------------------------------------


def test_synthetic_is_a_function_of_its_seed(tmp_path):
    a = load_splits(DataConfig(root=str(tmp_path / "a"), **SMALL))
    b = load_splits(DataConfig(root=str(tmp_path / "b"), **SMALL))
    c = load_splits(DataConfig(root=str(tmp_path / "c"), synthetic_seed=1, **SMALL))
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.eval_labels, b.eval_labels)
    assert not torch.equal(a.train_images, c.train_images)
    assert a.train_images.shape == (200, 3, 32, 32) and a.train_images.dtype == torch.uint8
    assert a.eval_images.shape == (50, 3, 32, 32) and a.num_classes == 10
    # The training set does not depend on the test size.
    d = load_splits(DataConfig(root=str(tmp_path / "a"), synthetic_train=200, synthetic_test=70))
    assert torch.equal(a.train_images, d.train_images)


def test_synthetic_classes_are_balanced():
    _, train_labels, _, test_labels = synthetic.generate_synthetic(500, 100, seed=3)
    assert torch.bincount(train_labels).tolist() == [50] * 10
    assert torch.bincount(test_labels).tolist() == [10] * 10


def test_synthetic_is_cached_and_reused(tmp_path, monkeypatch):
    calls = []
    generate = synthetic.generate_synthetic
    monkeypatch.setattr(synthetic, "generate_synthetic", lambda *a: calls.append(a) or generate(*a))
    config = DataConfig(root=str(tmp_path), **SMALL)
    first = load_splits(config)
    (cache,) = (tmp_path / "synthetic").iterdir()
    stamp = cache.stat().st_mtime_ns
    second = load_splits(config)
    assert len(calls) == 1 and cache.stat().st_mtime_ns == stamp
    assert torch.equal(first.train_images, second.train_images)
    assert [p.name for p in (tmp_path / "synthetic").iterdir()] == [cache.name]  # no temp file left

    cache.write_bytes(b"truncated")  # a broken cache is generated again
    assert torch.equal(load_splits(config).train_images, first.train_images) and len(calls) == 2


def test_download_synthetic_fills_the_cache(tmp_path, capsys):
    argv = ["download", "synthetic", "--root", str(tmp_path), "--synthetic-train", "100", "--synthetic-test", "20"]
    assert main(argv) == 0
    assert len(list((tmp_path / "synthetic").glob("*.pt"))) == 1
    assert "synthetic ready" in capsys.readouterr().out


def test_synthetic_is_learnable_from_spectral_magnitudes():
    # A cheap proxy of learnability: a logistic regression on the log magnitudes of the
    # grey images' spectra (translation invariant) is far above chance (10%); measured 40%.
    train_x, train_y, test_x, test_y = synthetic.generate_synthetic(1000, 500, seed=0)

    def features(x):
        grey = x.float().mean(1)
        return torch.log1p(torch.fft.rfft2(grey - grey.mean((1, 2), keepdim=True)).abs()).flatten(1)

    a, b = features(train_x), features(test_x)
    mean, std = a.mean(0), a.std(0) + 1e-6
    a, b = (a - mean) / std, (b - mean) / std
    w = torch.zeros(a.shape[1], 10, requires_grad=True)
    bias = torch.zeros(10, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, bias], max_iter=50, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(a @ w + bias, train_y) + 0.1 * (w**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    accuracy = ((b @ w + bias).argmax(1) == test_y).float().mean().item()
    assert accuracy > 0.25


# --- splits and statistics ------------------------------------------------------------


def test_validation_split_is_disjoint_stratified_and_fixed(tmp_path):
    whole = load_splits(DataConfig(root=str(tmp_path), **SMALL))
    config = DataConfig(root=str(tmp_path), val_fraction=0.2, **SMALL)
    split, again = load_splits(config), load_splits(config)
    assert len(split.val_labels) == 40 and len(split.train_labels) == 160
    assert torch.bincount(split.val_labels).tolist() == [4] * 10
    assert torch.equal(split.val_images, again.val_images)
    key = lambda images: {bytes(im.flatten().tolist()) for im in images}  # noqa: E731
    train, val = key(split.train_images), key(split.val_images)
    assert not train & val and train | val == key(whole.train_images)


def test_mean_and_std_are_those_of_the_training_images(tmp_path):
    splits = load_splits(DataConfig(root=str(tmp_path), val_fraction=0.5, **SMALL))
    pixels = splits.train_images.double() / 255
    assert splits.mean.dtype == torch.float32 and splits.mean.shape == (3,)
    torch.testing.assert_close(splits.mean.double(), pixels.mean((0, 2, 3)), rtol=0, atol=1e-6)
    torch.testing.assert_close(splits.std.double(), pixels.std((0, 2, 3), unbiased=False), rtol=0, atol=1e-6)
    x = normalize(splits.train_images, splits.mean, splits.std)
    assert x.dtype == torch.float32
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.zeros(3), rtol=0, atol=1e-4)
    torch.testing.assert_close(x.std((0, 2, 3), unbiased=False), torch.ones(3), rtol=0, atol=1e-4)


def test_the_recipes_normalisations(tmp_path):
    splits = load_splits(DataConfig(root=str(tmp_path), **SMALL))
    assert normalization_stats("dataset", splits) == (splits.mean, splits.std)
    mean, std = normalization_stats("cifar-fixed", splits)  # the official HEAD's convert()
    assert mean.tolist() == pytest.approx([0.4914, 0.4822, 0.4465]) and std.tolist() == pytest.approx([0.2023, 0.1994, 0.2010])
    white = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    torch.testing.assert_close(normalize(white, *normalization_stats("unit", splits)), torch.ones(1, 3, 2, 2))
    with pytest.raises(ValueError, match="train.normalization: unknown 'imagenet'"):
        normalization_stats("imagenet", splits)


# --- batching and augmentation --------------------------------------------------------


def _images(n: int = 64, seed: int = 0) -> torch.Tensor:
    # No zero pixel, so that zeros in an output can only be padding.
    return torch.randint(1, 256, (n, 3, 32, 32), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_epoch_batches_cover_every_index_once():
    batches = epoch_batches(103, 10, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [10] * 10 + [3]
    assert sorted(torch.cat(batches).tolist()) == list(range(103))
    assert torch.cat(batches).tolist() != list(range(103))
    assert [len(b) for b in epoch_batches(103, 10, torch.Generator(), drop_last=True)] == [10] * 10
    in_order = epoch_batches(25, 10, torch.Generator(), shuffle=False)
    assert torch.cat(in_order).tolist() == list(range(25))


def test_an_epoch_replays_exactly_from_its_seed():
    images = _images()

    def epoch(seed):
        g = torch.Generator().manual_seed(seed)
        return [(i, augment(images[i], padding=4, flip=True, generator=g)) for i in epoch_batches(64, 16, g)]

    first, replay, other = epoch(7), epoch(7), epoch(8)
    assert all(torch.equal(i, j) and torch.equal(x, y) for (i, x), (j, y) in zip(first, replay))
    assert not torch.equal(torch.cat([i for i, _ in first]), torch.cat([i for i, _ in other]))


def test_augment_without_crop_or_flip_is_the_identity():
    images = _images()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augment(images, padding=0, flip=False, generator=g), images)
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(0).get_state())  # nothing drawn


def test_flips_flip_about_half_of_the_images():
    images = _images(400)
    out = augment(images, padding=0, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    flipped = (out == images.flip(-1)).flatten(1).all(1)
    kept = (out == images).flatten(1).all(1)
    assert (flipped ^ kept).all()
    assert 150 < flipped.sum() < 250


def test_crops_stay_within_the_padding():
    images = _images(200)
    padding = 4
    out = augment(images, padding=padding, flip=False, generator=torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = F.pad(images, (padding,) * 4)
    windows = padded.unfold(2, 32, 1).unfold(3, 32, 1)  # (n, 3, 9, 9, 32, 32): every offset
    matches = (windows == out[:, :, None, None]).all(-1).all(-1).all(1)  # (n, 9, 9)
    assert matches.flatten(1).sum(1).tolist() == [1] * len(images)  # exactly one offset each
    offsets = matches.flatten(1).float().argmax(1)
    rows, cols = offsets // 9, offsets % 9
    assert {rows.min().item(), rows.max().item(), cols.min().item(), cols.max().item()} == {0, 2 * padding}


def test_augment_keeps_float_images():
    images = _images(8).float()
    out = augment(images, padding=2, flip=True, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == images.shape
