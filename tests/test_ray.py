"""run_many on a Ray cluster (a local instance the test starts: 2 CPUs, no dashboard) gives exactly the local pool's
numbers. Needs the ray extra (make setup-ray; CI installs it)."""
from __future__ import annotations

import pytest

from model_utils.runner import run_many

ray = pytest.importorskip("ray", reason="the ray extra is not installed (make setup-ray)")

GRID = dict(seeds=[0, 1], epochs=2, verbose=0)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_a_tiny_grid_on_ray_gives_the_numbers_of_the_local_pool(local_ray, tmp_path, capsys):
    names = ["text-bilstm", "cnn-text"]
    local = run_many(names, "synthetic-small", workers=2, out_root=tmp_path / "local", **GRID)
    local_lines = capsys.readouterr().out.splitlines()
    remote = run_many(names, "synthetic-small", workers=2, backend="ray", out_root=tmp_path / "ray", **GRID)
    remote_lines = capsys.readouterr().out.splitlines()
    for name in names:
        a, b = local[name], remote[name]
        assert [s.seed for s in a.seeds] == [s.seed for s in b.seeds] == [0, 1]
        for x, y in zip(a.seeds, b.seeds):
            assert x.metrics == y.metrics and x.history == y.history
            assert (x.probabilities == y.probabilities).all()
        assert (tmp_path / "ray" / name / "summary.json").is_file()
    strip = [line.split(";")[0] for line in local_lines]  # progress lines, less the seconds of training
    assert sorted(strip) == sorted(line.split(";")[0] for line in remote_lines) and len(strip) == 2


def test_an_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown backend 'dask'; choose one of local, ray"):
        run_many(["text-bilstm"], "synthetic-small", backend="dask", **GRID)
