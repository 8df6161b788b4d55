"""A TCP proxy for bench/faults.py that can be cut: put it in front of PostgreSQL (or Redis)
and the service becomes unreachable at will, without touching the shared server.

``cut()`` resets every open connection and stops listening (new connections are refused);
``restore()`` listens again on the same port.

On Linux, closing a socket does not wake a thread blocked in ``accept``/``recv`` on it: the
kernel socket lives on (still listening, still acknowledging data) until that call returns.
So every socket is shut down first, which does wake them, and only then closed.
"""

from __future__ import annotations

import socket
import threading

from _sinks import free_port


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` (host, port), one thread per direction."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.connections = 0  # accepted so far

    def start(self) -> TcpProxy:
        self.restore()
        return self

    def restore(self) -> None:
        """Listen (again) and forward new connections."""
        listener = socket.socket()
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(128)
        except OSError:
            listener.close()
            raise
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            _reset(listener)
        with self._lock:
            sockets, self._open = self._open, set()
        for sock in sockets:
            _reset(sock)

    def stop(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by cut()
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _reset(client)
                    _reset(server)
                    return
                self._open |= {client, server}
                self.connections += 1
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._open -= {src, dst}
        for sock in (src, dst):
            _reset(sock)


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` at once (RST, not a polite FIN after the queued data), waking any thread
    blocked on it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected (any more), or already closed
    try:
        sock.close()
    except OSError:
        pass
