"""A small real IMAP4rev1 server on 127.0.0.1 for tests: one mailbox, plain LOGIN, and the
commands `digest bounces fetch` uses (SELECT, UID SEARCH UNSEEN, UID FETCH BODY.PEEK[], UID
STORE +FLAGS, LOGOUT). It runs in its own thread, like smtpservers.SmtpServer.

    with ImapServer(user="bounces", password="pw", messages=[raw1, raw2]) as imap:
        ... connect to ("127.0.0.1", imap.port) ...
        imap.seen   # UIDs flagged \\Seen
"""

from __future__ import annotations

import re
import socketserver
import threading
from typing import Any


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def send(self, line: bytes) -> None:
        self.wfile.write(line + b"\r\n")

    def handle(self) -> None:
        srv = self.server.owner
        self.send(b"* OK [CAPABILITY IMAP4rev1] test server ready")
        selected = False
        while True:
            line = self.rfile.readline()
            if not line:
                return
            parts = line.rstrip(b"\r\n").decode().split(" ", 2)
            tag, command = parts[0], parts[1].upper() if len(parts) > 1 else ""
            args = parts[2] if len(parts) > 2 else ""
            if command == "CAPABILITY":
                self.send(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN")
            elif command == "LOGIN":
                user, password = [a.strip('"') for a in args.split(" ", 1)]
                if (user, password) != (srv.user, srv.password):
                    self.send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials".encode())
                    continue
            elif command == "SELECT":
                selected = args.strip('"') == "INBOX"
                if not selected:
                    self.send(f"{tag} NO no such mailbox".encode())
                    continue
                self.send(f"* {len(srv.messages)} EXISTS".encode())
                self.send(b"* FLAGS (\\Seen)")
                self.send(f"{tag} OK [READ-WRITE] SELECT completed".encode())
                continue
            elif command == "UID" and selected:
                sub, _, rest = args.partition(" ")
                sub = sub.upper()
                if sub == "SEARCH":
                    unseen = [str(uid) for uid in range(1, len(srv.messages) + 1) if uid not in srv.seen]
                    self.send(("* SEARCH " + " ".join(unseen)).rstrip().encode())
                elif sub == "FETCH":
                    uid = int(rest.split(" ", 1)[0])
                    data = srv.messages[uid - 1]
                    self.wfile.write(f"* {uid} FETCH (UID {uid} BODY[] {{{len(data)}}}\r\n".encode() + data + b")\r\n")
                elif sub == "STORE":
                    uid = int(rest.split(" ", 1)[0])
                    if re.search(r"\+FLAGS.*\\Seen", rest, re.I):
                        srv.seen.add(uid)
                    self.send(f"* {uid} FETCH (UID {uid} FLAGS (\\Seen))".encode())
            elif command == "LOGOUT":
                self.send(b"* BYE logging out")
                self.send(f"{tag} OK LOGOUT completed".encode())
                return
            elif command == "NOOP":
                pass
            else:
                self.send(f"{tag} BAD unknown command".encode())
                continue
            self.send(f"{tag} OK {command} completed".encode())


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ImapServer


class ImapServer:
    def __init__(self, *, user: str, password: str, messages: list[bytes]) -> None:
        self.user, self.password = user, password
        self.messages = [m.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for m in messages]
        self.seen: set[int] = set()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ImapServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
