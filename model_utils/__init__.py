"""Keras 3 layers, architectures, training and evaluation for emotion recognition in conversation."""
