"""The Ray executor on a real local Ray cluster (2 CPUs, loopback): with a worker killed
mid-sweep, the same store and the same bytes as a serial run."""

from __future__ import annotations

import os
import signal

import pytest

from poslens.sweep import sweep
from poslens.testing import random_state_dict, small_config, write_checkpoint

ray = pytest.importorskip("ray", reason="the Ray executor is an optional extra: pip install 'poslens[ray]'")

STEPS = (0, 10, 20, 40)


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module, on the loopback address: its start-up (~15 s on 2 idle
    cores) is the bulk of these tests. Ray maps 127.0.0.1 to the machine's address unless told it
    is not part of a cluster (the switch it uses on laptops)."""
    from ray._private import ray_constants

    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read by the processes the cluster starts
    mp.setattr(ray_constants, "ENABLE_RAY_CLUSTER", False)
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        mp.undo()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    cfg = small_config()
    root = tmp_path_factory.mktemp("ray") / "run"
    for s in STEPS:
        write_checkpoint(root / f"checkpoint-{s}", cfg, random_state_dict(cfg, seed=s), fmt="bin", prefix=True)
    return root


@pytest.fixture(scope="module")
def serial(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    sweep([str(run_dir)], out=out, analyses=["helix", "icl"], executor="serial", progress=False, page=False)
    return out


def _files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "runs.jsonl"}


def test_ray_sweep_with_a_worker_killed_is_byte_identical_to_serial(cluster, run_dir, serial, tmp_path, monkeypatch):
    """One Ray sweep through the public API: the worker that finishes the first cell is killed
    while it computes the next, Ray retries that cell, and the store and tables come out
    byte-identical to a serial run's (one run for both properties: each costs worker start-ups)."""
    from poslens.sweep import executors

    host, _, _ = cluster.rpartition(":")
    assert host == "127.0.0.1"
    real, killed = executors.run_ray, []

    def run_ray(tasks, done, **kw):
        def kill_once(task, body, info):
            done(task, body, info)
            if not killed:  # that worker has taken the next cell: kill it mid-cell
                os.kill(info["pid"], signal.SIGKILL)
                killed.append(info["pid"])

        return real(tasks, kill_once, stall_timeout=120, **kw)  # a hung cluster fails the test, not hangs it

    monkeypatch.setattr(executors, "run_ray", run_ray)
    sweep([str(run_dir)], out=tmp_path, analyses=["helix", "icl"], executor="ray", address=cluster, progress=False,
          page=False)
    assert killed
    assert _files(tmp_path) == _files(serial)
