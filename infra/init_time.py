"""Init time, warm duration and peak memory of each Lambda function, measured
under `cargo lambda watch` against moto, beside a hello-world Rust Lambda
(infra/hello-lambda) built the same way.

Usage (by hand; a benchmark, not a test; docs/benchmarks.md quotes it):

    target/venv/bin/python infra/init_time.py [--rounds 15] [--skip-build]

How:
- Builds the functions and hello with the release profile (what SAM deploys)
  for this machine: the zips are cross-built for arm64, which it cannot run.
- Starts moto (infra/moto_serial.py), `tendon aws bootstrap` on it, an org
  with a location, a practitioner and a welcome-email workflow.
- Starts `cargo lambda watch --only-lambda-apis` (the Runtime API emulator)
  and runs each function binary against it through a pass-through TCP proxy
  that notes the instant the process first asks for work
  (`GET .../invocation/next`). That is what Lambda reports as Init Duration:
  from process start to the first `next`.
- `--rounds` rounds; each cold-starts every binary once (in an order rotated
  round by round), invokes it once with a cheap event and then 5 times warm.
  Interleaving spreads the drift of a shared machine over all binaries alike.
  Then one process per function runs representative work
  (ingest: 60 HL7 posts; patient and episode: the queued messages in batches
  of 10; dispatch: a pass that sends the workflow emails) and its peak RSS
  (VmHWM) is read.
Prints medians and the init ratio to hello (target: within 1.5x).
"""

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
PACKAGES = [
    "tendon-fn-ingest", "tendon-fn-patient", "tendon-fn-episode", "tendon-fn-dispatch",
    "tendon-fn-cliniko", "tendon-fn-feedback", "tendon-hello-lambda",
]
WARM = 5
CHEAP_TIMEOUT = 15  # seconds; a cheap invocation answers in milliseconds


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, proc, deadline=120):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"init_time: {what} exited with {proc.returncode} (see target/init-time-*.log)")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)  # startup poll of a child process, not test synchronisation
    sys.exit(f"init_time: {what} did not listen on {port}")


class FirstNextProxy:
    """Forwards 127.0.0.1:port to the emulator and records when the function
    first sends `GET ...invocation/next`.

    It forwards only as many `next` requests as the process is to get
    invocations. The one after (the function asking for more work) is held
    back, so the emulator has no `next` of a process about to be killed to
    hand the next process's invocation to."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.first_next = None
        self.allowed = self.nexts = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self, invocations):
        with self.lock:
            self.first_next = None
            self.allowed, self.nexts = invocations, 0

    def _accept(self):
        while True:
            client, _ = self.sock.accept()
            up = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, up, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, client, False), daemon=True).start()

    def _pump(self, src, dst, from_function):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if from_function and b"/invocation/next" in data:
                    now = time.monotonic()
                    with self.lock:
                        if self.first_next is None:
                            self.first_next = now
                        self.nexts += 1
                        if self.nexts > self.allowed:
                            continue  # held back until the process is killed
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def invoke(port, payload, timeout=120):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/2015-03-31/functions/_/invocations",
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    start = time.monotonic()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = r.read()
    return time.monotonic() - start, body


def peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def cpu_ms(pid):
    """User + system CPU time of a process so far, in ms (10 ms ticks)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks * 1000 / os.sysconf("SC_CLK_TCK")


def http_event(method, path, headers=None, body=""):
    """An API Gateway HTTP API (payload 2.0) event."""
    return {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers or {},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": "req", "routeKey": f"{method} {path}",
            "stage": "$default", "time": "01/Dec/2026:09:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "init-time"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def scheduled_event(at):
    return {
        "version": "0", "id": "init-time", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": at,
        "region": "us-east-1", "resources": [], "detail": {},
    }


HL7 = (
    "MSH|^~\\&|EMRGATE|ACME01|TENDON|TENDON|20261120093000-0800||SIU^S12^SIU_S12|{cid}|P|2.5.1\r"
    "SCH|PL-77|A{n}|||||EVAL^Evaluation|IE^Initial Eval|45|min|^^45^203001011000||||||||||||||Booked\r"
    "PID|1||P{n}^^^ACME^MR||Rivera^Ana^M||19850312|F|||12 Elm St^^Salem^OR^97301||^NET^Internet^p{n}@example.com\r"
    "PV1|1|O|12^^^^^^^^Salem Clinic||||778899^Nguyen^Minh||||||||||||C-{n}\r"
    "PV2|||M75.1^Right Shoulder\r"
    "AIS|1||IE^Initial Eval|203001011000\r"
    "AIL|1||12^^^Salem Clinic|||203001011000\r"
    "AIP|1||445566^Okafor^Chidi|PT^Physical Therapist||203001011000\r"
)

WORKFLOW = {
    "title": "Welcome", "status": "active", "patient_group": {"source": "any"},
    "trigger": {"event": "initial_evaluation_scheduled"},
    "steps": [{"schedule": {"direction": "after", "amount": 0, "unit": "hours"},
               "task": {"kind": "email", "subject": "Welcome, {{ patient.first_name }}",
                        "body": "See you on {{ appointment.start_local }}."}}],
}


def sqs_batches(queue_url, env):
    """The queue's messages as SQS events of up to 10 records."""
    import boto3
    sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                       aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    arn = "arn:aws:sqs:us-east-1:123456789012:" + queue_url.rsplit("/", 1)[1]
    events = []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                  AttributeNames=["All"], MessageAttributeNames=["All"],
                                  WaitTimeSeconds=0).get("Messages", [])
        if not got:
            return events
        events.append({"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": arn,
            "awsRegion": "us-east-1"} for m in got]})


def report(args, results, work):
    hello = results["hello"]["init"]
    print(f"\nInit under cargo lambda watch: medians of {args.rounds} cold starts "
          f"(process start to first `next`); warm: median invocation round trip")
    print("x hello: ratio of the medians; paired: median of the per-round ratios")
    print(f"{'function':<14} {'init ms':>8} {'x hello':>8} {'paired':>7} {'1st call ms':>12} "
          f"{'warm ms':>8}")
    worst = worst_paired = 0.0
    for binary, r in results.items():
        ratio = r["init"] / hello
        if binary != "hello":
            worst = max(worst, ratio)
            worst_paired = max(worst_paired, r["paired"])
        print(f"{binary:<14} {r['init'] * 1e3:8.2f} {ratio:8.2f} {r['paired']:7.2f} "
              f"{r['first'] * 1e3:12.2f} {r['warm'] * 1e3:8.2f}")
    print(f"worst init ratio: {worst:.2f}x of the medians, {worst_paired:.2f}x paired "
          "(target: within 1.5x)")
    print("\nRepresentative work: median invocation, peak RSS (VmHWM), and CPU per"
          " invocation (process total / invocations, 10 ms ticks)")
    print(f"{'function':<14} {'median ms':>10} {'peak MiB':>9} {'CPU ms':>7}  work")
    for binary, (what, d, rss, cpu) in work.items():
        print(f"{binary:<14} {d * 1e3:10.1f} {rss / 1024:9.1f} {cpu:7.1f}  {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--bin-dir", help="take the binaries from here (implies --skip-build)")
    ap.add_argument("--only", help="comma-separated binaries: init only, no work phase")
    args = ap.parse_args()
    os.chdir(ROOT)
    env0 = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ["PATH"])
    if not (args.skip_build or args.bin_dir):
        cmd = ["cargo", "build", "--release", "--locked"] + [a for p in PACKAGES for a in ("-p", p)]
        subprocess.run(cmd, env=env0, check=True)
        subprocess.run(["cargo", "build", "--locked", "-p", "tendon-cli"], env=env0, check=True)
    release = args.bin_dir or os.path.join(ROOT, "target", "release")
    tendon = os.path.join(ROOT, "target", "debug", "tendon")

    procs = []
    try:
        moto_port = free_port()
        moto = subprocess.Popen([sys.executable, "infra/moto_serial.py", "-H", "127.0.0.1",
                                 "-p", str(moto_port)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        procs.append(moto)
        wait_port(moto_port, "moto", moto)
        aws = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_DEFAULT_REGION": "us-east-1", "TENDON_BACKEND": "aws"}

        def cli(*a, env=None):
            out = subprocess.run([tendon, *a, "--json"], env=env or dict(env0, **aws),
                                 capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"init_time: tendon {' '.join(a)} failed: {out.stderr}")
            return json.loads(out.stdout)

        boot = cli("aws", "bootstrap", "--prefix", f"init{os.getpid()}")["env"]
        aws.update(boot)
        key = cli("org", "create", "--id", "ACME01", "--name", "Acme PT", "--timezone",
                  "America/Los_Angeles", "--ie-type", "Initial Eval")["ingest_key"]
        cli("location", "add", "--org", "ACME01", "--id", "12", "--name", "Salem Clinic")
        cli("practitioner", "add", "--org", "ACME01", "--id", "445566", "--first", "Chidi",
            "--last", "Okafor")
        wf = os.path.join(ROOT, "target", "init-time-workflow.json")
        with open(wf, "w") as f:
            json.dump(WORKFLOW, f)
        cli("workflow", "import", "--org", "ACME01", wf)

        watch_log = open(os.path.join(ROOT, "target", "init-time-watch.log"), "w")
        emulator = {}

        def start_emulator():
            """A fresh `cargo lambda watch` and proxy (the old one stopped)."""
            if emulator:
                emulator["watch"].terminate()
                emulator["watch"].wait()
            port = free_port()
            watch = subprocess.Popen(["cargo", "lambda", "watch", "--only-lambda-apis",
                                      "--ignore-changes", "--invoke-address", "127.0.0.1",
                                      "--invoke-port", str(port)],
                                     # WATCH_LOG=cargo_lambda_watch=trace to debug it
                                     env=dict(env0, RUST_LOG=os.environ.get("WATCH_LOG", "info")),
                                     stdout=watch_log, stderr=subprocess.STDOUT)
            procs.append(watch)
            wait_port(port, "cargo lambda watch", watch)
            emulator.update(watch=watch, port=port, proxy=FirstNextProxy(port))

        start_emulator()
        fn_env = dict(env0, **aws, TENDON_MAX_RECEIVE_COUNT="5",
                      TENDON_PUBLIC_URL="http://127.0.0.1",
                      TENDON_PROFILE_URL="https://app.example.com/p/{org}/{patient_id}",
                      TENDON_SES_MAX_SEND_RATE="14", TENDON_CLINIKO_USER_AGENT="Tendon init-time (ci@tendon-health.dev)",
                      AWS_LAMBDA_FUNCTION_NAME="_", AWS_LAMBDA_FUNCTION_VERSION="1",
                      AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
                      RUST_LOG="warn")
        fn_env.pop("TENDON_BACKEND")

        def start(binary, invocations):
            proxy = emulator["proxy"]
            proxy.reset(invocations)
            env = dict(fn_env, AWS_LAMBDA_RUNTIME_API=f"http://127.0.0.1:{proxy.port}/.rt")
            t0 = time.monotonic()
            p = subprocess.Popen([os.path.join(release, binary)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return t0, p

        def call(payload, timeout=120):
            return invoke(emulator["port"], payload, timeout)

        def stop(p):
            p.kill()
            p.wait()

        def cold_start(binary, payload):
            """(init, first call, median warm call) in seconds, or None if an
            invocation was lost."""
            t0, p = start(binary, 1 + WARM)
            try:
                first, _ = call(payload, timeout=CHEAP_TIMEOUT)
                warm = statistics.median(call(payload, timeout=CHEAP_TIMEOUT)[0]
                                         for _ in range(WARM))
            except TimeoutError:
                return None
            finally:
                stop(p)
            first_next = emulator["proxy"].first_next
            if first_next is None:
                sys.exit(f"init_time: {binary} never asked for work")
            return first_next - t0, first - (first_next - t0), warm

        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        cheap = {
            "hello": {"hello": "world"},
            "ingest": http_event("POST", "/hl7", body="MSH|"),  # no key: 401, no AWS call
            "patient": {"Records": []},
            "episode": {"Records": []},
            "dispatch": scheduled_event(now),
            "cliniko-open": http_event("GET", "/cliniko/open/unknown-token"),
            "cliniko-sync": scheduled_event(now),
            "feedback": {"Records": []},
        }
        if args.only:
            cheap = {b: cheap[b] for b in ["hello", *args.only.split(",")]}
        # Rounds are interleaved (each round starts every binary once, in an
        # order rotated round by round), so the load on a shared machine
        # drifts over all of them alike rather than over one binary's rounds.
        samples = {b: {"init": [], "first": [], "warm": []} for b in cheap}
        order, lost = list(cheap), 0
        for r in range(args.rounds):
            k = r % len(order)
            for binary in order[k:] + order[:k]:
                while (m := cold_start(binary, cheap[binary])) is None:
                    # Now and then the emulator loses an invocation (it hands
                    # it to a killed process), and a lost one may reach a later
                    # process. A fresh emulator, and the cold start again.
                    lost += 1
                    if lost > max(5, len(order) * args.rounds // 20):
                        sys.exit(f"init_time: {lost} invocations lost in the emulator")
                    print(f"init_time: {binary}: an invocation was lost in the emulator; "
                          "restarted it, measuring again", file=sys.stderr)
                    start_emulator()
                for what, value in zip(("init", "first", "warm"), m):
                    samples[binary][what].append(value)
        results = {b: {key: statistics.median(v) for key, v in m.items()}
                   for b, m in samples.items()}
        for b, m in samples.items():
            # The ratio to hello within each round, then its median: what
            # drifts between rounds cancels out.
            results[b]["paired"] = statistics.median(
                i / h for i, h in zip(m["init"], samples["hello"]["init"]))

        # Representative work, for memory (and the duration of a real call).
        work = {}
        if args.only:
            report(args, results, work)
            return
        t0, p = start("ingest", 60)
        durations = []
        for n in range(60):
            body = HL7.format(cid=f"MSG{n:05}", n=n)
            d, reply = call(http_event(
                "POST", "/hl7", {"authorization": f"Bearer {key}", "content-type": "text/plain"},
                body))
            answer = json.loads(reply)
            text = answer.get("body", "")
            if answer.get("isBase64Encoded"):
                text = base64.b64decode(text).decode("utf-8", "replace")
            if "MSA|AA" not in text:
                sys.exit(f"init_time: ingest did not accept message {n}: {reply[:300]!r}")
            durations.append(d)
        work["ingest"] = ("60 posts", statistics.median(durations), peak_rss_kib(p.pid),
                          cpu_ms(p.pid) / 60)
        stop(p)
        for binary, queue in (("patient", "TENDON_PATIENTS_QUEUE_URL"),
                              ("episode", "TENDON_EPISODES_QUEUE_URL")):
            batches = sqs_batches(aws[queue], aws)
            t0, p = start(binary, len(batches))
            durations = [call(b)[0] for b in batches]
            n = sum(len(b["Records"]) for b in batches)
            work[binary] = (f"{n} records in {len(batches)} batches",
                            statistics.median(durations) if durations else 0.0,
                            peak_rss_kib(p.pid), cpu_ms(p.pid) / max(len(batches), 1))
            stop(p)
        t0, p = start("dispatch", 1)
        # A minute on: the welcome emails the work above scheduled are due.
        due = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 60))
        d, pass_report = call(scheduled_event(due))
        work["dispatch"] = (f"one pass: {pass_report.decode()}", d, peak_rss_kib(p.pid), cpu_ms(p.pid))
        stop(p)
        for binary in ("hello", "cliniko-open", "cliniko-sync", "feedback"):
            t0, p = start(binary, 1)
            d, _ = call(cheap[binary])
            work[binary] = ("the cheap event", d, peak_rss_kib(p.pid), cpu_ms(p.pid))
            stop(p)

        report(args, results, work)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    main()
