"""The machine a run trains on: the TensorFlow settings every process gets (:mod:`~model_utils.machine.settings`),
the filter for TensorFlow's import-time C++ logs (:mod:`~model_utils.machine.tf_logs`), what this process
computes on (:mod:`~model_utils.machine.environment`, ``mser env``) and where a run came from
(:mod:`~model_utils.machine.provenance`). Importing this package imports no deep-learning backend."""
