"""gunicorn settings shared by the three APIs (dev, compose and production).

    gunicorn -c deploy/gunicorn.conf.py 'services.intake.app:create_app()'

Command-line flags override these settings (``make run`` passes ``--bind 127.0.0.1:800x
--workers 1 --threads 4``).

Tracing and fork: the app is *not* preloaded (``preload_app = False``), so gunicorn calls
``create_app()`` in each worker after the fork. ``create_app()`` is where the OpenTelemetry
tracer provider, its OTLP exporter and the instrumentations are created, so every worker gets
its own: the batch span processor's export thread does not survive a fork, and a provider
created in the master before forking would leave the workers with a dead exporter. Do not
turn ``preload_app`` on without moving that set-up into a ``post_fork`` hook.

``WORKER_IN_API=true`` (with ``WEB_CONCURRENCY=1``) runs the service's background loops (consumer, relay,
clocks) in a thread of the one worker, instead of in a ``python -m services.<svc>.worker`` process: one
charity's instance in one worker process (README, "A charity's instance on a small server").

Metrics: every worker process writes its counters to files in ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics``, in
whichever worker answers, sums them (prometheus_client's multiprocess mode; shared.metrics). Without one given,
the master makes a fresh temporary directory for it before any worker starts, and removes it on exit; one given
(a volume, an ``emptyDir``) is emptied when the master starts, since a previous run's files would count again.
Each worker that exits is marked dead there (``child_exit``), so its gauges go with it.
"""

import os
import shutil
import tempfile

# --- metrics ------------------------------------------------------------------------------------------
# Before anything in this process imports prometheus_client: it picks where its values live at import.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="referrals-metrics-")
    os.environ["REFERRALS_METRICS_TEMPORARY_DIR"] = os.environ["PROMETHEUS_MULTIPROC_DIR"]  # removed on_exit


def _empty_metrics_dir() -> None:
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):  # prometheus_client's files, and nothing else that may share the directory
            os.remove(os.path.join(path, name))


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    temporary = os.environ.get("REFERRALS_METRICS_TEMPORARY_DIR")
    if temporary and temporary == os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(temporary, ignore_errors=True)


# --- where and how many ---------------------------------------------------------------------
bind = [f"0.0.0.0:{int(os.environ.get('PORT', '8000'))}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Plain sync workers. Passing --threads N (N > 1) makes gunicorn switch to its threaded
# "gthread" worker, which is what `make run` does to keep one process per API.
worker_class = "sync"
preload_app = False  # see the module docstring: create_app() must run after the fork

# --- timeouts ---------------------------------------------------------------------------------
timeout = 30  # a worker silent for this long is killed and replaced
graceful_timeout = 20  # on SIGTERM, in-flight requests get this long to finish
keepalive = 5

# The worker heartbeat file: tmpfs avoids stalls on a container's overlay filesystem.
if os.path.isdir("/dev/shm"):  # noqa: S108 - a path gunicorn's own docs recommend
    worker_tmp_dir = "/dev/shm"  # noqa: S108

# gunicorn >= 25.1 opens a control socket at $HOME/.gunicorn/gunicorn.ctl by default: with three
# APIs on one machine they would share (and unlink) the same path, and nothing here uses it.
control_socket_disable = True

# --- logging -------------------------------------------------------------------------------------
# JSON lines on stdout, as the services' own (shared.logs.GunicornLogger): time with its zone, and on the access
# line method, path *only* (no query string, referer, user agent or client address: URLs must never carry
# personal data, and if one ever did, it would not reach the logs from here), status, size, duration and the
# request's trace id.
logger_class = "shared.logs.GunicornLogger"
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


# --- the worker's loops inside the API (WORKER_IN_API=true) --------------------------------------------


def on_starting(server):
    """Empty the metrics directory, and refuse a WORKER_IN_API set-up that cannot work, with one line and the
    fix, before any worker starts."""
    _empty_metrics_dir()
    # The master imports only what it needs: the loops (and with them every service's code and pika, ~45 MB)
    # only when WORKER_IN_API asks for them, and then only to check the set-up; the workers load the app.
    from shared.config import ConfigError, wants_worker_in_api

    try:
        if wants_worker_in_api():
            from services.workers import LOOPS
            from shared.logs import service_of
            from shared.messaging.worker import check_worker_in_api

            check_worker_in_api(service_of(server.app.app_uri), server.cfg.workers, LOOPS.keys())
    except ConfigError as exc:
        raise SystemExit(f"gunicorn: {exc}") from None


def post_worker_init(worker):
    from shared.config import wants_worker_in_api

    if wants_worker_in_api():
        from services.workers import LOOPS
        from shared.logs import service_of
        from shared.messaging.worker import InApiLoops

        worker.in_api_loops = InApiLoops(service_of(worker.app.app_uri), worker.cfg.workers, LOOPS).start()


def worker_exit(server, worker):
    loops = getattr(worker, "in_api_loops", None)
    if loops is not None:
        loops.stop()
