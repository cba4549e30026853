"""imgsieve: classify a large stream of images with a ResNet50 model served by TensorFlow Serving."""

__version__ = "0.1.0"
