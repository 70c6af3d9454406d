"""A table of the named variants under both residual layers: parameters, cost and the
final feature-map size.

    python -m hybrid.nn.summary [--arch resnet18] [--width W] [--num-classes 10] [--image-size 32]

`params` counts trainable parameters, as Keras' `count_params` does for the official models
(batch-norm moving statistics are buffers here, non-trainable weights there). A head pool
of the post-activation net sits after the last ReLU (`head_pool_at: after_norm`), the only
place it has.
"""

from __future__ import annotations

import argparse

import torch

from hybrid.nn.blocks import BLOCKS
from hybrid.nn.options import ARCHS, VARIANTS
from hybrid.nn.resnet import build_variant


def _options(variant: str, block: str) -> dict:
    head = VARIANTS[variant].get("head_pool", "none") != "none"
    return {"block": block, **({"head_pool_at": "after_norm"} if block == "postact" and head else {})}


def variant_table(arch: str = "resnet18", width: int | None = None, num_classes: int = 10, image_size: int = 32) -> list[dict]:
    rows = []
    for name in VARIANTS:
        if any(site not in ARCHS[arch].sites for site in VARIANTS[name].get("site_kinds", {})):
            continue  # a variant of sites this architecture lacks (hybrid-layer4 on resnet56)
        row = {"variant": name}
        for block in BLOCKS:
            model = build_variant(name, arch=arch, width=width, num_classes=num_classes, **_options(name, block))
            row[f"params_{block}"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
            if block == "preact":  # the cost and maps of the official HEAD net
                cost = model.cost((image_size, image_size))
                with torch.no_grad():
                    final = model.features(torch.zeros(1, 3, image_size, image_size)).shape[-2:]
                row.update(mflops=cost["flops"] / 1e6, activation_mb=cost["activation_bytes"] / 2**20,
                           final_map=f"{final[0]}x{final[1]}", learned_strides=len(model.stride_parameters()))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hybrid.nn.summary", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", choices=list(ARCHS), default="resnet18")
    parser.add_argument("--width", type=int, default=None, help="the stem's filters (default: the architecture's)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args(argv)
    rows = variant_table(args.arch, args.width, args.num_classes, args.image_size)
    width = args.width or ARCHS[args.arch].filters[0]
    print(f"{args.arch} variants, width {width}, {args.num_classes} classes; cost of the pre-activation "
          f"(official HEAD) net for one {args.image_size}x{args.image_size} image:")
    print(f"{'variant':<18} {'params preact':>14} {'params postact':>15} {'MFLOPs':>9} {'act. MiB':>9} "
          f"{'final map':>10} {'strides':>8}")
    for r in rows:
        print(
            f"{r['variant']:<18} {r['params_preact']:>14,} {r['params_postact']:>15,} {r['mflops']:>9.1f} "
            f"{r['activation_mb']:>9.2f} {r['final_map']:>10} {r['learned_strides']:>8}"
        )


if __name__ == "__main__":
    main()
