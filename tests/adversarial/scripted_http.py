"""A scripted HTTP server on a loopback address for the lean sender's tests: each request on a connection gets the
next answer of a list, as raw bytes, so tests can send what no real server would."""

from __future__ import annotations

import socket
import threading


class Scripted:
    """A loopback TCP server that answers each request on a connection with the next of ``answers`` (raw bytes),
    then closes the connection (``hold``: keeps it open until the client hangs up, at most 30 s)."""

    def __init__(self, address: str, answers: list[bytes], *, hold: bool = False, port: int = 0) -> None:
        self.server = socket.create_server((address, port))
        self.address, self.port = self.server.getsockname()[:2]
        self.answers = answers
        self.hold = hold
        self.requests: list[bytes] = []
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            with client:
                client.settimeout(30)
                self._answer(client)

    def _answer(self, client: socket.socket) -> None:
        try:
            for answer in self.answers:
                self.requests.append(_read_request(client))
                client.sendall(answer)
            while self.hold and client.recv(65536):
                pass  # until the client hangs up
        except OSError:
            return

    def close(self) -> None:
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self.server.close()
        self._thread.join(5)


def _read_request(client: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            raise ConnectionError("client gone")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    fields = [line.split(b":", 1) for line in head.split(b"\r\n")[1:]]
    length = next((int(value) for name, value in fields if name.lower() == b"content-length"), 0)
    while len(body) < length:
        body += client.recv(65536)
    return head
