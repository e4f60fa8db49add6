"""A real `redis-server` on a free loopback port, started and stopped by the tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from foxtrot_stream.config.settings import Settings, load
from foxtrot_stream.contract.plugins import PluginHost
from foxtrot_stream.testing import FAST_SETTINGS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _command(port: int, *words: str) -> bytes:
    """One command over a raw socket (the tests' own, independent of the client library)."""
    wire = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(wire.encode())
        try:
            return s.recv(64)
        except OSError:
            return b""


class RedisServer:
    """`redis-server` on 127.0.0.1:`port`, no persistence but the `SHUTDOWN SAVE` snapshot that
    `stop()` takes (so that a restart finds the streams again, like a real server's)."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir), "--dbfilename", "dump.rdb",
             "--loglevel", "warning", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if _command(self.port, "PING").startswith(b"+PONG"):
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 5 s")

    def stop(self) -> None:
        """`SHUTDOWN SAVE`: the streams survive into the next `start()`."""
        if self.proc is None:
            return
        with contextlib.suppress(OSError):
            _command(self.port, "SHUTDOWN", "SAVE")
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        if os.environ.get("FOXTROT_REQUIRE_REDIS") == "1":
            pytest.fail("FOXTROT_REQUIRE_REDIS=1 but redis-server is not installed")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def settings_with_redis(host: PluginHost, sim: Any, url: str, **overrides: Any) -> Settings:
    values = (
        FAST_SETTINGS
        | sim.settings()
        | {"redis.enabled": True, "redis.url": url, "redis.timeout": 0.5, "redis.retry_max": 0.2}
        | {k.replace("__", "."): v for k, v in overrides.items()}
    )
    return load(text=json.dumps(values), schema=host.schema()).settings
