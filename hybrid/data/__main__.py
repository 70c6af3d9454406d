"""Data sets fetched, checked and packed, once, where there is internet (a login node).

    python -m hybrid.data download NAME --root DIR   # CIFAR, Tiny-ImageNet, Imagenette, the generated set
    python -m hybrid.data pack NAME --root DIR        # an image-folder data set into arrays
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hybrid.data.config import DATASETS, IMAGENETTE_SIZES, PACKED, DataConfig
from hybrid.data.splits import load_splits, packed_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybrid.data", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    download = commands.add_parser("download", help="fetch CIFAR, Tiny-ImageNet or Imagenette, check an image "
                                   "folder, or generate and cache the synthetic set")
    packer = commands.add_parser("pack", help="pack a data set's image folders for training, unless packed")
    for command in (download, packer):
        command.add_argument("name", choices=DATASETS if command is download else PACKED)
        command.add_argument("--root", default=DataConfig.root, help="data root (default: %(default)s)")
        command.add_argument("--imagenette-size", choices=IMAGENETTE_SIZES, default=DataConfig.imagenette_size)
    download.add_argument("--synthetic-train", type=int, default=DataConfig.synthetic_train)
    download.add_argument("--synthetic-test", type=int, default=DataConfig.synthetic_test)
    download.add_argument("--synthetic-seed", type=int, default=DataConfig.synthetic_seed)
    packer.add_argument("--image-size", type=int, default=None, help="packed side (default: the data set's)")
    packer.add_argument("--workers", type=int, default=None, help="decoding processes (default: up to 8)")
    args = parser.parse_args(argv)
    if args.command == "pack":
        return pack_main(args)

    config = DataConfig(args.name, args.root, synthetic_train=args.synthetic_train,
                        synthetic_test=args.synthetic_test, synthetic_seed=args.synthetic_seed,
                        imagenette_size=args.imagenette_size)
    if args.name in PACKED:
        return fetch_main(config)
    if args.name != "synthetic":
        from torchvision.datasets import CIFAR10, CIFAR100

        cls = {"cifar10": CIFAR10, "cifar100": CIFAR100}[args.name]
        try:  # checks the md5 of what is there first, and downloads only if that fails
            cls(args.root, train=True, download=True)
        except (OSError, RuntimeError) as error:  # URLError is an OSError
            print(f"could not fetch {args.name} into {args.root}: {error}\nRun this on a machine with "
                  f"internet, or unpack {cls.filename} ({cls.url}) into {args.root}.", file=sys.stderr)
            return 1
    splits = load_splits(config)  # reads back what the training jobs will read
    print(f"{args.name} ready under {args.root}: {len(splits.train_labels)} training and "
          f"{len(splits.eval_labels)} test images, {splits.num_classes} classes")
    return 0


def fetch_main(config: DataConfig) -> int:
    """Tiny-ImageNet and Imagenette downloaded (md5-checked) unless there; an image folder
    only listed. Either way its layout is checked, as packing will read it."""
    from hybrid.data.layouts import PackingError, fetch, list_images

    size = config.imagenette_size if config.name == "imagenette" else None
    try:
        if config.name != "imagefolder":
            fetch(config.name, Path(config.root), size=size)
        listing = list_images(config.name, Path(config.root), size=size)
    except PackingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as error:  # no internet, a failed checksum
        print(f"could not fetch {config.name} into {config.root}: {error}\nRun this on a machine with internet, "
              f"or unpack it there as `python -m hybrid.data.packing fetch {config.name}` would.", file=sys.stderr)
        return 1
    counts = ", ".join(f"{len(split.paths)} {name}" for name, split in listing.splits.items())
    print(f"{config.name} ready under {config.root}: {counts} images, {len(listing.classes)} classes")
    return 0


def pack_main(args) -> int:
    """The pack of a data set under its root, made unless one of the same kind, variant and
    size is there (its manifest read, not its hashes: `python -m hybrid.data.packing verify`)."""
    from hybrid.data.packing import PackingError, pack, read_manifest

    try:
        config = DataConfig(args.name, args.root, image_size=args.image_size, imagenette_size=args.imagenette_size)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    dest, size = packed_dir(config), config.imagenette_size if config.name == "imagenette" else None
    try:
        manifest = read_manifest(dest)
        if (manifest["kind"], manifest["image_size"], manifest.get("size")) == (config.name, config.packed_size, size):
            print(f"{dest} already packed: {manifest['splits']['train']['count']} training and "
                  f"{manifest['splits']['val']['count']} validation images")
            return 0
        print(f"error: {dest} holds another pack ({manifest['kind']}, {manifest['image_size']} px); delete it",
              file=sys.stderr)
        return 2
    except PackingError:
        pass  # none yet (or a damaged one, which pack refuses with its own message)
    try:
        manifest = pack(config.name, Path(config.root), dest, config.packed_size, size=size, workers=args.workers)
    except PackingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"packed {dest}: {manifest['splits']['train']['count']} training and "
          f"{manifest['splits']['val']['count']} validation images in {manifest['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
