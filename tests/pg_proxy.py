"""A TCP proxy in front of PostgreSQL that can lose the server's answer to a COMMIT: the server
has committed, the client never hears so (a network cut or a failover at that moment)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import sqlalchemy as sa

_COMMITTED = b"C\x00\x00\x00\x0bCOMMIT\x00"  # CommandComplete for COMMIT


class Proxy:
    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.cuts = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        return sa.engine.make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(False)

    def cut_at_next_commit(self) -> None:
        """The next COMMIT the server acknowledges: its answer is lost, and the connection."""
        self.armed.set()

    def close(self) -> None:
        self._closed = True
        self.listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if from_server and _COMMITTED in chunk and self.armed.is_set():
                    self.armed.clear()
                    self.cuts += 1
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        for end in (source, sink):
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


@contextmanager
def proxied(url: str) -> Iterator[Proxy]:
    parsed = sa.engine.make_url(url)
    proxy = Proxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    try:
        yield proxy
    finally:
        proxy.close()
