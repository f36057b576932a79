"""Fixtures shared by the unit tests."""

import pytest

from streams.embedded import ChildService, free_port, redis_command


@pytest.fixture()
def redis_server(tmp_path):
    """A real Redis server on a free loopback port, stopped after the test."""
    port = free_port()
    server = ChildService("redis", redis_command(port, tmp_path), port, tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()
