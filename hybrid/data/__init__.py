"""What a run is fed: CIFAR, the generated set and packed image folders, loaded into
`Splits`, and batched, augmented and normalised on the training device.

- `config`: the `dataset` section (`DataConfig`), the data sets' names and sizes, `Splits`;
- `splits`: a data set loaded (held whole, or memory-mapped for streaming), the validation carve;
- `cifar`, `synthetic`: the 32-pixel sets (the generated one cached under the data root);
- `layouts`, `packing`: image folders listed, checked and packed once into uint8 arrays;
- `feeding`: batches gathered on the device or streamed from a pack, and larger images' crops;
- `batches`: epoch order, CIFAR's crop and flip, normalisation;
- `__main__`: `python -m hybrid.data download|pack NAME --root DIR`.
"""

from hybrid.data.batches import augment, crop_and_flip, draw_crops, epoch_batches, normalization_stats, normalize
from hybrid.data.config import (
                                DATASETS,
                                IMAGENETTE_SIZES,
                                NORMALIZATIONS,
                                NUM_CLASSES,
                                PACKED,
                                PACKED_SIZES,
                                DataConfig,
                                DataNotFoundError,
                                Splits,
                                default_crop_size,
                                split_sizes,
)
from hybrid.data.splits import channel_stats, load_splits, pack_command, packed_dir

__all__ = [
    "DATASETS", "IMAGENETTE_SIZES", "NORMALIZATIONS", "NUM_CLASSES", "PACKED", "PACKED_SIZES", "DataConfig",
    "DataNotFoundError", "Splits", "augment", "crop_and_flip", "draw_crops", "channel_stats", "default_crop_size", "epoch_batches", "load_splits",
    "normalization_stats", "normalize", "pack_command", "packed_dir", "split_sizes",
]
