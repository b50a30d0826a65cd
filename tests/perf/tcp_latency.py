"""Connection-setup latency for tests/perf/tcp.sh: COUNT sequential connections to
HOST:PORT, each sending 1 KiB and reading the 1 KiB echo; prints the median and p90 of
connect-to-last-byte in microseconds as JSON."""
import json
import socket
import sys
import time

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
payload = b"x" * 1024
samples = []
for _ in range(count):
    start = time.perf_counter()
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = conn.recv(65536)
            if not chunk:
                break
            got += chunk
    if len(got) != len(payload):
        sys.exit(f"short echo: {len(got)} bytes")
    samples.append((time.perf_counter() - start) * 1e6)
samples.sort()
print(json.dumps({"p50_us": samples[len(samples) // 2], "p90_us": samples[len(samples) * 9 // 10]}))
