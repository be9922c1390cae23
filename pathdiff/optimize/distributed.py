"""Several processes for one optimization: the views split over them (``--workers N``).

Each process (a *rank*) holds the whole scene and the same variables, renders only its share
of the views, ``range(rank, n_views, size)``, with the seeds a single process would use, and
back-propagates the sum of its views' losses divided by the number of *all* views. The ranks
then add up (all-reduce) the gradients and the loss, so that every rank holds what one
process would have computed, takes the same Adam step and stays in step with the others: the
trajectory is that of one process, up to the order of float additions.

Everything distributed is in this module:

* :class:`Group` (one process: nothing to exchange) and :class:`TorchGroup`
  (``torch.distributed``: gloo on CPU, NCCL for the ``cuda`` variants);
* :func:`check`: the inputs a distributed run needs, checked before anything is loaded;
* :func:`processes`: the context :func:`pathdiff.optimize.run` runs in. It joins a
  ``torchrun`` job (``WORLD_SIZE`` in the environment) or starts ``workers - 1`` worker
  processes itself (this process is then rank 0), and turns a worker's failure into one line
  naming its rank;
* :func:`worker_main`: the entry point of a started worker.

torch is imported here only, and only when ``workers > 1``.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import drjit as dr
import mitsuba as mi
import numpy as np

from ..inputs import InputError
from ..scene import ParamSpec

#: how long a collective operation may wait for the other ranks (a whole iteration of the
#: slowest one); a rank that dies is noticed at once (its connections close)
TIMEOUT = timedelta(minutes=30)
#: seconds the started workers may take to import, load the scene and connect
STARTUP = 300.0
#: seconds to wait for the workers to exit after the run
SHUTDOWN = 60.0
TORCH_MISSING = "--workers needs PyTorch: pip install 'pathdiff[torch]'"
#: what a started worker runs (``python -c``)
WORKER_CODE = "from pathdiff.optimize.distributed import worker_main; worker_main()"


class WorkerError(RuntimeError):
    """A worker process failed; the message (one line) names its rank and its error."""


# ---- Groups ---------------------------------------------------------------------------------
class Group:
    """The processes of a run as this one sees them; this base class is the single process,
    where there is nothing to exchange."""

    rank: int = 0
    size: int = 1

    def views(self, n: int) -> range:
        """The views (target indices) this rank renders, of ``n``."""
        return range(self.rank, n, self.size)

    def allreduce_grads(self, variables: Sequence) -> None:
        """Replace each variable's gradient by its sum over the ranks."""

    def allreduce_loss(self, loss: float) -> float:
        """The sum of ``loss`` over the ranks."""
        return loss

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any rank (so that all ranks stop together)."""
        return flag

    def share(self, obj):
        """Rank 0's ``obj`` on every rank (also a barrier)."""
        return obj


class TorchGroup(Group):
    """The ranks of an initialized ``torch.distributed`` process group."""

    def __init__(self, rank: int, size: int, device: str = "cpu"):
        import torch

        self.torch, self.dist = torch, torch.distributed
        self.rank, self.size, self.device = rank, size, device

    def _sum(self, x: np.ndarray) -> np.ndarray:
        t = self.torch.from_numpy(np.ascontiguousarray(x)).to(self.device)
        self.dist.all_reduce(t)
        return t.cpu().numpy()

    def allreduce_grads(self, variables: Sequence) -> None:
        grads = [_grad(v.latent) for v in variables]
        if not grads:
            return
        total, start = self._sum(np.concatenate(grads)), 0
        for v, g in zip(variables, grads):
            dr.set_grad(v.latent, type(v.latent)(total[start : start + g.size]))
            start += g.size

    def allreduce_loss(self, loss: float) -> float:
        return float(self._sum(np.array([loss], dtype=np.float64))[0])

    def any(self, flag: bool) -> bool:
        return bool(self._sum(np.array([int(flag)], dtype=np.int64))[0] > 0)

    def share(self, obj):
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]


def _grad(latent) -> np.ndarray:
    """The gradient of a latent value, flat float32, as wide as the value (a variable that
    no view of this rank sees has a zero gradient)."""
    g = np.array(dr.grad(latent), dtype=np.float32).ravel()
    return np.ascontiguousarray(np.broadcast_to(g, (dr.width(latent),)))


# ---- Checks ---------------------------------------------------------------------------------
def launched_by_torchrun() -> bool:
    """Whether this process is one of a ``torchrun`` job (its environment names the job)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def env_rank() -> int:
    """This process's rank in a ``torchrun`` job (0 otherwise)."""
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def check(scene, params: Sequence, targets: Sequence, cfg) -> None:
    """Refuse, in one line, a ``workers`` setting this run cannot use (nothing loaded yet)."""
    if cfg.workers == 1:
        return
    if cfg.workers > len(targets):
        raise InputError(
            f"--workers {cfg.workers} is more than the {len(targets)} target(s): each process "
            "renders whole views; use --workers <= the number of --target"
        )
    if launched_by_torchrun():
        _check_torchrun(cfg.workers)
    else:  # this process starts the workers: they get the inputs by pickle
        _check_sendable(scene, params, cfg)
    try:
        import torch.distributed  # noqa: F401
    except ImportError:
        raise InputError(TORCH_MISSING) from None


def _check_sendable(scene, params: Sequence, cfg) -> None:
    if isinstance(scene, mi.Scene):
        raise InputError(
            "--workers needs the scene as an XML path (each process loads it), not a mi.Scene"
        )
    if any(isinstance(a, ParamSpec) for a in params):
        raise InputError(
            "--workers needs parameters as --param strings (e.g. 'occluder.translate.x'), "
            "not ParamSpec objects"
        )
    if callable(cfg.loss):
        raise InputError("--workers needs the loss by name (l1, l2, ...), not a callable")
    if cfg.callback is not None:
        raise InputError(
            "--workers cannot send a callback to other processes: pass callback=None "
            "(the losses are in the result and trajectory.csv)"
        )


def _check_torchrun(workers: int) -> None:
    size = int(os.environ["WORLD_SIZE"])
    if size != workers:
        raise InputError(
            f"torchrun started {size} processes but --workers is {workers}: give --workers {size}"
        )
    if mi.variant().startswith("cuda") and os.environ.get("LOCAL_WORLD_SIZE", "1") != "1":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
        if visible == "" or "," in visible:
            raise InputError(
                "Dr.Jit uses the first visible GPU: give each torchrun process its own, "
                "CUDA_VISIBLE_DEVICES=$LOCAL_RANK (see docs/distributed.md)"
            )


# ---- Processes ------------------------------------------------------------------------------
@contextmanager
def processes(p, scene, params: Sequence) -> Iterator[Group]:
    """The group plan ``p`` runs in: one process, a ``torchrun`` job, or ``p.cfg.workers``
    processes started here (``scene`` and ``params`` are the caller's, sent to them)."""
    if p.cfg.workers == 1:
        yield Group()
    elif launched_by_torchrun():
        local = int(os.environ.get("LOCAL_WORLD_SIZE", p.cfg.workers))
        with _threads(local), _joined_torchrun() as group:
            yield group
    else:
        with _threads(p.cfg.workers), _started(p, scene, params) as group:
            yield group


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def threads(local: int) -> int:
    """Dr.Jit threads of each of ``local`` processes on this machine: the cores shared, but
    at least 2 (with 1, Mitsuba 3.9's EXR writer waits forever for a worker thread)."""
    return max(2, cores() // local)


@contextmanager
def _threads(local: int) -> Iterator[None]:
    """Dr.Jit's threads shared among the ``local`` processes of this machine."""
    before = dr.thread_count()
    dr.set_thread_count(threads(local))
    try:
        yield
    finally:
        dr.set_thread_count(before)


def backend() -> str:
    return "nccl" if mi.variant().startswith("cuda") else "gloo"


def device() -> str:
    return "cuda:0" if mi.variant().startswith("cuda") else "cpu"


@contextmanager
def _joined_torchrun() -> Iterator[Group]:
    import torch.distributed as dist

    dist.init_process_group(backend(), init_method="env://", timeout=TIMEOUT)
    try:
        yield TorchGroup(dist.get_rank(), dist.get_world_size(), device())
    finally:
        dist.destroy_process_group()


@contextmanager
def _started(p, scene, params: Sequence) -> Iterator[Group]:
    """Start ``workers - 1`` processes, be rank 0 among them; any failure names its rank."""
    import torch.distributed as dist

    from . import rundir

    rundir.claim(p)  # a bad -o or checkpoint fails before any process starts
    if p.cfg.resume:
        rundir.read_checkpoint(p)
    size, tmp = p.cfg.workers, Path(tempfile.mkdtemp(prefix="pathdiff-workers-"))
    store = dist.TCPStore("127.0.0.1", 0, size, is_master=True, wait_for_workers=False,
                          timeout=TIMEOUT)  # fmt: skip
    procs: dict[int, subprocess.Popen] = {}
    try:
        _write_job(tmp, p, scene, params)
        procs = {r: _start(tmp, r, size, store.port) for r in range(1, size)}
        _await_workers(store, procs, tmp)
        dist.init_process_group(backend(), store=store, rank=0, world_size=size, timeout=TIMEOUT)
        try:
            yield TorchGroup(0, size, device())
        except BaseException as e:
            # a collective that failed (RuntimeError) most likely lost a worker: name it
            failure = _failure(procs, tmp, wait=10.0 if isinstance(e, RuntimeError) else 0.0)
            if failure:
                raise WorkerError(failure) from e
            raise
        finally:
            dist.destroy_process_group()
    finally:
        _stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)


def _write_job(tmp: Path, p, scene, params: Sequence) -> None:
    """What a worker needs to plan the same run: the caller's inputs, the loaded targets."""
    job = {
        "scene": os.fspath(scene),
        "params": list(params),
        "targets": [replace(t, _cache={}) for t in p.targets],
        "settings": replace(p.cfg, progress=False, callback=None),
    }
    (tmp / "job.pkl").write_bytes(pickle.dumps(job))


def _start(tmp: Path, rank: int, size: int, port: int) -> subprocess.Popen:
    """Worker ``rank``: this Python, this pathdiff, this variant; output to ``rank<r>.log``."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PATHDIFF_VARIANT": mi.variant()}
    env["PYTHONPATH"] = root if not path else root + os.pathsep + path
    if mi.variant().startswith("cuda"):  # one GPU per process: Dr.Jit takes the first visible
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        env["CUDA_VISIBLE_DEVICES"] = visible.split(",")[rank] if visible else str(rank)
    with open(tmp / f"rank{rank}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER_CODE, str(tmp), str(rank), str(size), str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _await_workers(store, procs: dict[int, subprocess.Popen], tmp: Path) -> None:
    """Wait until every worker has planned the run and connected (or one has failed)."""
    deadline = time.monotonic() + STARTUP
    keys = [f"joined{r}" for r in procs]
    while not store.check(keys):
        failure = _failure(procs, tmp)
        if failure:
            raise WorkerError(failure)
        if time.monotonic() > deadline:
            raise WorkerError(f"the workers did not start within {STARTUP:.0f} s")
        time.sleep(0.05)


def _failure(procs: dict[int, subprocess.Popen], tmp: Path, wait: float = 0.0) -> str | None:
    """One line about the first worker that exited with an error (waiting up to ``wait`` s
    for one to exit), or ``None``."""
    deadline = time.monotonic() + wait
    while True:
        failed = {r: p.returncode for r, p in procs.items() if p.poll() not in (None, 0)}
        if failed or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if not failed:
        return None
    rank = min(failed)
    return f"worker rank {rank} failed (exit code {failed[rank]}): {_last_error(tmp, rank)}"


def _last_error(tmp: Path, rank: int) -> str:
    err, log = tmp / f"rank{rank}.err", tmp / f"rank{rank}.log"
    if err.is_file():
        return err.read_text().strip()
    lines = log.read_text(errors="replace").split("\n") if log.is_file() else []
    lines = [line.strip() for line in lines if line.strip()]
    return lines[-1] if lines else "no output"


def _stop(procs: dict[int, subprocess.Popen]) -> None:
    """Let the workers exit (they finish with rank 0), or end them."""
    deadline = time.monotonic() + SHUTDOWN
    for rank, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            warnings.warn(f"worker rank {rank} did not exit; killed", stacklevel=2)


# ---- The worker -----------------------------------------------------------------------------
def worker_main() -> None:
    """Entry point of a started worker: ``JOB_DIR RANK SIZE PORT`` in ``sys.argv``."""
    tmp, (rank, size, port) = Path(sys.argv[1]), map(int, sys.argv[2:5])
    warnings.simplefilter("ignore")  # rank 0 reports
    try:
        _work(tmp, rank, size, port)
    except BaseException as e:
        lines = str(e).strip().splitlines()
        (tmp / f"rank{rank}.err").write_text(f"{type(e).__name__}: {lines[0] if lines else ''}")
        raise


def _work(tmp: Path, rank: int, size: int, port: int) -> None:
    import torch.distributed as dist

    from . import plan, run

    dr.set_thread_count(threads(size))
    job = pickle.loads((tmp / "job.pkl").read_bytes())
    p = plan(job["scene"], job["params"], job["targets"], job["settings"])
    store = dist.TCPStore("127.0.0.1", port, size, is_master=False, timeout=TIMEOUT)
    store.set(f"joined{rank}", "1")
    dist.init_process_group(backend(), store=store, rank=rank, world_size=size, timeout=TIMEOUT)
    try:
        run(p, TorchGroup(rank, size, device()))
    finally:
        dist.destroy_process_group()
