"""Keras 3 layers, architectures, training and evaluation for emotion recognition in conversation.

Submodules are imported on use (``from model_utils import layers``); importing the package itself is cheap.
"""
import os as _os

from . import _tf_logs

# Before TensorFlow is imported by any submodule: quiet C++ logs, and oneDNN pinned on (TensorFlow's own default on
# x86; about 1.4x faster here than off, and just as deterministic) so numbers never depend on the caller's shell.
# Environment variables reach every process started from here: worker processes and notebook kernels.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
# One TensorFlow thread per process unless the caller chose otherwise: with more threads oneDNN's convolutions sum
# in another order, so a cnn-* run in a notebook kernel would differ in the last digits from the same run in a
# worker process (which trains with one thread). Same seed, same numbers, wherever a run trains.
_os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
_os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
# TensorFlow ignores TF_CPP_MIN_LOG_LEVEL for the lines it logs while it is imported (before absl::InitializeLog):
# filter them out of this process's stderr when TensorFlow is first imported.
_tf_logs.filter_import_logs()
