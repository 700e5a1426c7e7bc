"""The Celery side of bench/peers: the app and the two workloads, imported by the worker (-A).

The broker is the Redis URL in KG_CELERY_BROKER. Each task, once its work is done, increments
the Redis counter `kgbench:done` so the bench can count finished tasks from outside, the way
kgflow's bench counts done chunks through /metrics (no result backend: results are ignored).
"""
import os
import time

import redis
from celery import Celery

BROKER = os.environ.get("KG_CELERY_BROKER", "redis://127.0.0.1:6379/0")
DONE_KEY = "kgbench:done"

app = Celery("kgbench", broker=BROKER)
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False, broker_connection_retry_on_startup=True)

_counter = None


def _done():
    global _counter
    if _counter is None:  # one connection per worker process, made after the fork
        _counter = redis.Redis.from_url(BROKER)
    _counter.incr(DONE_KEY)


@app.task(name="kgbench.noop")
def noop():
    _done()


@app.task(name="kgbench.sleep")
def sleep_ms(ms):
    time.sleep(ms / 1000.0)
    _done()
