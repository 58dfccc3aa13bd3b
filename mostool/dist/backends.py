"""Where the plan's tasks run: local processes (``--workers N``) or a Dask cluster.

A backend has ``map(fn, argument tuples, label)``, which runs every task, reports progress and
returns the results in the order of the arguments; ``partitions`` (how many partitions suit it)
and ``close()``. A task that fails raises its error here. Dask retries a task whose worker was
lost on another worker (its inputs are files in the shared scratch directory, and every file is
replaced atomically), so a lost worker changes nothing but the time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from mostool.errors import DistError

__all__ = ["LocalBackend", "DaskBackend", "backend_for"]


class _Progress:
    def __init__(self, err: IO[str] | None, label: str, total: int) -> None:
        self.err = err
        self.label = label
        self.total = total
        self.done = 0
        self.start = time.monotonic()
        self.tty = bool(err is not None and getattr(err, "isatty", lambda: False)())

    def step(self) -> None:
        self.done += 1
        if self.err is not None and self.tty:
            self.err.write(f"\rmostool: {self.label}: {self.done}/{self.total}")
            self.err.flush()

    def end(self) -> None:
        if self.err is not None:
            took = time.monotonic() - self.start
            lead = "\r" if self.tty else ""
            self.err.write(f"{lead}mostool: {self.label}: {self.done}/{self.total} done in "
                           f"{took:.1f} s\n")
            self.err.flush()


class LocalBackend:
    """N local processes (fork), for users without Dask."""

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        self.partitions = workers
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))

    def map(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], label: str,
            err: IO[str] | None) -> list[Any]:
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool
        progress = _Progress(err, label, len(args))
        futures = {self._pool.submit(fn, *a): i for i, a in enumerate(args)}
        results: list[Any] = [None] * len(args)
        for fut in as_completed(futures):
            try:
                results[futures[fut]] = fut.result()
            except BrokenProcessPool:
                raise DistError(f"a worker process died during {label} (killed, or out of "
                                "memory?); run again with fewer --workers") from None
            progress.step()
        progress.end()
        return results

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


class DaskBackend:
    """A Dask ``Client``: a running scheduler's address, ``local:N`` or a client given."""

    def __init__(self, client: Any, own: Any = None) -> None:
        self.client = client
        self._own = own                 # (client, cluster) this backend started
        workers = client.scheduler_info().get("workers", {})
        threads = sum(w.get("nthreads", 1) for w in workers.values()) or 1
        self.partitions = max(1, threads)
        self.dashboard = getattr(client, "dashboard_link", None)

    def map(self, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], label: str,
            err: IO[str] | None) -> list[Any]:
        as_completed = _distributed().as_completed
        progress = _Progress(err, label, len(args))
        futures = [self.client.submit(fn, *a, pure=False, retries=2,
                                      key=f"mostool-{label}-{i}-{time.monotonic_ns()}")
                   for i, a in enumerate(args)]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(args)
        try:
            for fut in as_completed(futures):
                results[index[fut.key]] = fut.result()
                progress.step()
        finally:
            for fut in futures:
                fut.release()
        progress.end()
        return results

    def close(self) -> None:
        if self._own is not None:
            client, cluster = self._own
            client.close()
            if cluster is not None:
                cluster.close()


def _distributed() -> Any:
    """The ``distributed`` package (untyped: kept behind Any)."""
    import importlib
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise DistError("--dask needs Dask: pip install 'mostool[dask]'") from None


def backend_for(spec: Any, err: IO[str] | None = None) -> Any:
    """A backend from ``--dask ADDRESS`` / ``local:N``, an int (local processes) or a Dask
    ``Client`` (the notebook's)."""
    if isinstance(spec, int):
        return LocalBackend(spec)
    if not isinstance(spec, str):
        return DaskBackend(spec)
    dd = _distributed()
    Client, LocalCluster = dd.Client, dd.LocalCluster
    if spec.startswith("local:"):
        try:
            n = int(spec[6:])
        except ValueError:
            n = 0
        if n < 1:
            raise DistError(f"--dask local:N takes a number of processes >= 1, not {spec!r}")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               dashboard_address=":0")
        client = Client(cluster)
        return DaskBackend(client, own=(client, cluster))
    try:
        client = Client(spec, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise DistError(f"cannot reach the Dask scheduler at {spec}: {exc}") from None
    if not client.scheduler_info().get("workers"):
        try:
            client.wait_for_workers(1, timeout=10)
        except (OSError, TimeoutError):
            client.close()
            raise DistError(f"the Dask scheduler at {spec} has no workers") from None
    return DaskBackend(client, own=(client, None))

