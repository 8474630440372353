"""Candidate evaluations on a Dask cluster: local worker processes or an existing scheduler.

Why Dask directly and not pymoo's ``DaskParallelization``: pymoo's runner serves elementwise problems,
ships the whole problem (evaluator, data, supernet) with every candidate and returns results in
submission order. Here the evaluator -- the large shared state -- travels to each worker once per
version, every candidate is a small task carrying only its encoding, and results come back with
``as_completed`` so the main process archives each one the moment it finishes (one transaction each).

Failure policy:
- an exception escaping the evaluator is retried ``retries`` times (Dask ``retries=``), then the
  candidate is ``failed`` with the exception's last line;
- a worker process that dies mid-evaluation makes the scheduler reschedule the task; after
  ``distributed.scheduler.allowed-failures`` deaths (set to ``retries`` on a local cluster) the
  candidate is ``failed`` ("worker died ...") and the search goes on;
- if every copy of the shared evaluator is lost with its workers, it is scattered again and the
  unfinished candidates resubmitted (bounded).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import time
import uuid
from collections import OrderedDict

from natkit.core.evaluator import EvalResult
from natkit.errors import ConfigError, NatkitError

INSTALL_HINT = "pip install natkit[distributed]"

# worker-side state (lives in each worker process): token -> evaluator, and counters tests can read
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 2
STATS = {"loads": 0, "evals": 0}


def _import_distributed():
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise NatkitError(f"--workers/--scheduler need Dask distributed, which is not installed "
                          f"({exc}); install it with: {INSTALL_HINT}") from None
    return distributed


def _worker_evaluator(token: str, blob: bytes):
    """The evaluator for ``token`` in this worker, unpickled at most once per worker process."""
    ev = _CACHE.get(token)
    if ev is None:
        # the blob was pickled by our own main process (trusted), never a user-supplied file
        ev = pickle.loads(blob)
        _CACHE[token] = ev
        STATS["loads"] += 1
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(token)
    return ev


def evaluate_remote(token: str, blob: bytes, encoding, threads: int) -> EvalResult:
    """One candidate on a worker: the only thing that travels per task is ``encoding``."""
    import torch

    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    ev = _worker_evaluator(token, blob)
    STATS["evals"] += 1
    return ev.evaluate(encoding)


def worker_stats() -> dict:
    import os

    return {"pid": os.getpid(), **STATS, "cached": list(_CACHE)}


class DaskRunner:
    """``map(evaluator, encodings)`` yields ``(index, EvalResult)`` in completion order."""

    def __init__(self, client, *, retries: int = 2, threads: int = 1, rescatter: int = 2):
        self.client, self.retries, self.threads, self.rescatter = client, int(retries), int(threads), rescatter
        self._token = None
        self._blob = None  # future of the pickled evaluator, replicated on every worker
        self.scatters = 0  # how often the shared state was sent (tests and benchmarks read it)
        self.submitted = 0

    # shared state ---------------------------------------------------------------------------
    def _share(self, evaluator, force: bool = False):
        """Send the evaluator once; again only when its pickled state changed (e.g. NAT adapts its
        supernet between iterations) or every copy was lost."""
        blob = pickle.dumps(evaluator, protocol=pickle.HIGHEST_PROTOCOL)
        token = hashlib.sha256(blob).hexdigest()[:20]
        if force or token != self._token or self._blob is None:
            if self._blob is not None:
                self._blob.release()
            self._blob = self.client.scatter(blob, broadcast=True, hash=False)
            self._token = token
            self.scatters += 1
        return self._token, self._blob

    def _resources(self, evaluator):
        device = str(getattr(evaluator, "device", "cpu") or "cpu")
        if not device.startswith("cuda"):
            return None
        workers = self.client.scheduler_info().get("workers", {})
        if not any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers.values()):
            raise ConfigError(f"the evaluator runs on {device!r} but no Dask worker offers a GPU resource; "
                              f"start workers with --resources GPU=1 (or use --device cpu)")
        return {"GPU": 1}

    def _submit(self, token, blob, encoding, resources):
        self.submitted += 1
        return self.client.submit(evaluate_remote, token, blob, list(encoding), self.threads, pure=False,
                                  retries=self.retries, resources=resources,
                                  key=f"natkit-eval-{token[:8]}-{uuid.uuid4().hex[:12]}")

    # the runner contract ----------------------------------------------------------------------
    def map(self, evaluator, encodings):
        from distributed import as_completed

        encodings = list(encodings)
        if not encodings:
            return
        resources = self._resources(evaluator)
        token, blob = self._share(evaluator)
        futures = {self._submit(token, blob, e, resources): i for i, e in enumerate(encodings)}
        pending = set(range(len(encodings)))
        rescatters = 0
        ac = as_completed(list(futures), with_results=False)
        try:
            while pending:
                lost = []
                for fut in ac:
                    i = futures.pop(fut)
                    res = self._result(fut, encodings[i])
                    if res is None:  # the shared evaluator vanished with its workers
                        lost.append(i)
                        continue
                    pending.discard(i)
                    yield i, res
                if not lost:
                    break
                if rescatters >= self.rescatter:
                    for i in lost:
                        pending.discard(i)
                        yield i, EvalResult({}, None, "failed", "lost the shared evaluator on every worker")
                    break
                rescatters += 1
                token, blob = self._share(evaluator, force=True)
                new = {self._submit(token, blob, encodings[i], resources): i for i in lost}
                futures.update(new)
                ac = as_completed(list(new), with_results=False)
        finally:
            for fut in list(futures):
                fut.cancel()

    def _result(self, fut, encoding) -> EvalResult | None:
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        t0 = time.perf_counter()
        try:
            return fut.result()
        except KilledWorker:
            return EvalResult({}, None, "failed", f"worker died while evaluating {encoding} "
                                                  f"({self.retries + 1} attempts)", {}, time.perf_counter() - t0)
        except CancelledError:
            return None
        except Exception as exc:  # escaped the evaluator even after Dask's retries
            msg = str(exc).splitlines()[0] if str(exc) else ""
            if "lost" in msg.lower() and "dependenc" in msg.lower():
                return None
            return EvalResult({}, None, "failed", f"{type(exc).__name__}: {msg}"[:500], {},
                              time.perf_counter() - t0)
        finally:
            fut.release()

    def info(self) -> dict:
        workers = self.client.scheduler_info().get("workers", {})
        return {"workers": len(workers), "scheduler": self.client.scheduler.address,
                "scatters": self.scatters, "submitted": self.submitted}

    def worker_stats(self) -> dict:
        return self.client.run(worker_stats)


def dask_runner(workers: int = 0, scheduler: str | None = None, *, retries: int = 2, threads: int = 1,
                gpus: bool | None = None, timeout: float = 60):
    """``(runner, close)``: a local cluster of ``workers`` single-threaded processes, or ``scheduler``."""
    if scheduler and workers:
        raise ConfigError("give either --workers N (local cluster) or --scheduler ADDR, not both")
    if not scheduler and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries!r}")
    _import_distributed()
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise NatkitError(f"cannot reach Dask scheduler {scheduler!r}: {exc}") from None
        missing = [a for a, ok in client.run(_has_natkit).items() if not ok]
        if missing:
            client.close()
            raise NatkitError(f"Dask workers {', '.join(missing)} of {scheduler} cannot import natkit; "
                              f"install it there ({INSTALL_HINT})")
        return DaskRunner(client, retries=retries, threads=threads), client.close

    if gpus is None:
        import torch

        gpus = torch.cuda.is_available()
    # the scheduler of a local cluster lives in this process: its config bounds reruns after a worker death
    with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                          "distributed.worker.daemon": True}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR, resources={"GPU": 1} if gpus else None,
                               env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
        client = Client(cluster, timeout=timeout)

    def close():
        try:
            client.close()
        finally:
            cluster.close()

    return DaskRunner(client, retries=retries, threads=threads), close


def _has_natkit() -> bool:
    try:
        import natkit  # noqa: F401
    except ImportError:
        return False
    return True
