#!/usr/bin/env python3
"""The checks on template.yaml that scanners miss (run by infra/test after
cfn-lint, with the venv's Python: it reads the template with cfn-lint's own
decoder, which understands !Ref, !Sub and !GetAtt).

Each check prints what is wrong and where; the script exits non-zero if any
check fails. Usage: infra/template_checks.py [--self-test] [template.yaml]
(`--self-test` first checks that each check catches a template broken its way.)
"""
import json
import os
import re
import sys

from cfnlint.decode import decode

# Every public route, and how it authenticates in code (API Gateway has no
# authorizer on them). A new route must be added here, with its reason.
PUBLIC_ROUTES = {
    ("POST", "/hl7"): "bearer ingest key, checked against its stored hash",
    ("GET", "/unsubscribe/{org}/{patient}/{token}"): "HMAC token of (org, patient)",
    ("POST", "/unsubscribe/{org}/{patient}/{token}"): "HMAC token of (org, patient)",
    ("GET", "/cliniko/open/{token}"): "128-bit random per-connection token",
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
    print(f"template_checks: {path}: routes, DLQs, visibility, IAM, logs, encryption, alarms, dashboard ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
