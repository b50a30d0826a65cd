"""HTTP load for tests/perf/tcp.sh's capture point: COUNT keep-alive HTTP/1.1 requests over
CONNS connections, either to the service address (captured by the client's agent: the app
has no proxy settings) or through the client agent's outbound listener as an explicit
proxy (what an app honouring HTTP_PROXY does). Prints JSON: requests answered 200, and
the others."""
import http.client
import json
import sys
import threading

mode, target, authority, count, conns = sys.argv[1:6]
count, conns = int(count), int(conns)
host, port = target.rsplit(":", 1)
ok = [0] * conns
failed = [0] * conns


def worker(index):
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    path = f"http://{authority}/load" if mode == "proxy" else "/load"
    for _ in range(count // conns):
        try:
            conn.request("GET", path, headers={"Host": authority})
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                ok[index] += 1
            else:
                failed[index] += 1
        except (OSError, http.client.HTTPException):
            failed[index] += 1
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.close()


threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps({"ok": sum(ok), "failed": sum(failed)}))
