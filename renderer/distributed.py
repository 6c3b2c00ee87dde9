"""Render workers: Ray actors that each load the network once and render shards of requests.

Ray is imported only here and only when a pool starts, so the window and the other commands
never pay for it. One worker class serves both ways of running: in this process (no Ray), or
as a Ray actor per worker on this machine or on a cluster. Only the caller writes files; the
workers send back pixels or encoded file bytes, so a cluster needs no shared output folder.
"""

import contextlib
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A local cluster's shared-memory store: shards pass through it a few at a time, and Ray
# spills to disk beyond it (Ray's floor is 75 MiB).
OBJECT_STORE_BYTES = 128 << 20
# A worker process that dies (killed, out of memory) is restarted this often; Ray retries its
# unfinished shards on the new one.
MAX_RESTARTS = 3
# Shards each worker holds at once: the next one is waiting while the current one renders.
SHARDS_IN_FLIGHT = 2
# How long workers may take to start and load the network before the job gives up
# (a cluster without the resources asked for would otherwise wait for ever).
START_TIMEOUT_S = 180
# On a CPU-only cluster without --workers: torch threads per worker. Separate processes of one
# thread each scale better than threads inside one process (bench/batch.py).
CPU_THREADS_PER_WORKER = 1


class WorkerError(ValueError):
    """The workers could not do the job (cluster unreachable, a worker died too often);
    one line, reported like other errors of the command line."""


class RenderWorker:
    """Renders lists of (key, request) into (key, picture) or (key, file bytes).

    In a Ray actor: one per process, with `threads` torch threads. In this process: threads None
    keeps the caller's setting.
    """

    def __init__(self, threads=None, renderer=None, folder=None):
        from models import runtime
        from renderer.renderer import Renderer

        if folder and os.path.isdir(folder):  # relative network paths mean what they mean to the command
            os.chdir(folder)
        runtime.tune_cpu(threads)
        # Each request is rendered once: no memory spent on going back to earlier frames.
        self.renderer = renderer or Renderer(recent_frames_bytes=0, recent_captures_bytes=0)

    def ready(self, request):
        """Load the request's network now; (pid, sha256 of the network file this worker reads)."""
        from renderer import export_jobs, png_metadata

        self.renderer.load(request)
        model = export_jobs.model_path_of(request)
        return os.getpid(), png_metadata.file_sha256(model)

    def images(self, items):
        """[(key, uint8 [H, W, 3])] for [(key, request)]."""
        from renderer import export_jobs

        return [(key, export_jobs.render_image(self.renderer, request)) for key, request in items]

    def files(self, items, fmt):
        """[(key, bytes of a PNG or JPEG that carries its request)] for [(key, request)]."""
        from renderer import batch, export_jobs

        return [(key, batch.encode_image(export_jobs.render_image(self.renderer, request), request, fmt))
                for key, request in items]


class InProcessPool:
    """The workers' interface on this process: no Ray, one renderer (the single-process output)."""

    workers = 1

    def __init__(self, request, renderer=None):
        self.worker = RenderWorker(renderer=renderer)
        self.worker.ready(request)

    def run(self, method, shards, *args):
        """Yield (shard index, result) for each shard, in order."""
        for index, shard in enumerate(shards):
            yield index, getattr(self.worker, method)(shard, *args)

    def close(self):
        pass


class RayPool:
    """Ray actors, each a RenderWorker; shards go to whichever worker is free."""

    def __init__(self, request, workers=None, address="local"):
        import ray

        self.ray = ray
        self.started_ray = False
        self.actors = []
        self._connect(address, workers)
        try:
            self._start_actors(request, workers)
        except BaseException:
            self.close()
            raise

    def _connect(self, address, workers):
        if address != "local":
            _check_reachable(address)
        if self.ray.is_initialized():  # a caller (a test, a notebook) already joined a cluster: use it
            return
        options = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                       # The workers import this project's modules from its folder (on a cluster: the
                       # same path on every node).
                       job_config=self.ray.job_config.JobConfig(code_search_path=[str(ROOT)]))
        if address == "local":
            cpus = os.cpu_count() or 1
            options.update(address="local", num_cpus=max(cpus, workers or 0),
                           object_store_memory=OBJECT_STORE_BYTES)
        else:
            options.update(address=address)
        try:
            self.ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as error:
            raise WorkerError(f"cannot start or reach the Ray cluster at {address}: {_first_line(error)}") from None
        self.started_ray = True

    def _start_actors(self, request, workers):
        ray = self.ray
        count, options, threads = worker_plan(workers, ray.cluster_resources(), _largest_node_cpus(ray))
        actor_class = ray.remote(RenderWorker).options(max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS,
                                                       **options)
        self.actors = [actor_class.remote(threads, None, os.getcwd()) for _ in range(count)]
        from renderer import export_jobs, png_metadata

        expected = png_metadata.file_sha256(export_jobs.model_path_of(request))
        ready = [actor.ready.remote(request) for actor in self.actors]
        done, _ = ray.wait(ready, num_returns=len(ready), timeout=START_TIMEOUT_S)
        if len(done) < len(ready):
            raise WorkerError(f"{len(ready) - len(done)} of {count} workers did not start within "
                              f"{START_TIMEOUT_S} s (does the cluster have {options} free for each?)")
        answers = self._get(done)
        self.pids = [pid for pid, _sha in answers]  # the workers' processes (on their nodes)
        for _pid, sha in answers:
            if sha != expected:
                raise WorkerError(f"a worker reads a different network file at {export_jobs.model_path_of(request)} "
                                  f"(sha256 {sha[:12]}... != {expected[:12]}...)")
        self.workers = count

    def run(self, method, shards, *args):
        """Yield (shard index, result) as shards finish (in any order)."""
        ray = self.ray
        shards = list(shards)
        pending = {}  # object ref -> (shard index, actor)
        queue = iter(enumerate(shards))

        def submit(actor):
            for index, shard in queue:
                pending[getattr(actor, method).remote(shard, *args)] = (index, actor)
                return

        for actor in self.actors:
            for _ in range(SHARDS_IN_FLIGHT):
                submit(actor)
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            index, actor = pending.pop(finished[0])
            result = self._get(finished[0])
            submit(actor)
            yield index, result

    def _get(self, refs):
        ray = self.ray
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError as error:  # the render itself failed: its own message
            cause = getattr(error, "cause", None)
            if isinstance(cause, (ValueError, OSError)):
                raise cause from None
            raise WorkerError(f"a worker failed: {_first_line(cause or error)}") from None
        except ray.exceptions.RayActorError as error:
            raise WorkerError(f"a worker died {MAX_RESTARTS + 1} times; giving up "
                              f"(out of memory? {_first_line(error)})") from None

    def close(self):
        """Stop the workers (and the local cluster this pool started); unfinished shards are dropped."""
        if self.started_ray:  # the job ends, and Ray ends its actors with it
            self.ray.shutdown()
            self.started_ray = False
        else:  # a cluster that outlives this job: free its workers now
            for actor in self.actors:
                try:
                    self.ray.kill(actor, no_restart=True)
                except Exception:  # already gone
                    pass
        self.actors = []


def worker_plan(workers, resources, node_cpus):
    """(worker count, Ray resource options per worker, torch threads per worker).

    With GPUs: one worker per GPU (or `workers` sharing them). Without: `workers` processes
    dividing the CPUs, or one per CPU_THREADS_PER_WORKER CPUs; never more CPUs for one worker
    than its node has.
    """
    gpus = resources.get("GPU", 0)
    cpus = max(resources.get("CPU", 1), 1)
    if gpus >= 1:
        count = workers or int(gpus)
        return count, {"num_gpus": min(1.0, gpus / count), "num_cpus": min(1.0, cpus / count)}, 1
    count = workers or max(1, int(cpus) // CPU_THREADS_PER_WORKER)
    share = min(cpus / count, node_cpus or cpus)
    if share >= 1:
        share = int(share)  # Ray takes fractions of one CPU only
    return count, {"num_cpus": share}, max(1, int(share))


def _largest_node_cpus(ray):
    return max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node.get("Alive")), default=0)


@contextlib.contextmanager
def open_pool(request, workers=None, ray_address=None, renderer=None):
    """The workers for a job, stopped when the block ends (a Ctrl+C included): Ray actors for
    --workers N / --ray ADDRESS|local, else this process (with `renderer` when given)."""
    pool = start_pool(request, workers, ray_address, renderer)
    try:
        yield pool
    finally:
        pool.close()


def start_pool(request, workers=None, ray_address=None, renderer=None):
    """See open_pool; the caller closes the pool."""
    if workers is not None and workers < 1:
        raise ValueError(f"--workers: must be at least 1, got {workers}")
    if not workers and not ray_address:
        return InProcessPool(request, renderer)
    # Before Ray loads: no usage report and no question about it.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray  # noqa: F401
    except ImportError:
        raise WorkerError("--workers/--ray need Ray: pip install -r requirements.txt") from None
    return RayPool(request, workers, ray_address or "local")


def _check_reachable(address, timeout=5):
    """WorkerError at once when nothing listens at HOST:PORT (ray.init would retry for minutes)."""
    import socket

    host, _, port = address.rpartition("://")[2].rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' and other forms: Ray resolves them
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise WorkerError(f"cannot reach the Ray cluster at {address} ({error.strerror or error}); "
                          f"start one with `ray start --head`, or use --ray local") from None


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

