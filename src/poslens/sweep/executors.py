"""Where cells run: in this process, on a local process pool, or as Ray tasks.

Every executor takes the cells still to compute and calls ``done(task, body, info)`` in the
driver as each finishes; only the driver writes the store, so a worker that dies loses at
most the cell it was computing, and that cell is run again.

- ``serial``: one after another, in this process.
- ``local`` (default): a pool of ``jobs`` processes (spawned, one thread each); a pool
  broken by a dead worker is replaced and its unfinished cells resubmitted.
- ``ray``: each cell is a Ray task declaring ``num_cpus`` and ``memory``, retried by Ray
  when its worker dies (``max_retries``). ``address``: ``auto`` (the cluster this machine
  belongs to), ``HOST:PORT`` of a running cluster's head, or ``local`` (start one here).
  Install with ``pip install "poslens[ray]"``; every node needs poslens installed.

>>> run_cells(tasks, done, executor="local", jobs=2)     # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from ..errors import InvalidInputError, PoslensError, suggest

EXECUTORS = ("local", "serial", "ray")
Done = Callable[[dict, dict, dict], None]


class RayUnavailableError(PoslensError):
    pass


def _init_worker(driver=None) -> None:
    import threading

    import torch

    from ..models.allocator import keep_freed_memory

    torch.set_num_threads(1)
    keep_freed_memory()
    if driver is not None:
        threading.Thread(target=_exit_when_closed, args=(driver,), daemon=True).start()


def _exit_when_closed(driver) -> None:
    # A worker's parent is the fork server, not the driver, and it holds its own queue's write end: a driver
    # killed (SIGTERM, the OOM killer) left its workers waiting for cells for ever, each holding torch in
    # memory. Only the driver holds this pipe's write end, so it reads as closed once the driver is gone.
    try:
        driver.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(1)


def _run_one(task: dict):
    from .cells import compute_cell

    body, info = compute_cell(task)
    return task["key"], body, info


def _pool_context(mp):
    """Workers forked from a server that has imported torch and the cells once.

    Spawning re-imports torch in every worker (seconds each, a large share of a short
    sweep); forking the driver itself is unsafe once torch's thread pools have started.
    Where there is no forkserver (Windows), spawn.
    """
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "poslens.sweep.cells"])
    return ctx


def run_serial(tasks: list[dict], done: Done) -> None:
    for t in tasks:
        _, body, info = _run_one(t)
        done(t, body, info)


def run_local(tasks: list[dict], done: Done, jobs: int, max_restarts: int = 3) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    todo = {t["key"]: t for t in tasks}
    restarts = 0
    ctx = _pool_context(mp)
    alive, held = ctx.Pipe(duplex=False)  # the workers read ``alive``; ``held`` closes with this process
    try:
        while todo:
            pool = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(alive,))
            try:
                futures = {pool.submit(_run_one, t): k for k, t in todo.items()}
                pending = set(futures)
                while pending:
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in finished:
                        try:
                            key, body, info = f.result()
                        except BrokenProcessPool:
                            continue  # a worker died: resubmitted below with a fresh pool
                        done(todo.pop(key), body, info)
            except BrokenProcessPool:
                pass
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            if todo:
                restarts += 1
                if restarts > max_restarts:
                    raise PoslensError(f"the local pool lost a worker {restarts} times; {len(todo)} cells were not "
                                       "computed: out of memory (try --jobs 1), or, from a script of yours, sweep() "
                                       "called outside `if __name__ == \"__main__\":` (every worker imports the "
                                       "script); rerun to resume")
    finally:
        held.close()
        alive.close()


def check_ray_address(address: str, timeout: float = 5.0) -> None:
    """Raise at once, in one line, when ``HOST:PORT`` does not answer (Ray itself retries for minutes)."""
    if address in ("auto", "local", ""):
        return
    host, _, port = address.rpartition(":")
    host = host.removeprefix("ray://")
    if not host or not port.isdigit():
        raise InvalidInputError(f"--address '{address}' is not auto, local or HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise RayUnavailableError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
                                  "`ray start --head` or check the address") from None


def connect_ray(address: str, cpus: int | None = None):
    """The ``ray`` module, connected to ``address`` (reusing a connection this process already has)."""
    check_ray_address(address)  # before importing Ray: a dead address answers in seconds
    try:
        import ray
    except ImportError:
        raise RayUnavailableError('the ray executor needs Ray: pip install "poslens[ray]"') from None
    if ray.is_initialized():
        return ray
    kw = dict(log_to_driver=False, configure_logging=False)
    try:
        if address == "local":
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, **kw)
        else:
            ray.init(address=address, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RayUnavailableError(f"cannot connect to Ray at '{address}' ({msg}); start a cluster with "
                                  "`ray start --head`, or use --executor local") from None
    return ray


def run_ray(tasks: list[dict], done: Done, address: str = "auto", cpus: float = 1.0, memory_mb: int = 1024,
            max_retries: int = 3, stall_timeout: float | None = None) -> None:
    """Cells as Ray tasks; ``stall_timeout``: give up (finished cells kept) when no cell finishes for that long."""
    ray = connect_ray(address)
    remote = ray.remote(num_cpus=cpus, memory=int(memory_mb) * 2 ** 20, max_retries=max_retries,
                        retry_exceptions=False)(_run_one)
    refs = {remote.remote(t): t for t in tasks}
    pending = list(refs)
    lost = []
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=stall_timeout)
        if not ready:
            for r in pending:
                ray.cancel(r, force=True)
            raise PoslensError(f"no cell finished on Ray for {stall_timeout:.0f} s; {len(pending)} cells were not "
                               "computed (are the cluster's workers busy or gone?); rerun to resume")
        for r in ready:
            try:
                key, body, info = ray.get(r)
            except ray.exceptions.RayError as exc:  # retries exhausted
                lost.append(f"{refs[r]['spec']} {refs[r]['analysis']}: {type(exc).__name__}")
                continue
            done(refs[r], body, info)
    if lost:
        raise PoslensError(f"{len(lost)} cells failed on Ray after {max_retries} retries (first: {lost[0]}); "
                           "finished cells are stored: rerun to resume")


def run_cells(tasks: list[dict], done: Done, *, executor: str = "local", jobs: int | None = None,
              address: str = "auto", cpus: float = 1.0, memory_mb: int = 1024) -> None:
    if executor not in EXECUTORS:
        raise InvalidInputError(f"unknown executor '{executor}'{suggest(executor, EXECUTORS)}; use local, serial or ray")
    if not tasks:
        return
    if executor == "serial":
        return run_serial(tasks, done)
    if executor == "local":
        jobs = max(1, int(jobs or os.cpu_count() or 1))
        if jobs == 1 or len(tasks) == 1:
            return run_serial(tasks, done)
        return run_local(tasks, done, min(jobs, len(tasks)))
    return run_ray(tasks, done, address=address, cpus=cpus, memory_mb=memory_mb)
