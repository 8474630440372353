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
- one candidate per worker thread is in flight, so a dead worker takes only the candidate it was
  running with it and the rerun count blames that candidate, not its queued neighbours.

The shared evaluator is installed as a Dask worker plugin: the scheduler hands it to every worker
that is running or joins later (a restarted worker included), so it is never lost with a worker and
never travels with a task.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import time
import uuid
from collections import OrderedDict, deque

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


class MissingSharedState(RuntimeError):
    """A worker got a candidate before the evaluator it needs (resubmitted, not counted as a failure)."""


def _install(token: str, evaluator) -> None:
    if token in _CACHE:
        _CACHE.move_to_end(token)
        return
    # Dask's own transport brought the evaluator here from our main process; natkit unpickles nothing
    _CACHE[token] = evaluator
    STATS["loads"] += 1
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op thread count, only when it differs (one call per worker, not per task)."""
    import torch

    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _shared_state_plugin(token: str, evaluator, threads: int = 0):
    from distributed.diagnostics.plugin import WorkerPlugin

    class SharedEvaluator(WorkerPlugin):
        """Installs the evaluator (and the worker's torch thread count) once in every worker, present
        and future."""

        name = f"natkit-evaluator-{token}"

        def __init__(self):
            self.token, self.evaluator, self.threads = token, evaluator, threads

        def setup(self, worker):
            set_torch_threads(self.threads)
            _install(self.token, self.evaluator)

        def teardown(self, worker):
            _CACHE.pop(self.token, None)

    return SharedEvaluator()


def evaluate_remote(token: str, encoding, threads: int) -> EvalResult:
    """One candidate on a worker: the only thing that travels per task is ``encoding``."""
    set_torch_threads(threads)
    ev = _CACHE.get(token)
    if ev is None:
        raise MissingSharedState(token)
    STATS["evals"] += 1
    return ev.evaluate(encoding)


def worker_stats() -> dict:
    import os

    return {"pid": os.getpid(), **STATS, "cached": list(_CACHE)}


class DaskRunner:
    """``map(evaluator, encodings)`` yields ``(index, EvalResult)`` in completion order."""

    def __init__(self, client, *, retries: int = 2, threads: int = 0, max_misses: int = 3):
        self.client, self.retries, self.threads, self.max_misses = client, int(retries), int(threads), max_misses
        self._token = None
        self._plugin = None  # name of the worker plugin holding the current evaluator
        self.shared_bytes = 0
        self.shares = 0  # how often the shared state was sent (tests and benchmarks read it)
        self.submitted = 0

    # shared state ---------------------------------------------------------------------------
    def _share(self, evaluator) -> str:
        """Send the evaluator to every worker once; again only when its pickled state changed
        (e.g. NAT adapts its supernet between iterations)."""
        try:
            blob = pickle.dumps(evaluator, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise NatkitError(f"the {type(evaluator).__name__} evaluator cannot be sent to Dask workers "
                              f"({str(exc).splitlines()[0]}); run this method without --workers/--scheduler") from None
        token = hashlib.sha256(blob).hexdigest()[:20]
        if token != self._token:
            plugin = _shared_state_plugin(token, evaluator, self.threads)
            self.client.register_plugin(plugin)
            if self._plugin is not None:
                try:
                    self.client.unregister_worker_plugin(self._plugin)
                except Exception:  # an old version's plugin already gone: nothing to free
                    pass
            self._token, self._plugin = token, plugin.name
            self.shares += 1
            self.shared_bytes = len(blob)
        return token

    def share(self, evaluator) -> str:
        """Public form of the one-off shared-state send (benchmarks time it): installs ``evaluator`` on
        every worker unless its pickled state is already there; returns its token."""
        return self._share(evaluator)

    def _resources(self, evaluator):
        device = str(getattr(evaluator, "device", "cpu") or "cpu")
        if not device.startswith("cuda"):
            return None
        workers = self.client.scheduler_info().get("workers", {})
        if not any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers.values()):
            raise ConfigError(f"the evaluator runs on {device!r} but no Dask worker offers a GPU resource; "
                              f"start workers with --resources GPU=1 (or use --device cpu)")
        return {"GPU": 1}

    def _submit(self, token, encoding, resources):
        self.submitted += 1
        return self.client.submit(evaluate_remote, token, list(encoding), self.threads, pure=False,
                                  retries=self.retries, resources=resources,
                                  key=f"natkit-eval-{token[:8]}-{uuid.uuid4().hex[:12]}")

    # the runner contract ----------------------------------------------------------------------
    def _capacity(self) -> int:
        """Worker threads in the cluster (from the client's cached scheduler view)."""
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))

    def map(self, evaluator, encodings):
        """Keep exactly one candidate per worker thread in flight: a worker that dies then takes only
        the candidate it was running with it (so the bounded rerun count blames the right one), and
        a free worker picks the next candidate at once."""
        from distributed import as_completed

        # pulled lazily: the caller may claim each candidate in a shared archive only as a worker frees up
        source = iter(encodings)
        encodings: list = []
        queue: deque = deque()  # indices to resubmit
        running: dict = {}  # future -> index
        misses: list = []
        ac = as_completed()
        resources = token = None

        def fill():
            nonlocal resources, token
            cap = self._capacity()
            while len(running) < cap:
                if queue:
                    i = queue.popleft()
                else:
                    enc = next(source, None)
                    if enc is None:
                        return
                    encodings.append(enc)
                    misses.append(0)
                    i = len(encodings) - 1
                if token is None:
                    resources = self._resources(evaluator)
                    token = self._share(evaluator)
                fut = self._submit(token, encodings[i], resources)
                running[fut] = i
                ac.add(fut)

        fill()
        try:
            for fut in ac:
                i = running.pop(fut)
                res = self._result(fut, encodings[i])
                if res is None and misses[i] < self.max_misses:  # worker without the evaluator yet
                    misses[i] += 1
                    queue.appendleft(i)
                elif res is None:
                    yield i, EvalResult({}, None, "failed", "no worker received the shared evaluator")
                else:
                    yield i, res
                fill()
        finally:
            for fut in list(running):
                fut.cancel()

    def _result(self, fut, encoding) -> EvalResult | None:
        from concurrent.futures import CancelledError

        from distributed import KilledWorker

        t0 = time.perf_counter()
        try:
            return fut.result()
        except KilledWorker:
            # rerun by the scheduler up to its allowed-failures (= retries on natkit's local cluster)
            return EvalResult({}, None, "failed", f"worker died while evaluating {encoding}, on every rerun",
                              {}, time.perf_counter() - t0)
        except (CancelledError, MissingSharedState):
            return None
        except Exception as exc:  # escaped the evaluator even after Dask's retries
            msg = str(exc).splitlines()[0] if str(exc) else ""
            return EvalResult({}, None, "failed", f"{type(exc).__name__}: {msg}"[:500], {},
                              time.perf_counter() - t0)
        finally:
            fut.release()

    def info(self) -> dict:
        workers = self.client.scheduler_info().get("workers", {})
        return {"workers": len(workers), "scheduler": self.client.scheduler.address,
                "shares": self.shares, "submitted": self.submitted}

    def worker_stats(self) -> dict:
        return self.client.run(worker_stats)


def worker_threads(workers: int, cores: int | None = None) -> int:
    """Torch threads per local worker: the cores shared out, at least one (no oversubscription)."""
    import os

    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


def dask_runner(workers: int = 0, scheduler: str | None = None, *, retries: int = 2, threads: int | None = None,
                gpus: bool | None = None, timeout: float = 60):
    """``(runner, close)``: a local cluster of ``workers`` processes (one task at a time each, with
    ``threads`` torch threads, default ``cores // workers``), or an existing ``scheduler`` (torch's
    default threads on its workers unless ``threads`` is given)."""
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
        return DaskRunner(client, retries=retries, threads=threads or 0), client.close

    threads = threads or worker_threads(workers)
    if gpus is None:
        import torch

        gpus = torch.cuda.is_available()
    # The scheduler of a local cluster lives in this process: its config bounds reruns after a worker death.
    # Dask's default worker environment sets MALLOC_TRIM_THRESHOLD_, which switches off glibc's dynamic
    # mmap threshold: every mid-size tensor then costs an mmap/munmap and fresh page faults, and we
    # measured candidate evaluations 2x slower than in-process. Keep only the thread limits.
    # A worker runs its task in a non-main thread, which glibc serves from a separate mmap-backed arena.
    # In one process, width candidates ran 1.17x (6 rounds) / 1.00x (4 rounds) slower in a second thread
    # than in the main one, and 0.90x / 0.98x with MALLOC_ARENA_MAX=1 (loaded machine, so indicative only;
    # benchmarks.scale.throughput's in-worker claim is the check).
    env = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env["MALLOC_ARENA_MAX"] = "1"
    with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                          "distributed.nanny.pre-spawn-environ": env}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=logging.ERROR, resources={"GPU": 1} if gpus else None)
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
