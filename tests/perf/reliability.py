"""Reliability figures for BENCHMARKS.md (issue #18): the agent's resident memory under
10,000 idle keep-alive connections, and how many of 1,000 slowloris connections it still
holds after its header read timeout.

    python3 tests/perf/reliability.py [target/release/mesh-agent]

Runs one agent (release build) with bookinfo's productpage config compiled by meshc and a
local upstream for `details`; everything on 127.0.0.1. Raises its own open-file limit.
"""
import http.server
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AGENT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/mesh-agent")
MESHC = os.path.join(os.path.dirname(AGENT), "meshc")
IDLE = int(os.environ.get("IDLE", "10000"))
SLOW = int(os.environ.get("SLOW", "1000"))

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=upstream.serve_forever, daemon=True).start()

work = tempfile.mkdtemp()
subprocess.run([MESHC, "compile", "-o", work, os.path.join(ROOT, "examples/bookinfo")],
               check=True, capture_output=True)
config = os.path.join(work, "bookinfo", "productpage.json")
endpoints = os.path.join(work, "endpoints.json")
with open(endpoints, "w") as f:
    json.dump({"endpoints": [{"service": "bookinfo/details",
                              "address": f"127.0.0.1:{upstream.server_address[1]}",
                              "labels": {"app": "details"}}]}, f)


def start(*flags):
    agent = subprocess.Popen(
        [AGENT, "--config", config, "--endpoints", endpoints, "--outbound", "127.0.0.1:0",
         "--inbound", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--max-connections", "20000",
         *flags],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    bound = json.loads(agent.stdout.readline())
    host, port = bound["outbound"].rsplit(":", 1)
    return agent, (host, int(port))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


def request(sock):
    sock.settimeout(10)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: details\r\n\r\n")
    got = b""
    while not got.endswith(b"ok"):
        chunk = sock.recv(4096)
        if not chunk or (b"\r\n\r\n" in got and not got.startswith(b"HTTP/1.1 200")):
            raise RuntimeError(f"unexpected answer {got!r}")
        got += chunk


# Idle keep-alive connections: each answered once, then held.
agent, addr = start("--header-read-timeout", "10m")
warm = socket.create_connection(addr)
request(warm)
time.sleep(0.5)
before = rss_kib(agent.pid)
held = []
for _ in range(IDLE):
    sock = socket.create_connection(addr)
    request(sock)
    held.append(sock)
time.sleep(1)
after = rss_kib(agent.pid)
request(warm)
for sock in held:
    sock.close()
agent.terminate()
agent.wait()

# Slowloris: heads started and trickled, byte by byte.
agent, addr = start("--header-read-timeout", "2s")
slow = [socket.create_connection(addr) for _ in range(SLOW)]
for sock in slow:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: details\r\nX-Slow: ")
    sock.setblocking(False)
started = time.time()
while time.time() - started < 4:
    for sock in slow:
        try:
            sock.send(b"a")
        except OSError:
            pass
    time.sleep(0.2)
still_open = 0
for sock in slow:
    try:
        if sock.recv(1) != b"":
            still_open += 1
    except BlockingIOError:
        still_open += 1
    except OSError:
        pass
fresh = socket.create_connection(addr)
request(fresh)
agent.terminate()
agent.wait()

print(json.dumps({
    "idle_connections": IDLE,
    "rss_before_kib": before,
    "rss_after_kib": after,
    "kib_per_idle_connection": round((after - before) / IDLE, 2),
    "slowloris_connections": SLOW,
    "held_after_timeout": still_open,
}))
