//! `mesh-agent capture` end to end: the real binary programs iptables, each test inside a
//! fresh network namespace of its own (`unshare --net`), so the host's rules are never
//! touched. Covers the dry run, the rules read back with the nft and the legacy backend,
//! idempotency of install and `--remove`, real redirection of TCP (a veth pair to a peer
//! namespace, listeners in python3, clients as the app's and the proxy's uid), bad input
//! and missing privilege. Needs root (as CI runs it): the tests fail, not skip, without.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_mesh-agent");
/// Upper bound for one namespace script (every step inside has its own timeout).
const SCRIPT_TIMEOUT_SECS: &str = "120";

fn require_root() {
    let id = Command::new("id").arg("-u").output().expect("run id -u");
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        "0",
        "the capture tests need root (CI runs them as root): they create network namespaces and program iptables in them"
    );
}

/// Runs `script` with `sh` in a fresh network namespace (loopback up), with `$BIN` the
/// agent binary and `$OUT` a scratch directory.
fn in_netns(script: &str, out: &Path) -> Output {
    require_root();
    let script = format!("set -eu\nip link set lo up\n{script}");
    Command::new("timeout")
        .args([SCRIPT_TIMEOUT_SECS, "unshare", "--net", "sh", "-c", &script])
        .env("BIN", BIN)
        .env("OUT", out)
        .output()
        .expect("run unshare")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "script failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

fn read(out: &Path, name: &str) -> String {
    std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

/// The binaries of a backend: (iptables, ip6tables, iptables-save).
fn binaries(backend: &str) -> (String, String, String) {
    (
        format!("iptables-{backend}"),
        format!("ip6tables-{backend}"),
        format!("iptables-{backend}-save"),
    )
}

/// `iptables-save` output without comments and counters, for comparisons.
fn normalize_save(save: &str) -> String {
    save.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| match line.rfind(" [") {
            Some(at) if line.starts_with(':') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Our chains and the jumps into them, per chain in order: from `iptables -t nat -S`
/// output, or from `--dry-run` commands (`BINARY -t nat -N|-A …`).
fn by_chain(lines: &str) -> BTreeMap<String, Vec<String>> {
    let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in lines.lines() {
        let line = line.split_once(" -t nat ").map_or(line, |(_, rest)| rest);
        let mut words = line.split_whitespace();
        let (Some(verb), Some(chain)) = (words.next(), words.next()) else {
            continue;
        };
        match verb {
            "-N" if chain.starts_with("MESH_") => {
                chains.entry(chain.to_owned()).or_default();
            }
            "-A" if line.contains("MESH_") => {
                chains
                    .entry(chain.to_owned())
                    .or_default()
                    .push(line.to_owned());
            }
            _ => {}
        }
    }
    chains
}

const CAPTURE_FLAGS: &str = "--proxy-uid 1337 --proxy-gid 1338 --exclude-inbound-ports 15020,15021 \
    --exclude-outbound-ports 443,8443 --exclude-outbound-cidrs 10.96.0.0/12,169.254.169.254,fd00::/8";

#[test]
fn dry_run_prints_the_commands_changes_nothing_and_needs_no_privilege() {
    let dir = tempfile::tempdir().unwrap();
    let output = in_netns(
        &format!(
            r#"setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" capture --dry-run --ipv6 --iptables-backend legacy {CAPTURE_FLAGS} > "$OUT/dry"
iptables-legacy -t nat -S > "$OUT/after"
iptables-nft -t nat -S >> "$OUT/after""#
        ),
        dir.path(),
    );
    ok(&output);
    let dry = read(dir.path(), "dry");
    let expected_v4 = [
        "iptables-legacy -t nat -N MESH_INBOUND",
        "iptables-legacy -t nat -N MESH_IN_REDIRECT",
        "iptables-legacy -t nat -N MESH_OUTPUT",
        "iptables-legacy -t nat -N MESH_REDIRECT",
        "iptables-legacy -t nat -A MESH_INBOUND -p tcp -m tcp --dport 15000 -j RETURN",
        "iptables-legacy -t nat -A MESH_INBOUND -p tcp -m tcp --dport 15006 -j RETURN",
        "iptables-legacy -t nat -A MESH_INBOUND -p tcp -m tcp --dport 15020 -j RETURN",
        "iptables-legacy -t nat -A MESH_INBOUND -p tcp -m tcp --dport 15021 -j RETURN",
        "iptables-legacy -t nat -A MESH_INBOUND -p tcp -j MESH_IN_REDIRECT",
        "iptables-legacy -t nat -A MESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "iptables-legacy -t nat -A MESH_OUTPUT -p tcp -m tcp --dport 443 -j RETURN",
        "iptables-legacy -t nat -A MESH_OUTPUT -p tcp -m tcp --dport 8443 -j RETURN",
        "iptables-legacy -t nat -A MESH_OUTPUT ! -d 127.0.0.0/8 -o lo -m owner ! --uid-owner 1337 ! --gid-owner 1338 -j MESH_IN_REDIRECT",
        "iptables-legacy -t nat -A MESH_OUTPUT -o lo -j RETURN",
        "iptables-legacy -t nat -A MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "iptables-legacy -t nat -A MESH_OUTPUT -m owner --gid-owner 1338 -j RETURN",
        "iptables-legacy -t nat -A MESH_OUTPUT -d 10.96.0.0/12 -j RETURN",
        "iptables-legacy -t nat -A MESH_OUTPUT -d 169.254.169.254/32 -j RETURN",
        "iptables-legacy -t nat -A MESH_OUTPUT -j MESH_REDIRECT",
        "iptables-legacy -t nat -A MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "iptables-legacy -t nat -A PREROUTING -p tcp -j MESH_INBOUND",
        "iptables-legacy -t nat -A OUTPUT -p tcp -j MESH_OUTPUT",
    ];
    let lines: Vec<&str> = dry.lines().collect();
    // IPv6 has one CIDR exclusion fewer (169.254.169.254 and 10.96.0.0/12 are IPv4).
    assert_eq!(lines.len(), 2 * expected_v4.len() - 1, "{dry}");
    assert_eq!(lines[..expected_v4.len()], expected_v4, "{dry}");
    let v6 = &lines[expected_v4.len()..];
    assert!(
        v6.iter().all(|l| l.starts_with("ip6tables-legacy -t nat ")),
        "{dry}"
    );
    assert!(v6.contains(&"ip6tables-legacy -t nat -A MESH_OUTPUT -d fd00::/8 -j RETURN"));
    assert!(v6.contains(
        &"ip6tables-legacy -t nat -A MESH_OUTPUT ! -d ::1/128 -o lo -m owner ! --uid-owner 1337 ! --gid-owner 1338 -j MESH_IN_REDIRECT"
    ));
    assert!(!v6.iter().any(|l| l.contains("10.96.0.0/12")), "{dry}");
    assert!(
        !read(dir.path(), "after").contains("MESH_"),
        "the dry run changed nothing"
    );

    // --remove --dry-run: the jumps, then flush and delete.
    let output = in_netns(
        r#""$BIN" capture --remove --dry-run --no-ipv6 > "$OUT/remove""#,
        dir.path(),
    );
    ok(&output);
    assert_eq!(
        read(dir.path(), "remove").lines().collect::<Vec<_>>(),
        [
            "iptables -t nat -D PREROUTING -p tcp -j MESH_INBOUND",
            "iptables -t nat -D OUTPUT -p tcp -j MESH_OUTPUT",
            "iptables -t nat -F MESH_INBOUND",
            "iptables -t nat -F MESH_IN_REDIRECT",
            "iptables -t nat -F MESH_OUTPUT",
            "iptables -t nat -F MESH_REDIRECT",
            "iptables -t nat -X MESH_INBOUND",
            "iptables -t nat -X MESH_IN_REDIRECT",
            "iptables -t nat -X MESH_OUTPUT",
            "iptables -t nat -X MESH_REDIRECT",
        ]
    );
}

/// Installs with `backend`, reads the rules back with `-S` and compares them, chain by
/// chain, with the dry run; then checks idempotency and `--remove`.
fn installs_reads_back_and_removes(backend: &str) {
    let (ipt, ip6t, save) = binaries(backend);
    let dir = tempfile::tempdir().unwrap();
    let flags = format!("--iptables-backend {backend} --ipv6 {CAPTURE_FLAGS}");
    let output = in_netns(
        &format!(
            r#"
# someone else's rule, which must survive install and remove
{ipt} -t nat -A OUTPUT -p udp --dport 53 -j RETURN
{save} -t nat > "$OUT/save0"
"$BIN" capture {flags} --dry-run > "$OUT/dry"
"$BIN" capture {flags} > "$OUT/run1"
{ipt} -t nat -S > "$OUT/v4"
{ip6t} -t nat -S > "$OUT/v6"
{save} -t nat > "$OUT/save1"
"$BIN" capture {flags} > "$OUT/run2"
{save} -t nat > "$OUT/save2"
{ip6t} -t nat -S > "$OUT/v6-2"
"$BIN" capture --remove --iptables-backend {backend} --ipv6 > "$OUT/remove1"
{save} -t nat > "$OUT/save3"
{ip6t} -t nat -S > "$OUT/v6-3"
"$BIN" capture --remove --iptables-backend {backend} --ipv6 > "$OUT/remove2"
{save} -t nat > "$OUT/save4"
"#
        ),
        dir.path(),
    );
    ok(&output);
    let out = dir.path();
    let dry = read(out, "dry");
    let (dry_v4, dry_v6): (Vec<&str>, Vec<&str>) =
        dry.lines().partition(|l| l.starts_with(&format!("{ipt} ")));
    assert!(dry_v6.iter().all(|l| l.starts_with(&format!("{ip6t} "))));

    // What -S reads back is exactly the plan, chain by chain.
    let v4 = read(out, "v4");
    assert_eq!(by_chain(&v4), by_chain(&dry_v4.join("\n")), "{v4}");
    assert_eq!(by_chain(&read(out, "v6")), by_chain(&dry_v6.join("\n")));
    for line in [
        "-N MESH_INBOUND",
        "-N MESH_IN_REDIRECT",
        "-N MESH_OUTPUT",
        "-N MESH_REDIRECT",
        "-A PREROUTING -p tcp -j MESH_INBOUND",
        "-A OUTPUT -p tcp -j MESH_OUTPUT",
        "-A OUTPUT -p udp -m udp --dport 53 -j RETURN",
        "-A MESH_INBOUND -p tcp -m tcp --dport 15006 -j RETURN",
        "-A MESH_INBOUND -p tcp -m tcp --dport 15020 -j RETURN",
        "-A MESH_OUTPUT -p tcp -m tcp --dport 8443 -j RETURN",
        "-A MESH_OUTPUT -d 169.254.169.254/32 -j RETURN",
        "-A MESH_OUTPUT ! -d 127.0.0.0/8 -o lo -m owner ! --uid-owner 1337 ! --gid-owner 1338 -j MESH_IN_REDIRECT",
        "-A MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "-A MESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
    ] {
        assert!(v4.lines().any(|l| l == line), "missing `{line}` in\n{v4}");
    }
    assert!(read(out, "v6").contains("-A MESH_OUTPUT -d fd00::/8 -j RETURN"));
    assert!(!read(out, "v6").contains("10.96.0.0"));

    // A second run leaves exactly the same rules (it flushes and refills its chains and
    // does not add the jumps again).
    let (save1, save2) = (read(out, "save1"), read(out, "save2"));
    assert_eq!(normalize_save(&save1), normalize_save(&save2));
    assert_eq!(by_chain(&read(out, "v6")), by_chain(&read(out, "v6-2")));
    let run2 = read(out, "run2");
    assert!(
        run2.contains(&format!("{ipt} -t nat -F MESH_OUTPUT")),
        "{run2}"
    );
    assert!(
        !run2.contains("-A OUTPUT"),
        "the jump was added again:\n{run2}"
    );

    // --remove leaves what was there before, and a second --remove changes nothing.
    let (save0, save3, save4) = (read(out, "save0"), read(out, "save3"), read(out, "save4"));
    assert!(!save3.contains("MESH_"), "{save3}");
    assert!(!read(out, "v6-3").contains("MESH_"));
    assert_eq!(normalize_save(&save0), normalize_save(&save3));
    assert_eq!(normalize_save(&save3), normalize_save(&save4));
    assert!(read(out, "remove1").contains(&format!("{ipt} -t nat -X MESH_INBOUND")));
    assert_eq!(read(out, "remove2"), "", "the second --remove ran commands");
}

#[test]
fn nft_backend_installs_reads_back_is_idempotent_and_removes() {
    installs_reads_back_and_removes("nft");
}

#[test]
fn legacy_backend_installs_reads_back_is_idempotent_and_removes() {
    installs_reads_back_and_removes("legacy");
}

/// Serves TCP listeners given as `HOST:PORT=TAG`: each connection gets `TAG\n`. Touches
/// the ready file (argv[1]) once bound; stops after 30 s.
const SERVE_PY: &str = r#"
import socket, sys, threading, time
deadline = time.time() + 30
def serve(sock, tag):
    while time.time() < deadline:
        try:
            conn, _ = sock.accept()
        except socket.timeout:
            continue
        with conn:
            conn.settimeout(2)
            try:
                conn.sendall((tag + "\n").encode())
            except OSError:
                pass
threads = []
for spec in sys.argv[2:]:
    addr, tag = spec.split("=")
    host, port = addr.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(16)
    sock.settimeout(0.2)
    thread = threading.Thread(target=serve, args=(sock, tag), daemon=True)
    thread.start()
    threads.append(thread)
open(sys.argv[1], "w").close()
for thread in threads:
    thread.join()
"#;

/// The redirection script: this namespace ("the pod", 10.99.0.2) has a veth to a peer
/// namespace ("the network", 10.99.0.1 and 10.99.0.200). Listeners: in the pod, the
/// outbound (15001) and inbound (15006) capture ports, the app (8080) and the admin port
/// (15000); in the peer, remote servers. Each probe prints `WHO DEST TAG`.
const REDIRECT_SH: &str = r#"
PIDS=""
trap 'kill $PIDS 2>/dev/null || true' EXIT
ip link add v0 type veth peer name v1
ip addr add 10.99.0.2/24 dev v0
ip link set v0 up
unshare --net sleep 60 >/dev/null 2>&1 &
PEER=$!
PIDS="$PIDS $PEER"
i=0
while [ "$(readlink /proc/$PEER/ns/net)" = "$(readlink /proc/$$/ns/net)" ]; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "peer namespace never appeared" >&2; exit 90; }
    sleep 0.05
done
ip link set v1 netns $PEER
IN_PEER="nsenter --net=/proc/$PEER/ns/net"
$IN_PEER sh -c 'ip link set lo up; ip addr add 10.99.0.1/24 dev v1; ip addr add 10.99.0.200/24 dev v1; ip link set v1 up'

python3 -c "$SERVE_PY" "$OUT/ready-pod" 0.0.0.0:15001=outbound-capture 0.0.0.0:15006=inbound-capture 0.0.0.0:8080=app 0.0.0.0:15000=admin >"$OUT/serve-pod.log" 2>&1 &
PIDS="$PIDS $!"
$IN_PEER python3 -c "$SERVE_PY" "$OUT/ready-peer" 10.99.0.1:80=remote 10.99.0.1:443=remote-443 10.99.0.200:80=remote-excluded-cidr >"$OUT/serve-peer.log" 2>&1 &
PIDS="$PIDS $!"
i=0
while [ ! -e "$OUT/ready-pod" ] || [ ! -e "$OUT/ready-peer" ]; do
    i=$((i + 1)); [ $i -lt 200 ] || { echo "listeners never came up" >&2; cat "$OUT"/serve-*.log >&2; exit 91; }
    sleep 0.05
done

"$BIN" capture --proxy-uid 1337 --outbound-port 15001 --inbound-port 15006 --exclude-outbound-ports 443 --exclude-outbound-cidrs 10.99.0.200/32 --no-ipv6 >/dev/null

# probe WHO NS UID HOST PORT: connect as UID (from the pod, or from the peer namespace)
probe() {
    if [ "$2" = peer ]; then enter="$IN_PEER"; else enter=""; fi
    tag=$($enter timeout 5 setpriv --reuid="$3" --regid="$3" --clear-groups \
        bash -c 'exec 3<>/dev/tcp/$0/$1 && head -n 1 <&3' "$4" "$5" 2>/dev/null) || tag=FAILED
    echo "$1 $4:$5 $tag"
}
probe app pod 1000 10.99.0.1 80
probe proxy pod 1337 10.99.0.1 80
probe app pod 1000 10.99.0.1 443
probe app pod 1000 10.99.0.200 80
probe app pod 1000 10.99.0.2 8080
probe proxy pod 1337 10.99.0.2 8080
probe app pod 1000 127.0.0.1 8080
probe peer peer 0 10.99.0.2 8080
probe peer peer 0 10.99.0.2 15000
"#;

#[test]
fn captured_connections_land_on_the_capture_ports_and_the_proxy_is_never_captured() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("serve.py"), SERVE_PY).unwrap();
    let output = in_netns(
        &format!("SERVE_PY=$(cat \"$OUT/serve.py\")\n{REDIRECT_SH}"),
        dir.path(),
    );
    ok(&output);
    let probes = text(&output.stdout);
    for expected in [
        // The app's outbound connection goes to the outbound capture port...
        "app 10.99.0.1:80 outbound-capture",
        // ...the proxy's reaches the real destination.
        "proxy 10.99.0.1:80 remote",
        // Excluded port and CIDR: not captured.
        "app 10.99.0.1:443 remote-443",
        "app 10.99.0.200:80 remote-excluded-cidr",
        // The app calling its own pod address over lo goes through the inbound side;
        // the proxy's and loopback connections are left alone.
        "app 10.99.0.2:8080 inbound-capture",
        "proxy 10.99.0.2:8080 app",
        "app 127.0.0.1:8080 app",
        // Inbound from the network: captured, except the excluded admin port.
        "peer 10.99.0.2:8080 inbound-capture",
        "peer 10.99.0.2:15000 admin",
    ] {
        assert!(
            probes.lines().any(|l| l == expected),
            "expected `{expected}` in\n{probes}\nstderr:\n{}",
            text(&output.stderr)
        );
    }
}

#[test]
fn bad_flags_exit_2_naming_the_flag_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str); 8] = [
        ("--proxy-uid 1337 --outbound-port 0", "--outbound-port"),
        ("--proxy-uid 1337 --inbound-port 70000", "--inbound-port"),
        (
            "--proxy-uid 1337 --exclude-outbound-cidrs 10.0.0.0/33",
            "--exclude-outbound-cidrs",
        ),
        (
            "--proxy-uid 1337 --exclude-outbound-cidrs 10.0.0/8",
            "--exclude-outbound-cidrs",
        ),
        ("--proxy-uid envoy", "--proxy-uid"),
        (
            "--proxy-uid 1337 --exclude-inbound-ports 80,0",
            "--exclude-inbound-ports",
        ),
        (
            "--proxy-uid 1337 --include-inbound-ports 80,http",
            "--include-inbound-ports",
        ),
        ("--outbound-port 15001", "--proxy-uid"),
    ];
    let mut script = String::new();
    for (i, (flags, _)) in cases.iter().enumerate() {
        script.push_str(&format!(
            "rc=0; \"$BIN\" capture {flags} >\"$OUT/out{i}\" 2>\"$OUT/err{i}\" || rc=$?; echo $rc >\"$OUT/rc{i}\"\n"
        ));
    }
    script.push_str(
        "iptables -t nat -S > \"$OUT/after\"\niptables-legacy -t nat -S >> \"$OUT/after\"\n",
    );
    ok(&in_netns(&script, dir.path()));
    for (i, (flags, flag)) in cases.iter().enumerate() {
        let (rc, err) = (
            read(dir.path(), &format!("rc{i}")),
            read(dir.path(), &format!("err{i}")),
        );
        assert_eq!(rc.trim(), "2", "`capture {flags}`: {err}");
        assert!(
            err.contains(flag),
            "`capture {flags}` does not name {flag}: {err}"
        );
        assert_eq!(read(dir.path(), &format!("out{i}")), "");
    }
    assert!(!read(dir.path(), "after").contains("MESH_"));
}

#[test]
fn without_cap_net_admin_or_without_iptables_the_error_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = in_netns(
        r#"
rc=0; setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" capture --proxy-uid 1337 --iptables-backend nft --no-ipv6 2>"$OUT/nft" || rc=$?; echo $rc >"$OUT/nft-rc"
rc=0; setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" capture --proxy-uid 1337 --iptables-backend legacy --no-ipv6 2>"$OUT/legacy" || rc=$?; echo $rc >"$OUT/legacy-rc"
rc=0; setpriv --reuid=65534 --regid=65534 --clear-groups "$BIN" capture --remove --no-ipv6 2>"$OUT/remove" || rc=$?; echo $rc >"$OUT/remove-rc"
rc=0; PATH=/nonexistent "$BIN" capture --proxy-uid 1337 --iptables-backend legacy --no-ipv6 2>"$OUT/missing" || rc=$?; echo $rc >"$OUT/missing-rc"
rc=0; PATH=/nonexistent "$BIN" capture --proxy-uid 1337 --ipv6 2>"$OUT/missing6" || rc=$?; echo $rc >"$OUT/missing6-rc"
iptables-nft -t nat -S > "$OUT/after"
iptables-legacy -t nat -S >> "$OUT/after"
"#,
        dir.path(),
    );
    ok(&output);
    let out = dir.path();
    for (name, command) in [
        ("nft", "`iptables-nft -t nat -S` failed"),
        ("legacy", "`iptables-legacy -t nat -S` failed"),
        ("remove", "`iptables -t nat -S` failed"),
    ] {
        let err = read(out, name);
        assert_eq!(read(out, &format!("{name}-rc")).trim(), "1", "{err}");
        assert!(err.contains("CAP_NET_ADMIN"), "{err}");
        assert!(err.contains(command), "{err}");
        assert!(
            err.contains("Permission denied"),
            "iptables' stderr is shown: {err}"
        );
    }
    let missing = read(out, "missing");
    assert_eq!(read(out, "missing-rc").trim(), "1", "{missing}");
    assert!(missing.contains("`iptables-legacy` not found"), "{missing}");
    assert!(missing.contains("package `iptables`"), "{missing}");
    let missing6 = read(out, "missing6");
    assert_eq!(read(out, "missing6-rc").trim(), "1", "{missing6}");
    assert!(missing6.contains("`ip6tables` not found"), "{missing6}");
    assert!(!read(out, "after").contains("MESH_"));
}
