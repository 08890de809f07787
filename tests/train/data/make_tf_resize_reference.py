"""Writes tf_resize_reference.npz: TensorFlow's own ResizeBilinear outputs for the FID resize test.

Not run by the tests (they read the file). Needs TensorFlow (any 2.x CPU build; made with 2.21):

    python tests/train/data/make_tf_resize_reference.py

The FID graph resizes with TensorFlow 1.x's ResizeBilinear, align_corners=False and no half-pixel
centres, which TF 2 keeps as tf.compat.v1.image.resize_bilinear.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

# (input height, width, channels) -> output sizes; downscaling and upscaling by ratios that are not
# whole numbers, so every output pixel falls between source pixels.
CASES = {"a": ((64, 80, 3), (29, 97)), "b": ((37, 23, 3), (61, 8)), "c": ((128, 128, 1), (47,))}


def main() -> None:
    rng = np.random.default_rng(2015)
    arrays = {}
    for name, (shape, sizes) in CASES.items():
        image = rng.integers(0, 256, shape).astype(np.uint8)
        arrays[f"{name}_input"] = image
        for size in sizes:
            resized = tf.compat.v1.image.resize_bilinear(image[None].astype(np.float32), [size, size], align_corners=False, half_pixel_centers=False)
            arrays[f"{name}_{size}"] = resized.numpy()[0].astype(np.float32)
    np.savez_compressed(Path(__file__).with_name("tf_resize_reference.npz"), **arrays)


if __name__ == "__main__":
    main()
