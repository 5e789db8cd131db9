"""Keras 3 layers, architectures, training and evaluation for emotion recognition in conversation.

What a user defines and imports sits at the top (``layers``, ``architectures``, ``experiments``, ``config``,
``metrics``, ``training``, ``results``, ``trained``); running experiments is :mod:`model_utils.run`, reading
results :mod:`model_utils.report`, the machine :mod:`model_utils.machine`. Submodules are imported on use
(``from model_utils import layers``); importing the package itself is cheap. Once Keras is imported (before or
after this package), every layer of the suite is registered with it, so ``keras.saving.load_model`` reads a saved
model after a plain ``import model_utils``.
"""
import sys as _sys

import wrapt as _wrapt

from .machine import device as _device
from .machine import settings as _settings
from .machine import tf_logs as _tf_logs

_settings.apply()  # before TensorFlow is imported by any submodule
# TensorFlow ignores TF_CPP_MIN_LOG_LEVEL for the lines it logs while it is imported (before absl::InitializeLog):
# filter them out of this process's stderr when TensorFlow is first imported.
_tf_logs.filter_import_logs()


def _register_layers(_keras) -> None:
    """Keras is imported: import :mod:`model_utils.layers`, which registers every layer (``mser>Name``). When that
    module is the one importing Keras, it registers them itself as it finishes."""
    if "model_utils.layers" not in _sys.modules:
        from . import layers  # noqa: F401


_wrapt.register_post_import_hook(_register_layers, "keras")
# MSER_DEVICE=cpu hides the GPUs as TensorFlow is imported, before it sets up any device (machine.device).
_wrapt.register_post_import_hook(_device.apply, "tensorflow")
