"""Serving an ASGI app on loopback from a background thread, for the local stack and tests."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Generator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn

LOOPBACK = "127.0.0.1"


class _ThreadedServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone and says when it has started (or given up)."""

    def __init__(self, config: uvicorn.Config, settled: threading.Event) -> None:
        super().__init__(config)
        self._settled = settled

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Signals belong to whoever owns the process (pytest, the CLI), never to a server thread.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self._settled.set()


@dataclass
class RunningServer:
    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        """Stops accepting, lets in-flight requests finish (bounded), and joins the thread."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_in_thread(
    app: Any,
    host: str = LOOPBACK,
    port: int = 0,
    *,
    startup_timeout: float = 10.0,
    graceful_shutdown_seconds: int = 2,
    log_level: str = "warning",
) -> RunningServer:
    """Runs `app` with uvicorn on a socket bound here (port 0 picks a free port); returns once serving."""
    if host != LOOPBACK:
        raise ValueError(f"the local stack serves on {LOOPBACK} only, not {host}")
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says TCP,
    # and without it every response waits out a delayed ACK (~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_port = sock.getsockname()[1]

    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="auto",
        # Stalled requests (fault injection) must not hold a stop() for long.
        timeout_graceful_shutdown=graceful_shutdown_seconds,
    )
    settled = threading.Event()
    server = _ThreadedServer(config, settled)

    def run() -> None:
        try:
            server.run(sockets=[sock])
        finally:
            settled.set()
            sock.close()

    thread = threading.Thread(target=run, name=f"uvicorn-{bound_port}", daemon=True)
    thread.start()
    if not settled.wait(startup_timeout) or not server.started:
        server.should_exit = True
        thread.join(startup_timeout)
        raise RuntimeError(f"server on {host}:{bound_port} did not start within {startup_timeout} s")
    return RunningServer(host=host, port=bound_port, server=server, thread=thread)
