"""A table of the named variants: parameters, cost and final feature-map size.

    python -m hybrid.summary [--width 64] [--num-classes 10] [--image-size 32]
"""

from __future__ import annotations

import argparse

import torch

from hybrid.models import VARIANTS, build_variant


def variant_table(width: int = 64, num_classes: int = 10, image_size: int = 32) -> list[dict]:
    rows = []
    for name in VARIANTS:
        model = build_variant(name, width=width, num_classes=num_classes)
        cost = model.cost((image_size, image_size))
        with torch.no_grad():
            final = model.features(torch.zeros(1, 3, image_size, image_size)).shape[-2:]
        rows.append(
            {
                "variant": name,
                "params": sum(p.numel() for p in model.parameters()),
                "mflops": cost["flops"] / 1e6,
                "activation_mb": cost["activation_bytes"] / 2**20,
                "final_map": f"{final[0]}x{final[1]}",
                "learned_strides": len(model.stride_parameters()),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=64, help="base filters (64 is the paper's ResNet-18)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args(argv)
    rows = variant_table(args.width, args.num_classes, args.image_size)
    print(f"ResNet-18 variants at width {args.width}, {args.image_size}x{args.image_size} input, one image:")
    print(f"{'variant':<11} {'params':>11} {'MFLOPs':>9} {'act. MiB':>9} {'final map':>10} {'strides':>8}")
    for r in rows:
        print(
            f"{r['variant']:<11} {r['params']:>11,} {r['mflops']:>9.1f} {r['activation_mb']:>9.2f} "
            f"{r['final_map']:>10} {r['learned_strides']:>8}"
        )


if __name__ == "__main__":
    main()
