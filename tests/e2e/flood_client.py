"""A connection flood against a status server, run as its own process (its sockets count
against its own file-descriptor limit, not the server's).

    python flood_client.py PORT IDLE SLOW SECONDS

Opens IDLE sockets that send nothing and SLOW sockets that send a request head one byte every
0.1 s and never finish it (printing `connected N` once they are open), and watches them for
SECONDS more. Prints one JSON line: how many could be opened (within 2 s: a server that does not
accept fast enough leaves the rest in the kernel's queue), and how many seconds after it
connected the server closed each (null: still open at the end).
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time

CONNECT_WITHIN = 2.0
HEAD = b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000


def main(port: int, idle: int, slow: int, seconds: float) -> None:
    sel = selectors.DefaultSelector()
    started = time.monotonic()
    connecting: dict[socket.socket, bool] = {}  # socket -> slow
    # in bursts of 32, 20 ms apart: faster and the kernel's accept queue (64) overflows and
    # holds connections back (not this test's subject: they never reach the server)
    for i in range(idle + slow):
        if i and i % 32 == 0:
            time.sleep(0.02)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        sel.register(s, selectors.EVENT_WRITE, -1)
        connecting[s] = i >= idle
    opened: list[tuple[socket.socket, bool]] = []
    connected_at: list[float] = []
    closed_after: list[float | None] = []
    sent: list[int] = []
    announced = False
    next_drip = time.monotonic()
    connect_deadline = started + CONNECT_WITHIN
    deadline = connect_deadline + seconds
    while time.monotonic() < deadline and (connecting or any(c is None for c in closed_after)):
        now = time.monotonic()
        if connecting and now >= connect_deadline:  # held off by the kernel's queue throughout
            for s in connecting:
                sel.unregister(s)
                s.close()
            connecting.clear()
        if not connecting and not announced:
            announced = True
            print(f"connected {len(opened)}", flush=True)  # the flood is on
            deadline = now + seconds
        if now >= next_drip:  # slowloris: one more byte of the head on each slow socket
            next_drip = now + 0.1
            for n, (s, is_slow) in enumerate(opened):
                if is_slow and closed_after[n] is None and sent[n] < len(HEAD):
                    try:
                        sent[n] += s.send(HEAD[sent[n] : sent[n] + 1])
                    except OSError:
                        closed_after[n] = time.monotonic() - connected_at[n]
                        sel.unregister(s)
        wake = min(next_drip, connect_deadline if connecting else deadline)
        for key, _ in sel.select(timeout=max(0.0, wake - time.monotonic())):
            s = key.fileobj
            assert isinstance(s, socket.socket)
            n = key.data
            if n == -1:  # the connection attempt ended
                is_slow = connecting.pop(s)
                if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                    sel.unregister(s)
                    s.close()
                    continue
                sel.modify(s, selectors.EVENT_READ, len(opened))
                opened.append((s, is_slow))
                connected_at.append(time.monotonic())
                closed_after.append(None)
                sent.append(0)
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # closed by the server (an answer such as a 503 comes first)
                closed_after[n] = time.monotonic() - connected_at[n]
                sel.unregister(s)
    if not announced:
        print(f"connected {len(opened)}", flush=True)
    for s, _ in opened:
        s.close()
    print(
        json.dumps(
            {
                "opened": len(opened),
                "not_connected": idle + slow - len(opened),
                "closed_after": closed_after,
                "slow": [is_slow for _, is_slow in opened],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
