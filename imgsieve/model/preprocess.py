"""In-graph image decoding and ResNet50 preprocessing, shared by training and the exported model.

Training and serving call the very same functions, so the model sees identical pixels in both.
"""

from __future__ import annotations

import keras
import tensorflow as tf

DEFAULT_IMAGE_SIZE = 224
CHANNELS = 3


def decode_and_resize(data: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode one encoded image (JPEG, PNG, GIF, BMP) to a float32 RGB tensor of image_size^2."""
    # channels=3 turns grayscale, RGBA and CMYK into RGB; expand_animations=False keeps
    # an animated GIF's first frame, so every image decodes to exactly one rank-3 tensor.
    image = tf.io.decode_image(data, channels=CHANNELS, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, CHANNELS])
    resized = tf.image.resize(
        tf.cast(image, tf.float32), [image_size, image_size], method="bilinear", antialias=True
    )
    return tf.clip_by_value(resized, 0.0, 255.0)


def decode_batch(images_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode a 1-D batch of encoded images to a float32 [N, size, size, 3] tensor of RGB 0-255."""
    return tf.map_fn(
        lambda data: decode_and_resize(data, image_size),
        images_bytes,
        fn_output_signature=tf.TensorSpec([image_size, image_size, CHANNELS], tf.float32),
        parallel_iterations=8,
    )


def normalize(images: tf.Tensor) -> tf.Tensor:
    """Apply ResNet50's own preprocessing (RGB to BGR, ImageNet mean subtracted) to 0-255 images."""
    return keras.applications.resnet50.preprocess_input(images)
