"""Keras 3 layers, architectures, training and evaluation for emotion recognition in conversation.

What a user defines and imports sits at the top (``layers``, ``architectures``, ``experiments``, ``config``,
``metrics``, ``training``, ``results``); running experiments is :mod:`model_utils.run`, reading results
:mod:`model_utils.report`, the machine :mod:`model_utils.machine`. Submodules are imported on use
(``from model_utils import layers``); importing the package itself is cheap.
"""
from .machine import settings as _settings
from .machine import tf_logs as _tf_logs

_settings.apply()  # before TensorFlow is imported by any submodule
# TensorFlow ignores TF_CPP_MIN_LOG_LEVEL for the lines it logs while it is imported (before absl::InitializeLog):
# filter them out of this process's stderr when TensorFlow is first imported.
_tf_logs.filter_import_logs()
