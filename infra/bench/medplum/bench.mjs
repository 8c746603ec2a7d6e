#!/usr/bin/env node
// Medplum peer of the Tendon parse benchmark (see docs/benchmarks.md).
//
// Parses every *.hl7 file of the corpus plus the synthetic big.hl7 that
// parse-bench writes, with @medplum/core's Hl7Message, and performs the same
// escape-decoded field reads as the Rust peers (READ_PATHS below must equal
// tendon_bench::READ_PATHS; parse-bench checks it).
//
// Standalone:  node bench.mjs [--corpus DIR] [--big FILE] [--node-dir DIR]
//                             [--rounds N] [--round-secs S] [--quick]
//              prints {msgs_per_s, mb_per_s, checksum, ...} as JSON.
// Served:      node bench.mjs --serve ...   (driven by parse-bench)
//              prints a "ready" JSON line, then answers each stdin line
//              "round SECS" with {"passes":P,"secs":S}; "quit" exits.
//
// @medplum/core is loaded from the npm prefix --node-dir (default
// <target>/bench-node), where infra/bench/parse installs it.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const READ_PATHS = [
  'MSH-4.1', 'MSH-9.1', 'MSH-9.2', 'MSH-10',
  'PID-3[*].1', 'PID-3[*].5', 'PID-5.1', 'PID-5.2', 'PID-7', 'PID-8',
  'PID-13[*].1', 'PID-13[*].2', 'PID-13[*].3', 'PID-13[*].4', 'PID-13[*].5', 'PID-13[*].6', 'PID-13[*].7',
  'PID-14[*].1',
  'SCH-1.1', 'SCH-2.1', 'SCH-7.1', 'SCH-8.1', 'SCH-8.2', 'SCH-11.4', 'SCH-25.1',
  'AIS-3.1', 'AIS-3.2', 'AIS-4',
  'AIL-3.1', 'AIL-6',
  'AIP-3.1', 'AIP-3.2', 'AIP-3.3', 'AIP-6',
  'PV1-3.1', 'PV1-7.1', 'PV1-7.2', 'PV1-7.3', 'PV1-19.1', 'PV1-41.1',
  'PV2-3.1', 'PV2-3.2',
  'DG1-3.2', 'DG1-4',
  'MRG-1.1',
];

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '..', '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR || join(repo, 'target');

function parseArgs(argv) {
  const o = {
    serve: false,
    corpus: process.env.TENDON_SAMPLES || join(repo, 'tests', 'fixtures', 'hl7', 'conformance'),
    big: join(targetDir, 'bench', 'big.hl7'),
    nodeDir: join(targetDir, 'bench-node'),
    rounds: 7,
    roundSecs: 0.5,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--serve': o.serve = true; break;
      case '--corpus': o.corpus = value(); break;
      case '--big': o.big = value(); break;
      case '--node-dir': o.nodeDir = value(); break;
      case '--rounds': o.rounds = Number.parseInt(value(), 10); break;
      case '--round-secs': o.roundSecs = Number.parseFloat(value()); break;
      case '--quick': o.rounds = 3; o.roundSecs = 0.1; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (!(o.rounds >= 1) || !(o.roundSecs > 0)) throw new Error('bad --rounds/--round-secs');
  o.corpus = resolve(o.corpus);
  o.big = resolve(o.big);
  o.nodeDir = resolve(o.nodeDir);
  return o;
}

// "SEG-F", "SEG-F.C", "SEG-F[*].C" -> reads grouped by segment (first-appearance order).
function readPlan() {
  const plan = [];
  for (const path of READ_PATHS) {
    const m = /^([A-Z0-9]{3})-(\d+)(\[\*\])?(?:\.(\d+))?$/.exec(path);
    if (!m) throw new Error(`bad read path ${path}`);
    const read = { field: Number(m[2]), allReps: m[3] !== undefined, component: m[4] ? Number(m[4]) : 0 };
    let group = plan.find((g) => g.segment === m[1]);
    if (!group) {
      group = { segment: m[1], reads: [] };
      plan.push(group);
    }
    group.reads.push(read);
  }
  return plan;
}

// Medplum's Hl7Message does not decode escapes, so the benchmark does it here
// (standard HL7 v2 escapes: \F\ \S\ \T\ \R\ \E\, \Xhh..\ as UTF-8 bytes,
// \.br\ -> CR, \H\ \N\ dropped, anything else kept verbatim).
function decode(s, ctx) {
  const esc = ctx.escapeCharacter;
  let i = s.indexOf(esc);
  if (i === -1) return s;
  let out = '';
  let last = 0;
  while (i !== -1) {
    const j = s.indexOf(esc, i + 1);
    if (j === -1) break; // unterminated: keep the rest literally
    const seq = s.slice(i + 1, j);
    let rep;
    switch (seq) {
      case 'F': rep = ctx.fieldSeparator; break;
      case 'S': rep = ctx.componentSeparator; break;
      case 'T': rep = ctx.subcomponentSeparator; break;
      case 'R': rep = ctx.repetitionSeparator; break;
      case 'E': rep = esc; break;
      case '.br': rep = '\r'; break;
      case 'H':
      case 'N': rep = ''; break;
      default:
        rep = /^X(?:[0-9A-Fa-f]{2})+$/.test(seq)
          ? Buffer.from(seq.slice(1), 'hex').toString('utf8')
          : s.slice(i, j + 1);
    }
    out += s.slice(last, i) + rep;
    last = j + 1;
    i = s.indexOf(esc, last);
  }
  return out + s.slice(last);
}

function makeRunner(Hl7Message, plan) {
  const tally = { bytes: 0, values: 0 };
  // Parse one message (bytes -> UTF-8 string -> Hl7Message) and do every read.
  function runOne(buf) {
    const msg = Hl7Message.parse(buf.toString('utf8'));
    const ctx = msg.context;
    let bytes = 0;
    let values = 0;
    for (const group of plan) {
      const seg = msg.getSegment(group.segment);
      if (!seg) continue;
      for (const read of group.reads) {
        const field = seg.getField(read.field); // MSH numbering handled by getField
        if (!field) continue;
        const reps = read.allReps ? field.components.length : Math.min(1, field.components.length);
        for (let r = 0; r < reps; r++) {
          const raw = read.component === 0
            ? field.components[r].join(ctx.componentSeparator)
            : field.getComponent(read.component, undefined, r);
          const v = decode(raw, ctx);
          bytes += v.length;
          if (v.length !== 0) values++;
        }
      }
    }
    tally.bytes = bytes;
    tally.values = values;
    return bytes;
  }
  return { runOne, tally };
}

function loadWorkload(o) {
  const files = readdirSync(o.corpus)
    .filter((n) => n.endsWith('.hl7') && statSync(join(o.corpus, n)).isFile())
    .sort();
  const workload = files.map((name) => ({ name, buf: readFileSync(join(o.corpus, name)) }));
  workload.push({ name: 'big.hl7 (synthetic SIU^S12)', buf: readFileSync(o.big) });
  return { files, workload };
}

let sink = 0;

function timeRound(workload, runOne, secs) {
  const budget = BigInt(Math.round(secs * 1e9));
  const start = process.hrtime.bigint();
  let passes = 0;
  let acc = 0;
  let now;
  for (;;) {
    for (let k = 0; k < workload.length; k++) {
      try {
        acc += runOne(workload[k].buf);
      } catch {
        acc += 1; // failed messages count as processed
      }
    }
    passes++;
    now = process.hrtime.bigint();
    if (now - start >= budget) break;
  }
  sink ^= acc;
  return { passes, secs: Number(now - start) / 1e9 };
}

function median(xs) {
  const v = [...xs].sort((a, b) => a - b);
  const n = v.length;
  return n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

function main() {
  const o = parseArgs(process.argv.slice(2));
  // @medplum/core 5.x declares node >= 22.18 and reads WebSocket.CLOSING at
  // load time (its subscription manager). Node 20 only has WebSocket behind
  // --experimental-websocket; the HL7 code never touches it, so a stub with
  // the standard constants is enough to load the package on node 20.
  if (typeof globalThis.WebSocket === 'undefined') {
    globalThis.WebSocket = class WebSocketUnavailable {
      static CONNECTING = 0;
      static OPEN = 1;
      static CLOSING = 2;
      static CLOSED = 3;
      constructor() {
        throw new Error('WebSocket is not available in the HL7 benchmark');
      }
    };
  }
  const require = createRequire(join(o.nodeDir, 'package.json'));
  const { Hl7Message } = require('@medplum/core');
  const version = JSON.parse(
    readFileSync(join(o.nodeDir, 'node_modules', '@medplum', 'core', 'package.json'), 'utf8'),
  ).version;

  const { files, workload } = loadWorkload(o);
  const { runOne, tally } = makeRunner(Hl7Message, readPlan());
  const passBytes = workload.reduce((n, m) => n + m.buf.length, 0);

  // Untimed correctness pass: checksum, non-empty values, failures.
  let checksum = 0;
  let values = 0;
  const failures = [];
  for (const m of workload) {
    try {
      runOne(m.buf);
      checksum += tally.bytes;
      values += tally.values;
    } catch (e) {
      failures.push({ file: m.name, error: String(e?.message ?? e) });
    }
  }
  const info = {
    version,
    node: process.versions.node,
    files,
    messages: workload.length,
    bytes: passBytes,
    reads: READ_PATHS,
    checksum,
    values,
    failures,
  };

  if (o.serve) {
    process.stdout.write(JSON.stringify(info) + '\n');
    const rl = createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      const [cmd, arg] = line.trim().split(/\s+/);
      if (cmd === 'round') {
        const r = timeRound(workload, runOne, Number.parseFloat(arg));
        process.stdout.write(JSON.stringify(r) + '\n');
      } else if (cmd === 'quit') {
        process.exit(0);
      } else {
        process.stdout.write(JSON.stringify({ error: `unknown command ${cmd}` }) + '\n');
      }
    });
    return;
  }

  timeRound(workload, runOne, Math.max(o.roundSecs / 2, 0.05)); // warm-up
  const rates = [];
  for (let i = 0; i < o.rounds; i++) {
    const r = timeRound(workload, runOne, o.roundSecs);
    rates.push((r.passes * workload.length) / r.secs);
  }
  const msgsPerS = median(rates);
  const mbPerS = (msgsPerS * passBytes) / workload.length / 1e6;
  process.stdout.write(
    JSON.stringify({ msgs_per_s: msgsPerS, mb_per_s: mbPerS, checksum, ...info, rounds_msgs_per_s: rates, sink: sink & 1 }, null, 2) + '\n',
  );
}

main();
