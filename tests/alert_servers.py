"""Real receivers on loopback for the alert tests: an SMTP server (aiosmtpd) that checks a
login and parses each mail, an HTTP server that keeps each webhook's JSON, and a port
where nothing listens."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    port: int
    user: str
    password: str
    mails: list = field(default_factory=list)  # email.message.EmailMessage
    logins: list = field(default_factory=list)  # (user, password) tried

    def url(self, to: str = "oncall@example.com") -> str:
        return (f"mailto://{self.user}:{self.password}@127.0.0.1:{self.port}"
                f"?from=ot@example.com&to={to}")

    def texts(self) -> list[str]:
        return [m.get_body(("plain",)).get_content() for m in self.mails]


@contextmanager
def smtp_server(user: str = "alerts", password: str = "s3cret-Smtp-pw") -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox(free_port(), user, password)

    def authenticate(server, session, envelope, mechanism, data):
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False)
        got = (data.login.decode(), data.password.decode())
        box.logins.append(got)
        return AuthResult(success=got == (user, password))

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            box.mails.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
            return "250 OK"

    ctl = Controller(Handler(), hostname="127.0.0.1", port=box.port,
                     authenticator=authenticate, auth_require_tls=False)
    ctl.start()
    try:
        yield box
    finally:
        ctl.stop()


@dataclass
class Webhook:
    port: int
    posts: list = field(default_factory=list)  # parsed JSON bodies

    def url(self, path: str = "/hooks/ot") -> str:
        return f"json://127.0.0.1:{self.port}{path}"


@contextmanager
def webhook_server(port: int | None = None) -> Iterator[Webhook]:
    hook = Webhook(port or free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            size = int(self.headers.get("Content-Length") or 0)
            hook.posts.append(json.loads(self.rfile.read(size)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", hook.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers: a destination that hangs."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for c in held:
            c.close()
        srv.close()
