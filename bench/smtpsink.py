"""A minimal, fast SMTP sink for the send benchmark: accepts every message and discards it.

aiosmtpd (what the tests use) tops out near 175 messages/s, which would measure aiosmtpd rather than
digest. This sink speaks just enough SMTP for aiosmtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
QUIT, with pipelined commands; it parses nothing it does not need and keeps only counters.

    python bench/smtpsink.py --port 2525          # prints "smtpsink listening on 127.0.0.1:2525"
    python bench/smtpsink.py --port 0             # any free port; read it from the first line

    async with Sink() as sink:                    # in-process, for a quick bench
        ... send to sink.port ...; sink.messages

Not for tests: it checks nothing and accepts everything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from dataclasses import dataclass, field

_REPLIES = {
    b"MAIL": b"250 2.1.0 OK\r\n",
    b"RCPT": b"250 2.1.5 OK\r\n",
    b"RSET": b"250 2.0.0 OK\r\n",
    b"NOOP": b"250 2.0.0 OK\r\n",
    b"HELO": b"250 sink\r\n",
    b"EHLO": b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n",
    b"DATA": b"354 end with <CRLF>.<CRLF>\r\n",
    b"QUIT": b"221 2.0.0 bye\r\n",
}
_TERMINATOR = b"\r\n.\r\n"


@dataclass
class Sink:
    host: str = "127.0.0.1"
    port: int = 0
    messages: int = 0
    bytes: int = 0
    connections: int = 0
    _server: asyncio.AbstractServer | None = field(default=None, repr=False)

    async def start(self) -> Sink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _SinkProtocol(self), self.host, self.port, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> Sink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class _SinkProtocol(asyncio.Protocol):
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.buffer = bytearray()
        self.in_data = False
        self.scanned = 0  # how far the DATA terminator search already looked
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sink.connections += 1
        transport.write(b"220 sink ESMTP ready\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = bytearray()
        closing = False
        while self.buffer:
            if self.in_data:
                if not self._take_message():
                    break
                out += b"250 2.0.0 queued\r\n"
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                break
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: end + 2]
            out += _REPLIES.get(verb, b"502 5.5.2 not implemented\r\n")
            if verb == b"DATA":
                self.in_data, self.scanned = True, 0
            elif verb == b"QUIT":
                closing = True
                break
        if out and self.transport is not None:
            self.transport.write(bytes(out))
        if closing and self.transport is not None:
            self.transport.close()

    def _take_message(self) -> bool:
        if self.buffer.startswith(b".\r\n"):  # an empty message
            end, skip = 0, 3
        else:
            end = self.buffer.find(_TERMINATOR, max(0, self.scanned - 4))
            if end < 0:
                self.scanned = len(self.buffer)
                return False
            skip = len(_TERMINATOR)
        self.sink.messages += 1
        self.sink.bytes += end + 2
        del self.buffer[: end + skip]
        self.in_data = False
        return True


async def _main(host: str, port: int, every: float) -> None:
    async with Sink(host, port) as sink:
        print(f"smtpsink listening on {sink.host}:{sink.port}", flush=True)
        last, last_at = 0, time.perf_counter()
        while True:
            await asyncio.sleep(every)
            now = time.perf_counter()
            if sink.messages != last:
                rate = (sink.messages - last) / (now - last_at)
                print(f"messages={sink.messages} connections={sink.connections} rate={rate:.0f}/s", flush=True)
            last, last_at = sink.messages, now


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525, help="0 picks a free port")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between progress lines")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.host, args.port, args.every))
