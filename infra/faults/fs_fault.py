#!/usr/bin/env python3
"""Filesystem faults under `tendon serve` that need root (loop devices).

    sudo infra/faults/fs_fault.py error  [--tendon target/debug/tendon] [--messages 300]
    sudo infra/faults/fs_fault.py freeze [--tendon target/debug/tendon]

Both make a 256 MiB ext4 image, attach it to a loop device, mount it and put
the local backend's database on it, start `tendon serve` there and post new
patients' Initial Evaluations from one client, recording every control ID
answered `AA`.

- `error`: after a third of the messages, forces an ext4 error through
  /sys/fs/ext4/<dev>/trigger_fs_error on a filesystem mounted
  `errors=remount-ro` (it turns read-only at once), goes on posting (each must
  get a 503, never an AA), kills the server, unmounts, runs `e2fsck -fy`,
  mounts again, and checks that every acknowledged message is stored and gets
  processed by a new server.
- `freeze`: freezes the filesystem (`fsfreeze -f`) while posting: POST /hl7
  must answer 503 within the request timeout and GET /health must say the
  store fails; then thaws it, and checks that every acknowledged message is
  processed and the server answers again.

Prints one summary line and exits 0 if the guarantee held, 1 if not.
docs/operations.md ("What survives a fault") says what it checks, and
docs/benchmarks.md records a run.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
WORKED = open(os.path.join(REPO, "examples", "worked-example.hl7"), "rb").read().decode()


def run(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def message(n):
    """The worked example as a new patient's IE, with its own IDs."""
    text = WORKED.replace("MSG00042", f"F{n:05}")
    text = text.replace("P555", f"P{n:05}").replace("A9001", f"A{n:05}")
    return f"F{n:05}", text.replace("\n", "\r")


class Server:
    def __init__(self, tendon, db, log):
        env = dict(os.environ, TENDON_DB=db, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            [tendon, "serve", "--addr", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=open(log, "ab"), env=env, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://(127\.0\.0\.1:\d+)", line)
        if not m:
            raise SystemExit(f"tendon serve did not start: {line!r}")
        self.url = "http://" + m.group(1)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


def post(url, key, body, timeout=60):
    req = urllib.request.Request(url + "/hl7", data=body.encode(), method="POST",
                                 headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        return None, str(e)


def get(url, path, timeout=30):
    try:
        with urllib.request.urlopen(url + path, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        return None, str(e)


def cli(tendon, db, *args):
    out = run(tendon, "--db", db, *args, "--json")
    return json.loads(out.stdout)


def settle(tendon, db, org, deadline=120):
    end = time.monotonic() + deadline
    while True:
        msgs = cli(tendon, db, "messages", "list", "--org", org)
        if all(m["status"] != "accepted" for m in msgs) or time.monotonic() > end:
            return msgs
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fault", choices=["error", "freeze"])
    ap.add_argument("--tendon", default=os.path.join(REPO, "target", "debug", "tendon"))
    ap.add_argument("--messages", type=int, default=300)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (losetup, mount, fsfreeze)")
    tendon = os.path.abspath(a.tendon)
    work = tempfile.mkdtemp(prefix="tendon-fault-")
    image, mnt = os.path.join(work, "fs.img"), os.path.join(work, "mnt")
    os.mkdir(mnt)
    log = os.path.join(work, "serve.log")
    run("truncate", "-s", "256M", image)
    run("mkfs.ext4", "-q", image)
    dev = run("losetup", "--find", "--show", image).stdout.strip()
    name = os.path.basename(dev)
    mount_opts = "errors=remount-ro"
    run("mount", "-o", mount_opts, dev, mnt)
    db = os.path.join(mnt, "tendon.db")
    server = None
    ok = False
    try:
        org = "ACME01"
        key = cli(tendon, db, "org", "create", "--id", org, "--name", "Fault PT",
                  "--timezone", "America/Los_Angeles", "--ie-type", "Initial Eval")["ingest_key"]
        cli(tendon, db, "location", "add", "--org", org, "--id", "12", "--name", "Salem Clinic")
        cli(tendon, db, "practitioner", "add", "--org", org, "--id", "445566",
            "--first", "Chidi", "--last", "Okafor")
        server = Server(tendon, db, log)
        acked, refused, other = [], [], []
        fault_at = a.messages // 3
        health_during = None
        for n in range(a.messages):
            if n == fault_at:
                if a.fault == "error":
                    with open(f"/sys/fs/ext4/{name}/trigger_fs_error", "w") as f:
                        f.write("1")
                else:
                    run("fsfreeze", "-f", mnt)
            control_id, body = message(n)
            t0 = time.monotonic()
            status, reply = post(server.url, key, body)
            took = time.monotonic() - t0
            if status == 200 and f"MSA|AA|{control_id}" in reply:
                acked.append(control_id)
            elif status == 503:
                refused.append((control_id, round(took, 1)))
            else:
                other.append((control_id, status, reply[:200]))
            if a.fault == "freeze" and n == fault_at + 5:
                health_during = get(server.url, "/health")
                break
        if a.fault == "freeze":
            run("fsfreeze", "-u", mnt)
            # The server carries on once the filesystem thaws.
            status, reply = post(server.url, key, message(a.messages)[1])
            if status == 200:
                acked.append(message(a.messages)[0])
            health_after = get(server.url, "/health")
        server.kill()
        server = None
        if a.fault == "error":
            run("umount", mnt)
            fsck = run("e2fsck", "-fy", dev, check=False)
            run("mount", "-o", mount_opts, dev, mnt)
        server = Server(tendon, db, log)
        msgs = settle(tendon, db, org)
        stored = {m["control_id"]: m["status"] for m in msgs}
        lost = [c for c in acked if c not in stored]
        unprocessed = [c for c in acked if stored.get(c) not in (None, "processed")]
        stuck = [c for c, s in stored.items() if s == "accepted"]
        unanswered = sum(1 for m in msgs if m.get("acknowledged") is False)
        ok = not lost and not unprocessed and not stuck and not other
        summary = {
            "fault": a.fault, "posted": a.messages if a.fault == "error" else fault_at + 6,
            "acknowledged": len(acked), "refused_503": len(refused),
            "other_replies": other[:3], "lost": lost, "unprocessed": unprocessed,
            "stuck_accepted": stuck, "stored": len(stored),
            "stored_unacknowledged": unanswered,
        }
        if a.fault == "error":
            summary["e2fsck_exit"] = fsck.returncode
        else:
            summary["seconds_to_503"] = sorted({t for _, t in refused})
            summary["health_while_frozen"] = health_during
            summary["health_after_thaw"] = health_after
        print(json.dumps(summary))
    finally:
        if server:
            server.kill()
        run("fsfreeze", "-u", mnt, check=False)
        run("umount", mnt, check=False)
        run("losetup", "-d", dev, check=False)
        print(f"work directory (serve.log): {work}", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
