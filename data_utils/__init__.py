"""Data loading for multimodal emotion recognition in conversation (no TensorFlow imported here)."""
