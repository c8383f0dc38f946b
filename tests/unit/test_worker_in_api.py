"""WORKER_IN_API: the worker's loops inside the API's one gunicorn worker, refused with the fix otherwise."""

from __future__ import annotations

import threading

import pytest

from services.workers import LOOPS
from shared.config import ConfigError, wants_worker_in_api
from shared.messaging.worker import InApiLoops, Loop


@pytest.mark.parametrize(("value", "wanted"), [("true", True), ("1", True), ("false", False), ("", False)])
def test_worker_in_api_is_read_as_a_boolean(value, wanted):
    assert wants_worker_in_api({"WORKER_IN_API": value}) is wanted
    assert wants_worker_in_api({}) is False


def test_a_malformed_worker_in_api_names_the_variable():
    with pytest.raises(ConfigError, match="WORKER_IN_API must be true or false, not 'sometimes'"):
        wants_worker_in_api({"WORKER_IN_API": "sometimes"})


def unbuildable() -> dict[str, Loop]:
    raise AssertionError("a refused set-up builds no loops")


def test_more_than_one_gunicorn_worker_is_refused_with_the_fix():
    # Two workers would be two competing consumers of one queue: events of one publisher lose their order.
    with pytest.raises(ConfigError, match="needs exactly one gunicorn worker, not 2: set WEB_CONCURRENCY=1"):
        InApiLoops("kit", workers=2, builders={"kit": unbuildable})


def test_an_unknown_service_is_refused_and_the_choices_named():
    with pytest.raises(ConfigError, match="no worker for 'billing'; choose one of kit, other"):
        InApiLoops("billing", workers=1, builders={"kit": unbuildable, "other": unbuildable})


def test_the_platform_offers_each_services_loops():
    # deploy/gunicorn.conf.py passes these; building one would need the service's broker and database.
    assert set(LOOPS) == {"intake", "advocacy", "notifications"}
    with pytest.raises(ConfigError, match="choose one of intake, advocacy, notifications"):
        InApiLoops("billing", workers=1, builders=LOOPS)


def test_the_services_loops_run_on_a_thread_until_stopped():
    started, ended = threading.Event(), threading.Event()

    def loop(stop: threading.Event) -> None:
        started.set()
        stop.wait()
        ended.set()

    loops = InApiLoops("kit", workers=1, builders={"kit": lambda: {"loop": loop}}).start()
    assert started.wait(5) and not ended.is_set()
    loops.stop(timeout=5)
    assert ended.is_set()


def test_log_level_is_read_in_any_case_and_a_wrong_one_names_the_variable():
    import logging

    from shared.logs import configure_logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging("test", "info")  # as gunicorn's own --log-level is usually written
        assert root.level == logging.INFO
        with pytest.raises(ConfigError, match="LOG_LEVEL must be one of DEBUG, INFO"):
            configure_logging("test", "chatty")
    finally:
        root.handlers[:], root.level = handlers, level
