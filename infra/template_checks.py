#!/usr/bin/env python3
"""The checks on template.yaml that scanners miss (run by infra/test after
cfn-lint, with the venv's Python: it reads the template with cfn-lint's own
decoder, which understands !Ref, !Sub and !GetAtt).

The checks:
- routes: every HTTP route is one that authenticates in code, or /health,
  which is open on purpose (PUBLIC_ROUTES);
- queues: a DLQ on every queue that is not one, each encrypted with the
  customer-managed key, VisibilityTimeout at least 6x its consumer's Timeout;
- IAM: no wildcard action or resource, no managed policy;
- logs: every function logs to a log group of the template, each with a
  retention period and the customer-managed key;
- table: point-in-time recovery and the customer-managed key;
- alarms: each DLQ's depth, each function's errors and throttles, the SES
  bounce and complaint rates, each alarm notifying someone;
- dashboard: the metric filters match log lines the code still writes, and
  the dashboard shows the metrics and the queue depths;
- environment: each function sets exactly the TENDON_* variables its code
  reads, from its binary's `main` through the workspace crates (a static
  analysis of the Rust sources; ENV_UNSET_OK lists deliberate gaps).

Each check prints what is wrong and where; the script exits non-zero if any
check fails. Usage: infra/template_checks.py [--self-test] [template.yaml]
(`--self-test` first checks that each check catches a template broken its way.)
"""
import glob
import json
import os
import re
import sys
import tomllib

from cfnlint.decode import decode

# Every public route, and how it authenticates in code (API Gateway has no
# authorizer on them). A new route must be added here, with its reason.
PUBLIC_ROUTES = {
    ("POST", "/hl7"): "bearer ingest key, checked against its stored hash",
    ("GET", "/unsubscribe/{org}/{patient}/{token}"): "HMAC token of (org, patient)",
    ("POST", "/unsubscribe/{org}/{patient}/{token}"): "HMAC token of (org, patient)",
    ("GET", "/cliniko/open/{token}"): "128-bit random per-connection token",
    # Deliberately open: load balancers and uptime checks call it without a
    # key. It reads nothing stored and answers only which part fails.
    ("GET", "/health"): "none needed: answers only ok or which part fails, no data",
}

VISIBILITY_FACTOR = 6


def resources_of(template, kind):
    return {
        name: r.get("Properties", {}) or {}
        for name, r in template.get("Resources", {}).items()
        if r.get("Type") == kind
    }


def ref_name(value):
    """The logical ID a !Ref or !GetAtt points at, if it is one."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            att = value["Fn::GetAtt"]
            return att[0] if isinstance(att, list) else str(att).split(".")[0]
    return None


def as_list(v):
    return v if isinstance(v, list) else [v]


def check(template):
    errors = []
    functions = resources_of(template, "AWS::Serverless::Function")
    queues = resources_of(template, "AWS::SQS::Queue")
    globals_timeout = (
        template.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    )

    # Routes.
    for fname, props in functions.items():
        for ename, event in (props.get("Events") or {}).items():
            if event.get("Type") in ("HttpApi", "Api"):
                p = event.get("Properties", {})
                route = (str(p.get("Method", "")).upper(), p.get("Path"))
                if route not in PUBLIC_ROUTES:
                    errors.append(
                        f"{fname}.{ename}: route {route} is not one of the routes that authenticate in code"
                    )
                if p.get("Auth"):
                    pass  # an authorizer only adds protection

    # Queues: a DLQ on every one that is not itself a DLQ, and 6x visibility.
    dlqs = {
        ref_name(q.get("RedrivePolicy", {}).get("deadLetterTargetArn"))
        for q in queues.values()
        if q.get("RedrivePolicy")
    }
    for qname, q in queues.items():
        if qname not in dlqs and not q.get("RedrivePolicy"):
            errors.append(f"{qname}: a queue without a dead-letter queue")
        if not q.get("KmsMasterKeyId"):
            errors.append(f"{qname}: not encrypted with the customer-managed key")
    for fname, props in functions.items():
        timeout = props.get("Timeout", globals_timeout)
        for ename, event in (props.get("Events") or {}).items():
            if event.get("Type") != "SQS":
                continue
            qname = ref_name(event.get("Properties", {}).get("Queue"))
            visibility = queues.get(qname, {}).get("VisibilityTimeout", 30)
            if visibility < VISIBILITY_FACTOR * timeout:
                errors.append(
                    f"{qname}: VisibilityTimeout {visibility} s is less than {VISIBILITY_FACTOR}x {fname}'s Timeout ({timeout} s)"
                )

    # IAM: no wildcard action or resource in any function's policy.
    for fname, props in functions.items():
        for policy in as_list(props.get("Policies") or []):
            if not isinstance(policy, dict):
                errors.append(f"{fname}: a managed policy ({policy}); write its statements")
                continue
            for st in as_list(policy.get("Statement", [])):
                for action in as_list(st.get("Action", [])):
                    if "*" in str(action):
                        errors.append(f"{fname}: wildcard action {action}")
                for res in as_list(st.get("Resource", [])):
                    if res == "*":
                        errors.append(f"{fname}: wildcard resource for {st.get('Action')}")

    # Logs: every function logs to its own group, kept for a while, encrypted.
    groups = resources_of(template, "AWS::Logs::LogGroup")
    for gname, g in groups.items():
        if not g.get("RetentionInDays"):
            errors.append(f"{gname}: no retention period")
        if not g.get("KmsKeyId"):
            errors.append(f"{gname}: not encrypted with the customer-managed key")
    for fname, props in functions.items():
        group = ref_name((props.get("LoggingConfig") or {}).get("LogGroup"))
        if group not in groups:
            errors.append(f"{fname}: does not log to a log group of this template")

    # The table: PITR and the customer-managed key.
    for tname, t in resources_of(template, "AWS::DynamoDB::Table").items():
        if not (t.get("PointInTimeRecoverySpecification") or {}).get(
            "PointInTimeRecoveryEnabled"
        ):
            errors.append(f"{tname}: point-in-time recovery is off")
        sse = t.get("SSESpecification") or {}
        if not (sse.get("SSEEnabled") and sse.get("KMSMasterKeyId")):
            errors.append(f"{tname}: not encrypted with the customer-managed key")
        # The by_org index projects what the code decodes from it
        # (shared/aws/src/items.rs BY_ORG_PROJECTED), no more, no less.
        with open(os.path.join(ROOT, "shared", "aws", "src", "items.rs")) as f:
            listed = re.search(r"BY_ORG_PROJECTED: &\[&str\] = &\[(.*?)\];", f.read(), re.S)
        wanted = re.findall(r'"([^"]+)"', listed.group(1)) if listed else []
        for index in t.get("GlobalSecondaryIndexes") or []:
            if index.get("IndexName") == "by_org":
                have = (index.get("Projection") or {}).get("NonKeyAttributes") or []
                if sorted(have) != sorted(wanted):
                    errors.append(f"{tname}: by_org projects {have}, the code reads {wanted}")

    # Alarms: each DLQ, each function's errors and throttles, SES rates.
    alarms = resources_of(template, "AWS::CloudWatch::Alarm").values()
    watched = {
        (a.get("MetricName"), ref_name(d.get("Value")))
        for a in alarms
        for d in (a.get("Dimensions") or [{}])
    }
    for dlq in dlqs:
        if ("ApproximateNumberOfMessagesVisible", dlq) not in watched:
            errors.append(f"{dlq}: no alarm on its depth")
    for fname in functions:
        for metric in ("Errors", "Throttles"):
            if (metric, fname) not in watched:
                errors.append(f"{fname}: no alarm on {metric}")
    for metric in ("Reputation.BounceRate", "Reputation.ComplaintRate"):
        if (metric, None) not in watched:
            errors.append(f"no alarm on SES {metric}")
    for a in alarms:
        if not a.get("AlarmActions"):
            errors.append(f"alarm {a.get('AlarmName')} notifies nobody")

    # The dashboard's metrics come from log lines the code still writes.
    sources = code_text()
    metrics = set()
    for fname, f in resources_of(template, "AWS::Logs::MetricFilter").items():
        for message in re.findall(r'\$\.fields\.message = "([^"]+)"', f.get("FilterPattern", "")):
            if f'"{message}"' not in sources:
                errors.append(f"{fname}: no code logs the message {message!r}")
        for m in f.get("MetricTransformations", []):
            metrics.add(m.get("MetricName"))
    for wanted in ("MessagesIn", "PatientsCreated", "Failures", "StepsSent"):
        if wanted not in metrics:
            errors.append(f"no metric filter makes {wanted}")
    dashboards = resources_of(template, "AWS::CloudWatch::Dashboard")
    if not dashboards:
        errors.append("no dashboard")
    for dname, d in dashboards.items():
        body = d.get("DashboardBody")
        if isinstance(body, dict) and "Fn::Sub" in body:
            body = body["Fn::Sub"][0] if isinstance(body["Fn::Sub"], list) else body["Fn::Sub"]
        try:
            widgets = json.loads(re.sub(r"\$\{[^}]+\}", "X", str(body)))["widgets"]
        except (ValueError, KeyError) as e:
            errors.append(f"{dname}: the body is not dashboard JSON ({e})")
            continue
        shown = json.dumps(widgets)
        for wanted in ("MessagesIn", "PatientsCreated", "Failures", "StepsSent", "ApproximateNumberOfMessagesVisible"):
            if wanted not in shown:
                errors.append(f"{dname}: does not show {wanted}")

    # Environment: each function sets exactly the TENDON_* variables its code reads.
    errors += env_errors(template)
    return errors


def code_text():
    """The Rust sources of shared/, where the log lines are written."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "shared")
    out = []
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".rs"):
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    out.append(f.read())
    return "\n".join(out)


# --- Environment: what each function's code reads, against what the template sets.
#
# A small static analysis of the Rust sources (no cargo: the checks must run in
# seconds, on the venv alone). From each function binary's `main` it follows
# calls through the workspace crates the binary depends on, and collects the
# `var(...)`/`var_os(...)` calls whose argument is an `ENV_*` constant or a
# "TENDON_*" literal. Only reads count, not mentions: code that lists the
# variables (bootstrap's `vars()`, `env_vars()`) sets them for another process.
# Tests (`#[cfg(test)]` items, `tests/` directories) are not parsed, so the
# harness's own variables (TENDON_MOTO_SERVER, TENDON_SAMPLES) never count.
# Calls resolve by path where the path names a type or a workspace module,
# and otherwise only when the name is unique, so a read behind an ambiguous
# method name (a trait method of several stores) would be missed: the check
# then reports the variable as set but never read, which asks for a look.

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# (function, variable): read by the function's code, deliberately left unset
# by the template, with the reason. Empty: every variable the code reads is set.
ENV_UNSET_OK = {}

_LEXEME = re.compile(r"""//|/\*|(?<!\w)b?r#*"|"|'""")
_STRING = re.compile(r'"(?:[^"\\]|\\[\s\S])*"')
_CHAR_LITERAL = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")


def _mask_rust(src):
    """(code, text): `src` with comments blanked in both, and the insides of
    string and char literals blanked in `code` too. Offsets are unchanged, so
    braces and names are matched in `code` and a literal's value read from `text`."""
    code, text = list(src), list(src)

    def blank(a, b, also_text):
        spaces = re.sub(r"[^\n]", " ", src[a:b])
        code[a:b] = spaces
        if also_text:
            text[a:b] = spaces

    i, n = 0, len(src)
    while (m := _LEXEME.search(src, i)):
        i, lexeme = m.start(), m.group()
        if lexeme == "//":
            j = src.find("\n", i)
            j = n if j < 0 else j
            blank(i, j, True)
        elif lexeme == "/*":  # block comments nest in Rust
            depth, j = 1, i + 2
            while depth and j < n:
                opens, closes = src.find("/*", j), src.find("*/", j)
                if closes < 0:
                    j = n
                elif 0 <= opens < closes:
                    depth, j = depth + 1, opens + 2
                else:
                    depth, j = depth - 1, closes + 2
            blank(i, j, True)
        elif lexeme == '"':
            s = _STRING.match(src, i)
            j = s.end() if s else n
            blank(i + 1, j - 1, False)
        elif lexeme.endswith('"'):  # a raw string, r#"..."#
            close = '"' + "#" * lexeme.count("#")
            k = src.find(close, m.end())
            j = n if k < 0 else k + len(close)
            blank(m.end(), j - len(close), False)
        else:
            c = _CHAR_LITERAL.match(src, i)
            j = c.end() if c else i + 1  # else a lifetime
            if c:
                blank(i + 1, j - 1, False)
        i = j
    return "".join(code), "".join(text)


def _item_open(code, i):
    """The index of the `{` that opens the item whose header starts at `i`, or
    None if a `;` ends it first (a declaration, `mod x;`)."""
    depth = 0
    for j in range(i, len(code)):
        ch = code[j]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0 and ch == "{":
            return j
        elif depth == 0 and ch == ";":
            return None
    return None


def _close(code, open_brace):
    """The index just after the `}` matching the `{` at `open_brace`."""
    depth = 0
    for j in range(open_brace, len(code)):
        if code[j] == "{":
            depth += 1
        elif code[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(code)


def _workspace_crates():
    """{crate ident: (dir, package manifest)} of the workspace members."""
    with open(os.path.join(ROOT, "Cargo.toml"), "rb") as f:
        members = tomllib.load(f)["workspace"]["members"]
    crates = {}
    for member in members:
        for crate_dir in sorted(glob.glob(os.path.join(ROOT, member))):  # members may be globs
            manifest_path = os.path.join(crate_dir, "Cargo.toml")
            if not os.path.exists(manifest_path):  # cargo's error to report, not ours
                continue
            with open(manifest_path, "rb") as f:
                manifest = tomllib.load(f)
            crates[manifest["package"]["name"].replace("-", "_")] = (crate_dir, manifest)
    return crates


def _binaries(crates):
    """{binary name: (crate ident, path of its root file)}."""
    bins = {}
    for ident, (crate_dir, manifest) in crates.items():
        declared = manifest.get("bin", [])
        if not declared and os.path.exists(os.path.join(crate_dir, "src", "main.rs")):
            declared = [{"name": manifest["package"]["name"], "path": "src/main.rs"}]
        for b in declared:
            path = b.get("path") or f"src/bin/{b['name']}.rs"
            bins[b["name"]] = (ident, os.path.join(crate_dir, path))
    return bins


def _crate_files(crate_dir, root_file=None):
    """(path, module path) of a crate's sources: its library, plus `root_file`
    (a binary's main) if given. Never tests/, benches/, examples/, other binaries."""
    src = os.path.join(crate_dir, "src")
    out = []
    if root_file:
        out.append((root_file, ()))
    for dirpath, _, files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        parts = () if rel == "." else tuple(rel.split(os.sep))
        if parts[:1] == ("bin",):
            continue
        for name in sorted(files):
            if not name.endswith(".rs") or (not parts and name == "main.rs"):
                continue
            if not parts and name == "lib.rs":
                module = ()
            elif name == "mod.rs":
                module = parts
            else:
                module = parts + (name[:-3],)
            out.append((os.path.join(dirpath, name), module))
    return out


def _parse_rust(path, crate, module):
    """The fns (with bodies) and `ENV_*` string consts of one file, its
    `#[cfg(test)]` items left out; and the modules it declares test-only."""
    with open(path, encoding="utf-8") as f:
        code, text = _mask_rust(f.read())
    test_modules = set()
    for m in re.finditer(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", code):
        if not code[m.start()].strip():  # already blanked with an outer item
            continue
        brace = _item_open(code, m.end())
        if brace is None:  # `#[cfg(test)] mod x;`: the file x.rs is test-only
            decl = re.match(r"[\s\S]*?\bmod\s+(\w+)\s*;", code[m.end():])
            if decl:
                test_modules.add(module + (decl.group(1),))
            continue
        end = _close(code, brace)
        blank = re.sub(r"[^\n]", " ", code[m.start():end])
        code = code[: m.start()] + blank + code[end:]
        text = text[: m.start()] + blank + text[end:]

    # impl and trait blocks, for the type a method belongs to.
    owners = []
    for m in re.finditer(r"\b(impl|trait)\b", code):
        # An item follows `;`, `}`, `{` or an attribute's `]` (after `pub`,
        # `unsafe`): else this is `impl Trait` in a type, or `-> impl Future`.
        k = m.start()
        while True:
            while k > 0 and code[k - 1].isspace():
                k -= 1
            qualifier = re.search(r"(?:\bpub(?:\s*\([^)]*\))?|\bunsafe)$", code[max(0, k - 40):k])
            if not qualifier:
                break
            k -= len(qualifier.group())
        if k > 0 and code[k - 1] not in ";{}]":
            continue
        brace = _item_open(code, m.end())
        if brace is None:
            continue
        header = re.split(r"\bwhere\b", code[m.end():brace])[0].strip()
        if m.group(1) == "impl":
            if header.startswith("<"):  # the impl's own generics
                depth = 0
                for k, ch in enumerate(header):
                    depth += {"<": 1, ">": -1}.get(ch, 0)
                    if depth == 0:
                        header = header[k + 1:]
                        break
            header = re.split(r"\bfor\b", header)[-1]
        # `Type` of `a::Type<T>`; a trait's name comes before its supertraits.
        names = re.findall(r"\w+", re.sub(r"[<:][\s\S]*", "", header) if m.group(1) == "trait"
                           else re.sub(r"<[\s\S]*", "", header))
        if names:
            owners.append((brace, _close(code, brace), names[0 if m.group(1) == "trait" else -1]))

    fns = []
    for m in re.finditer(r"\bfn\s+(\w+)", code):
        brace = _item_open(code, m.end())
        if brace is None:  # a trait method without a default body
            continue
        end = _close(code, brace)
        inside = [o for o in owners if o[0] < m.start() < o[1]]
        owner = min(inside, key=lambda o: o[1] - o[0])[2] if inside else None
        fns.append({
            "name": m.group(1), "owner": owner, "crate": crate, "module": module,
            "path": path, "code": code[brace:end], "text": text[brace:end],
        })
    consts = [
        (crate, module, m.group(1), m.group(2))
        for m in re.finditer(r'\bconst\s+(ENV_\w+)\s*:\s*&\s*(?:\'static\s+)?str\s*=\s*"([^"]*)"', text)
    ]
    return fns, consts, test_modules


# Lower-case words before a `(` that are not calls.
_RUST_KEYWORDS = {"if", "while", "for", "match", "loop", "return", "move", "in", "as", "self", "super", "crate"}


def _binary_env_reads(binary, crates, bins):
    """{TENDON_* variable: the call chain from `main` to a read of it} of
    `binary`, or None if the workspace has no such binary."""
    if binary not in bins:
        return None
    ident, root_file = bins[binary]
    # The binary's crate and, transitively, the workspace crates it depends on.
    universe, todo = [], [ident]
    while todo:
        c = todo.pop()
        if c in universe:
            continue
        universe.append(c)
        deps = crates[c][1].get("dependencies", {})
        todo.extend(d.replace("-", "_") for d in deps if d.replace("-", "_") in crates)
    external = {"std", "core", "alloc"} | {
        d.replace("-", "_") for c in universe for d in crates[c][1].get("dependencies", {})
    } - set(crates)

    fns, consts, test_modules = [], [], set()
    for c in universe:
        for path, module in _crate_files(crates[c][0], root_file if c == ident else None):
            if path not in _PARSED:  # shared crates are parsed once, not per binary
                _PARSED[path] = _parse_rust(path, c, module)
            f, k, t = _PARSED[path]
            fns += f
            consts += k
            test_modules |= {(c, m) for m in t}
    fns = [f for f in fns if not any(
        (f["crate"], f["module"][: len(m)]) == (c, m) for c, m in test_modules)]

    free = {}
    methods = {}
    for f in fns:
        (methods if f["owner"] else free).setdefault(f["name"], []).append(f)

    def module_of(segs, f):
        """(crate, module, rest) a path's leading segments name, if they do."""
        if segs[0] == "crate":
            return f["crate"], (), segs[1:]
        if segs[0] == "self":
            return f["crate"], f["module"], segs[1:]
        if segs[0] == "super":
            return f["crate"], f["module"][:-1], segs[1:]
        if segs[0] in crates:
            return segs[0], (), segs[1:]
        return None

    def resolve_path(segs, name, f):
        if segs[-1] == "Self" or segs[-1][:1].isupper():  # Type::name
            owner = f["owner"] if segs[-1] == "Self" else segs[-1]
            return [g for g in methods.get(name, []) if g["owner"] == owner]
        at = module_of(segs, f)
        if at:
            krate, module, rest = at
            found = [g for g in free.get(name, [])
                     if g["crate"] == krate and g["module"] == module + tuple(rest)]
            if found:
                return found
            if krate not in universe:
                return []
        elif segs[0] in external:  # `lambda_runtime::run` is not our `run`
            return []
        # A re-export or an imported module: by name, if unique.
        candidates = free.get(name, [])
        return candidates if len(candidates) == 1 else []

    def callees(f):
        code = f["code"]
        out = []
        for m in re.finditer(r"(?<![\w:])((?:\w+\s*::\s*)+)([a-z_]\w*)\b(?!\s*::)", code):
            segs = [s.strip() for s in m.group(1).split("::") if s.strip()]
            out += resolve_path(segs, m.group(2), f)
        # A fn named alone: called, or passed as a value (a route's handler,
        # `get(hl7::<A>)`, with its turbofish).
        for m in re.finditer(r"(?<![\w:.!])(?<!fn )([a-z_]\w*)\b(?!\s*::\s*(?!<))\s*(\()?", code):
            name, call = m.group(1), m.group(2)
            if name in _RUST_KEYWORDS:
                continue
            here = [g for g in free.get(name, []) if g["path"] == f["path"]]
            if here:  # a fn of this file, called or passed as a value
                out += here
            elif call and len(free.get(name, [])) == 1:
                out += free[name]
        for m in re.finditer(r"\.\s*([a-z_]\w*)\s*(?:::\s*<[^()]*>\s*)?\(", code):
            if len(methods.get(m.group(1), [])) == 1:
                out += methods[m.group(1)]
        return out

    def const_values(segs, name, f):
        at = module_of(segs, f) if segs else (f["crate"], f["module"], [])
        if at:
            krate, module, rest = at
            exact = [v for c, mo, n, v in consts if (c, mo, n) == (krate, module + tuple(rest), name)]
            if exact:
                return exact
        return [v for c, mo, n, v in consts if n == name]  # imported: by name

    def reads(f):
        out = set()
        for m in re.finditer(r"\bvar(?:_os)?\s*\(\s*&?\s*((?:\w+::)*)(ENV_\w+)\b", f["code"]):
            segs = [s for s in m.group(1).split("::") if s]
            out.update(const_values(segs, m.group(2), f))
        for m in re.finditer(r'\bvar(?:_os)?\s*\(\s*&?\s*"', f["code"]):
            literal = re.match(r'"(TENDON_\w+)"', f["text"][m.end() - 1:])
            if literal:
                out.add(literal.group(1))
        return {v for v in out if v.startswith("TENDON_")}

    def label(f):
        return f"{f['owner']}::{f['name']}" if f["owner"] else f["name"]

    # Breadth first from `main`, so each variable's call chain is a shortest one.
    mains = [f for f in fns if f["path"] == root_file and f["name"] == "main" and not f["owner"]]
    chains = {id(f): [label(f)] for f in mains}
    todo, found = list(mains), {}
    while todo:
        f = todo.pop(0)
        for var in reads(f):
            found.setdefault(var, chains[id(f)])
        for g in callees(f):
            if id(g) not in chains:
                chains[id(g)] = chains[id(f)] + [label(g)]
                todo.append(g)
    return found


_PARSED = {}
_ENV_READS = {}


def code_env_reads(binary):
    """{variable: call chain} of `binary`, or None (see _binary_env_reads).
    Cached: the self-test checks a dozen broken templates on the same code."""
    if binary not in _ENV_READS:
        crates = _workspace_crates()
        _ENV_READS[binary] = _binary_env_reads(binary, crates, _binaries(crates))
    return _ENV_READS[binary]


def env_errors(template):
    """Each function sets exactly the TENDON_* variables its code reads."""
    errors = []
    globals_vars = (
        ((template.get("Globals", {}).get("Function", {}) or {}).get("Environment") or {})
        .get("Variables") or {}
    )
    for fname, r in template.get("Resources", {}).items():
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        meta = r.get("Metadata") or {}
        props = r.get("Properties") or {}
        if meta.get("BuildMethod") != "rust-cargolambda":
            errors.append(f"{fname}: not built from this workspace (BuildMethod rust-cargolambda), so its environment is unchecked")
            continue
        # cargo-lambda builds the binary BuildProperties.Binary names (the
        # Handler is `bootstrap`, the name of every custom-runtime executable).
        binary = (meta.get("BuildProperties") or {}).get("Binary")
        if not binary and props.get("Handler") not in (None, "bootstrap"):
            binary = props.get("Handler")
        reads = code_env_reads(binary) if binary else None
        if reads is None:
            errors.append(f"{fname}: builds binary {binary!r}, which no workspace crate has")
            continue
        if not reads:
            # Every function needs at least its table: none found means the
            # analysis lost the trail, not that the function needs nothing.
            errors.append(f"{fname}: no environment variable read found in the code of binary {binary!r}")
        sets = {
            k for k in {**globals_vars, **((props.get("Environment") or {}).get("Variables") or {})}
            if str(k).startswith("TENDON_")
        }
        for var in sorted(set(reads) - sets):
            if (fname, var) not in ENV_UNSET_OK:
                errors.append(
                    f"{fname}: its code reads {var} ({' -> '.join(reads[var])} in binary {binary}), which the template does not set"
                )
        for var in sorted(sets - set(reads)):
            errors.append(f"{fname}: sets {var}, which its code (binary {binary}) never reads")
        for f, var in ENV_UNSET_OK:
            if f == fname and (var in sets or var not in reads):
                errors.append(f"ENV_UNSET_OK: ({fname}, {var}) is stale: drop it")
    return errors


def self_test(template):
    """Each check fails on a template broken its way (so none passes vacuously)."""
    import copy

    def broken(change):
        t = copy.deepcopy(template)
        change(t["Resources"])
        return check(t)

    def first(res, kind):
        return next(n for n, r in res.items() if r.get("Type") == kind)

    def fn(res):
        return res[first(res, "AWS::Serverless::Function")]["Properties"]

    def env(res, name):
        return res[name]["Properties"]["Environment"]["Variables"]

    cases = {
        "an unauthenticated route": lambda r: fn(r)["Events"].update(
            {"Admin": {"Type": "HttpApi", "Properties": {"Method": "GET", "Path": "/admin"}}}
        ),
        "a queue without a DLQ": lambda r: r["PatientsQueue"]["Properties"].pop("RedrivePolicy"),
        "visibility under 6x": lambda r: r["PatientsQueue"]["Properties"].update(
            {"VisibilityTimeout": 60}
        ),
        "a wildcard resource": lambda r: fn(r)["Policies"][0]["Statement"].append(
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}
        ),
        "a wildcard action": lambda r: fn(r)["Policies"][0]["Statement"].append(
            {"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "arn:x"}
        ),
        "a log group kept forever": lambda r: r[first(r, "AWS::Logs::LogGroup")]["Properties"].pop(
            "RetentionInDays"
        ),
        "no PITR": lambda r: r["Table"]["Properties"].pop("PointInTimeRecoverySpecification"),
        "a DLQ without an alarm": lambda r: r.pop("PatientsDlqDepthAlarm"),
        "no SES bounce alarm": lambda r: r.pop("SesBounceRateAlarm"),
        "no dashboard": lambda r: r.pop("Dashboard"),
        "a metric filter on a log line nobody writes": lambda r: r["StepsSentMetric"]["Properties"].update(
            {"FilterPattern": '{ $.fields.message = "no such line" }'}
        ),
        # The first function is ingest: its store reads TENDON_TABLE.
        "a variable the code reads left unset": lambda r: env(r, first(r, "AWS::Serverless::Function")).pop(
            "TENDON_TABLE"
        ),
        # Read two calls deep (run_queue_function -> handle_sqs_batch), with a default.
        "an optional variable left unset": lambda r: env(r, "PatientFunction").pop("TENDON_MAX_RECEIVE_COUNT"),
        "a variable no code reads": lambda r: env(r, first(r, "AWS::Serverless::Function")).update(
            {"TENDON_FOO": "x"}
        ),
        # Read by dispatch only: the sets are per function, not the union.
        "a variable another function's code reads": lambda r: env(r, "IngestFunction").update(
            {"TENDON_SES_SENDER": "x"}
        ),
        "a binary the workspace does not build": lambda r: r["IngestFunction"]["Metadata"][
            "BuildProperties"
        ].update({"Binary": "no-such-binary"}),
    }
    failed = []
    for name, change in cases.items():
        if not broken(change):
            failed.append(name)
    for name in failed:
        print(f"template_checks: self-test: {name} went unnoticed")
    return 1 if failed else 0


def main():
    args = [a for a in sys.argv[1:] if a != "--self-test"]
    path = args[0] if args else "template.yaml"
    template, matches = decode(path)
    if "--self-test" in sys.argv[1:] and not matches:
        if self_test(template):
            return 1
    if matches:
        for m in matches:
            print(f"template_checks: {path}: {m}")
        return 1
    errors = check(template)
    for e in errors:
        print(f"template_checks: {e}")
    if errors:
        return 1
    print(f"template_checks: {path}: routes, DLQs, visibility, IAM, logs, encryption, alarms, dashboard, environment ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
