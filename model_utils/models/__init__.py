"""The built-in architectures: shared building blocks, the upstream study's models and ours. Importing this package
registers every built-in architecture (:mod:`model_utils.registry`)."""
from . import blocks, ours, upstream  # noqa: F401 (registers the builders)
