"""The DiffStride layer's window: the host arithmetic that decides its crop, and the mask
as one autograd node.

The crop is decided on the host, in float32 and in the official layer's order of
operations (google-research/diffstride, `pooling.DiffStride`), so that a coefficient whose
mask is exactly zero is dropped exactly where the official layer drops it. The mask is a
function of the strides on the device, `Window`, whose backward is written out: one node
where autograd would record some forty for the same expression.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch


def float32(x: float) -> np.float32:
    return np.float32(x)


@lru_cache(maxsize=256)
def vertical_positions(height: int) -> np.ndarray:
    """The official code's distance-to-DC of each row of an rfft2 output (after fftshift).

    Rows are numbered as the official layer numbers them, off-by-one on the negative
    frequencies included: parity means the same rows kept and the same mask values.
    """
    half = np.arange(height // 2 + height % 2, dtype=np.float32)
    positions = np.concatenate([half[height % 2:][::-1], half])
    return np.fft.fftshift(positions)


@lru_cache(maxsize=256)
def horizontal_positions(width: int) -> np.ndarray:
    return np.arange(width // 2 + 1, dtype=np.float32)


@lru_cache(maxsize=1024)
def kept_span(positions_key: tuple[str, int], threshold: float, smoothness: float) -> tuple[int, int]:
    """How many leading and trailing coefficients the soft mask keeps (mask > 0).

    Evaluated in float32, in the official order of operations, so that a coefficient
    whose mask is exactly zero is dropped exactly when the official layer drops it.
    """
    axis, size = positions_key
    positions = vertical_positions(size) if axis == "v" else horizontal_positions(size)
    r = float32(smoothness)
    ramp = (float32(1.0) / r) * (r + float32(threshold) - positions)
    kept = ramp > 0
    lead = int(np.argmin(kept)) if not kept.all() else len(kept)
    trail = 0 if lead == len(kept) else int(np.argmin(kept[::-1]))
    if int(kept.sum()) != lead + trail:  # positions rise then fall, so this cannot happen
        raise AssertionError(f"non-contiguous DiffStride crop on axis {axis} of size {size}")
    return lead, trail


class Crop(NamedTuple):
    """What a DiffStride layer does to one map size at one step's strides, fixed before the
    forward pass (Python ints, so that a compiled forward specialises on them and on nothing
    else): the map's height and width, the rfft2 rows it keeps (the first `lead`, the last
    `trail`) and its leading columns `cols`."""

    height: int
    width: int
    lead: int
    trail: int
    cols: int

    @property
    def out_size(self) -> tuple[int, int]:
        return self.lead + self.trail, 2 * (self.cols - 1)


class Window(torch.autograd.Function):
    """The layer's separable soft mask over the kept coefficients, as one autograd node.

    Forward: each stride clipped to the limits, the reduced size max(size / stride, 2), the
    threshold (half of it, plus one on the rfft axis), the ramp (r + threshold - position) / r
    clipped to [0, 1]; the mask is the outer product of the two axes' ramps. Both axes go
    through each elementwise operation together. Backward: the chain rule of that
    expression with the gradient conventions of the official TensorFlow code (a clip passes
    the gradient on its bounds; the maximum gives it all to size / stride on a tie), written
    out in the order of operations torch's autograd took for the expression in eager mode,
    so the stride gradients are the same floats.
    """

    @staticmethod
    def forward(ctx, strides, positions, axes, kept_rows: int, smoothness: float, lower: float, upper: float):
        # axes: [height, width], [0, 1] (the rfft axis' threshold is one higher), [-height/2, -width/2]
        stride = strides.expand(2)  # (vertical, horizontal); a shared stride serves both
        clipped = stride.clamp(lower, upper)
        reciprocal = clipped.reciprocal()
        reduced = reciprocal * axes[0]
        at_least_two = reduced.clamp(min=2.0)
        threshold = torch.add(axes[1], at_least_two, alpha=0.5)  # x / 2 + offset: halving is exact
        per_coefficient = torch.cat([threshold[:1].expand(kept_rows), threshold[1:].expand(len(positions) - kept_rows)])
        ramp = (1.0 / smoothness) * (smoothness + per_coefficient - positions)
        mask = ramp.clamp(0.0, 1.0)
        mask_v, mask_h = mask[:kept_rows], mask[kept_rows:]
        if ctx.needs_input_grad[0]:
            # Where each clip blocks the gradient: strictly outside its bounds (a value equal
            # to its clip lies inside), and where max(size / stride, 2) took the 2.
            # d(size / stride) / d stride = -size / stride^2, times 1/2 for the threshold, and 0
            # where the 2 was taken; autograd took it as -((g / 2) * size) * (1/s * 1/s), and
            # (g / 2) * size = g * (size / 2) exactly (halving is exact)
            minus_half_size = axes[2].masked_fill(at_least_two != reduced, 0.0)
            ctx.save_for_backward(mask_v, mask_h, mask != ramp, minus_half_size, clipped != stride,
                                  reciprocal * reciprocal)
            ctx.smoothness, ctx.shared = smoothness, strides.shape[0] == 1
        return mask_v[:, None] * mask_h[None, :]

    @staticmethod
    def backward(ctx, grad_mask):
        mask_v, mask_h, ramp_clipped, minus_half_size, stride_clipped, reciprocal_squared = ctx.saved_tensors
        grad_v = (grad_mask * mask_h[None, :]).sum(1)
        grad_h = (grad_mask * mask_v[:, None]).sum(0)
        grad_ramp = torch.cat([grad_v, grad_h]).masked_fill(ramp_clipped, 0.0) * (1.0 / ctx.smoothness)
        grad_threshold = torch.stack([grad_ramp[:len(mask_v)].sum(), grad_ramp[len(mask_v):].sum()])
        grad_stride = ((grad_threshold * minus_half_size) * reciprocal_squared).masked_fill(stride_clipped, 0.0)
        if ctx.shared:
            grad_stride = grad_stride.sum(0, keepdim=True)
        return grad_stride, None, None, None, None, None, None
