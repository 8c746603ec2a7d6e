#!/usr/bin/env python3
"""An independent reading of the default HL7 field map (docs/interface.md §3).

python-hl7 (`hl7`, pinned in infra/requirements-test.txt) does the parsing and
the navigation: segments, fields, repetitions, components, subcomponents and
escapes. The contract's selection rules (first non-empty alternative, the MR
identifier, the NET e-mail, the CP mobile, the NPI repetition, table 0278) are
written out here from the contract text, not from the Rust code, so that
shared/core/tests/external_corpus.rs can compare the two readings.

    hl7_peer.py FILE_OR_DIR...

prints one JSON object per file (a file is one message), one per line:
{"file": path, "fields": {<§3.1 name>: value or null, ...}, "error": null or text}.
Values are formatted as `tendon hl7 inspect` prints them: ISO dates, RFC 3339
instants (read in America/New_York when the value has no offset), the gender
and status words, E.164 mobile numbers.
"""

import datetime
import json
import os
import re
import sys
import zoneinfo

import hl7
import hl7.parser
import hl7.util

ZONE = zoneinfo.ZoneInfo("America/New_York")

FIELDS = [
    "account_id",
    "control_id",
    "message_type",
    "patient_id",
    "patient_family_name",
    "patient_given_name",
    "patient_birth_date",
    "patient_gender",
    "patient_email",
    "patient_mobile",
    "appointment_id",
    "clinic_id",
    "appointment_category",
    "appointment_type",
    "appointment_start",
    "appointment_status",
    "case_id",
    "case_description",
    "case_status",
    "treating_therapist_id",
    "treating_therapist_family_name",
    "treating_therapist_given_name",
    "treating_therapist_npi",
    "supervising_therapist_id",
    "supervising_therapist_family_name",
    "supervising_therapist_given_name",
    "supervising_therapist_npi",
]

# Line breaks that stay inside a field are hidden from python-hl7, which
# splits segments on every CR; these private-use characters stand in for them.
IN_FIELD = {"\r": "\ue000", "\n": "\ue001"}
RESTORE = {v: k for k, v in IN_FIELD.items()}

# HL7 table 0211 names to Python codecs (without spaces, dashes, slashes).
CHARSETS = {
    "ASCII": "ascii",
    "ISOIR6": "ascii",
    "88591": "latin-1",
    "ISOIR100": "latin-1",
    "88592": "iso8859-2",
    "88593": "iso8859-3",
    "88594": "iso8859-4",
    "88595": "iso8859-5",
    "88596": "iso8859-6",
    "88597": "iso8859-7",
    "88598": "iso8859-8",
    "88599": "iso8859-9",
    "885915": "iso8859-15",
    "ISOIR87": "iso2022_jp",
    "ISOIR159": "iso2022_jp_2",
    "GB18030": "gb18030",
    "KSX1001": "euc_kr",
    "BIG5": "big5",
    "CNS11643": "big5",
}

DTM = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?)?)?)?)?"
    r"(?:([+-])(\d{2})(\d{2}))?"
)

GENDERS = {"M": "male", "F": "female", "O": "other", "A": "other", "N": "other", "U": "unknown"}

# HL7 table 0278 as the contract maps it; `Blocked` is a slot, not a visit.
STATUSES = {
    "booked": "scheduled",
    "pending": "scheduled",
    "waitlist": "scheduled",
    "overbook": "scheduled",
    "complete": "arrived",
    "arrived": "arrived",
    "started": "arrived",
    "cancelled": "canceled",
    "dc": "canceled",
    "noshow": "no_show",
    "deleted": "deleted",
}
TRIGGER_STATUS = {"S15": "canceled", "S17": "deleted", "S26": "no_show"}

NPI_OID = "2.16.840.1.113883.4.6"


class NotHl7(Exception):
    pass


def strip_framing(data):
    """Drops a UTF-8 BOM, MLLP bytes and surrounding blank space."""
    while True:
        before = data
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        data = data.lstrip(b"\x0b\x1c\r\n \t")
        if data == before:
            break
    return data.rstrip(b"\x0b\x1c\r\n \t")


def decode(body):
    """Valid UTF-8 is UTF-8; anything else follows MSH-18, else ISO-8859-1."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = msh18(body.decode("latin-1"))
    codec = CHARSETS.get(re.sub(r"[\s/_-]", "", declared.upper()), "latin-1")
    try:
        return body.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return body.decode("latin-1")


def msh18(text):
    """MSH-18.1 read with python-hl7 from the first line, as ASCII."""
    first = re.split(r"[\r\n]", text, maxsplit=1)[0]
    try:
        msg = hl7.parse(first)
        return leaf(component(repetitions(field(msg.segment("MSH"), 18))[0:1], 1)) or ""
    except Exception:
        return ""


def split_segments(text, sep):
    """A run of line breaks ends a segment when a segment ID (three characters
    [A-Z][A-Z0-9]{2}, then the field separator or the end of the line) follows;
    other line breaks are text inside a field."""
    boundary = re.compile(
        r"[\r\n][\r\n \t]*(?=[A-Z][A-Z0-9]{2}(?:" + re.escape(sep) + r"|[\r\n]|$))"
    )
    return [s for s in boundary.split(text) if s.strip()]


def parse(data):
    body = strip_framing(data)
    text = decode(body)
    if not text.startswith("MSH") or len(text) < 8:
        raise NotHl7("the message does not start with MSH and its encoding characters")
    sep = text[3]
    if sep.isalnum() or sep.isspace():
        raise NotHl7("MSH-1 is not a separator")
    segments = split_segments(text, sep)
    hidden = [re.sub(r"[\r\n]", lambda m: IN_FIELD[m.group()], s) for s in segments]
    joined = "\r".join(hidden)
    end = joined.find(sep, 4)
    enc = joined[4:end] if end > 0 else joined[4:]
    # HL7 wants distinct encoding characters, none of them the
    # field separator; python-hl7 does not check, and reads nonsense otherwise.
    if not 3 <= len(enc) <= 5 or len(set(enc + sep)) != len(enc) + 1:
        raise NotHl7("MSH-2 %r is not three to five distinct encoding characters" % enc)
    if any(ch.isalnum() or ch.isspace() for ch in enc):
        raise NotHl7("MSH-2 %r holds a letter, digit or space" % enc)
    if len(enc) == 3:
        # Three encoding characters: the third is the escape (its place in
        # MSH-2), unless it is `&`, the usual subcomponent separator. python-hl7
        # would split subcomponents on `&` either way, so its plan is set up
        # by hand (an unused character stands for the missing one).
        esc, subsep = ("\x00", "&") if enc[2] == "&" else (enc[2], "\x01")
        plan = hl7.parser._ParsePlan(
            "\r",
            "\r" + sep + enc[1] + enc[0] + subsep,
            [
                hl7.Factory.create_message,
                hl7.Factory.create_segment,
                hl7.Factory.create_field,
                hl7.Factory.create_repetition,
                hl7.Factory.create_component,
            ],
            esc,
            hl7.Factory,
        )
        return hl7.parser._split(joined, plan)
    return hl7.parse(joined)


# --- navigation over python-hl7's containers ---------------------------------
# A python-hl7 field holds either one string (no separators in it) or
# repetitions, which hold either one string or components, which hold strings.


def first_segment(msg, seg_id):
    for seg in msg:
        if seg and seg[0] and str(seg[0][0]) == seg_id:
            return seg
    return None


def field(seg, n):
    """Field n (as python-hl7 numbers MSH, MSH-3 is seg[3]); None when absent."""
    if seg is None or n >= len(seg):
        return None
    return seg[n]


def repetitions(f):
    if f is None:
        return []
    return [r for r in f]


def component(reps, c):
    """Component c of the first of `reps` (a list of repetitions)."""
    if not reps:
        return None
    rep = reps[0]
    if isinstance(rep, str):
        return [rep] if c == 1 else None
    if c > len(rep):
        return None
    comp = rep[c - 1]
    return [comp] if isinstance(comp, str) else list(comp)


def sub(comp, s):
    if comp is None or s > len(comp):
        return None
    return comp[s - 1]


def leaf(comp):
    return sub(comp, 1)


class Reader:
    def __init__(self, msg):
        self.msg = msg
        self.app_map = {"H": "", "N": ""}  # highlighting carries no text

    def text(self, raw):
        """Decoded text of one primitive; None when absent, empty or `""`."""
        if raw is None or raw == "" or raw == '""':
            return None
        value = hl7.util.unescape(self.msg, raw, self.app_map)
        value = "".join(RESTORE.get(ch, ch) for ch in value)
        # A line break inside a value is read as a space.
        words = [w.strip() for w in re.split(r"[\r\n]", value)]
        value = " ".join(w for w in words if w).strip()
        return value or None

    def rep_value(self, rep, c, s=1):
        return self.text(sub(component([rep], c), s))

    def reps(self, seg_id, n):
        return repetitions(field(first_segment(self.msg, seg_id), n))

    def at(self, seg_id, n, c=1, s=1):
        """SEG-n.c.s in the first repetition of the first such segment."""
        return self.text(sub(component(self.reps(seg_id, n), c), s))


def first(*values):
    return next((v for v in values if v is not None), None)


def eq(value, want):
    return value is not None and value.upper() == want.upper()


def dtm(raw):
    """An HL7 DTM as (datetime without zone, offset or None); None if malformed."""
    m = DTM.fullmatch(raw.strip()) if raw else None
    if not m:
        return None
    y, mo, d, h, mi, s, frac, sign, oh, om = m.groups()
    try:
        when = datetime.datetime(
            int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0)
        )
    except ValueError:
        return None
    offset = None
    if sign:
        if int(oh) > 14 or int(om) > 59:
            return None
        minutes = int(oh) * 60 + int(om)
        offset = datetime.timedelta(minutes=-minutes if sign == "-" else minutes)
    return when, offset, d is not None


def birth_date(raw):
    parsed = dtm(raw)
    if not parsed or not parsed[2]:
        return None
    return parsed[0].date().isoformat()


def instant(raw):
    parsed = dtm(raw)
    if not parsed:
        return None
    when, offset, _ = parsed
    if offset is not None:
        aware = when.replace(tzinfo=datetime.timezone(offset))
    else:
        # Through UTC, so a wall time that DST skips moves forward.
        aware = when.replace(tzinfo=ZONE).astimezone(datetime.timezone.utc).astimezone(ZONE)
    total = int(aware.utcoffset().total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    return aware.strftime("%Y-%m-%dT%H:%M:%S") + "%s%02d:%02d" % (sign, abs(total) // 60, abs(total) % 60)


def email(raw):
    if raw is None:
        return None
    local, at, domain = raw.partition("@")
    ok = (
        at
        and local
        and "@" not in domain
        and "." in domain
        and not domain.startswith(".")
        and not domain.endswith(".")
        and not re.search(r"\s", raw)
    )
    return raw if ok else None


def e164(raw):
    """A free-text number in E.164: `+` numbers keep their country code, ten
    digits (or eleven with a leading 1) are North American."""
    if raw is None:
        return None
    digits = re.sub(r"\D", "", raw)
    if raw.lstrip().startswith("+"):
        return "+" + digits if 8 <= len(digits) <= 15 else None
    if len(digits) == 10:
        return "+1" + digits
    if len(digits) == 11 and digits.startswith("1"):
        return "+" + digits
    return None


def e164_parts(country, area, local):
    def digits(s):
        return re.sub(r"\D", "", s or "")

    country, number = digits(country), digits(area) + digits(local)
    if not number:
        return None
    if country in ("", "1"):
        return "+1" + number if len(number) == 10 else None
    return e164("+" + country + number)


def map_fields(msg):
    r = Reader(msg)
    f = {}
    f["account_id"] = r.at("MSH", 4, 1)
    f["control_id"] = r.at("MSH", 10)
    code, trigger = r.at("MSH", 9, 1), r.at("MSH", 9, 2)
    f["message_type"] = None if code is None else (code if trigger is None else code + "^" + trigger)

    pid3 = r.reps("PID", 3)
    mr = next((rep for rep in pid3 if eq(r.rep_value(rep, 5), "MR")), None)
    f["patient_id"] = first(r.rep_value(mr, 1) if mr is not None else None, r.at("PID", 3, 1))
    f["patient_family_name"] = r.at("PID", 5, 1)
    f["patient_given_name"] = r.at("PID", 5, 2)
    f["patient_birth_date"] = birth_date(r.at("PID", 7))
    gender = r.at("PID", 8)
    f["patient_gender"] = GENDERS.get(gender.upper()) if gender else None

    pid13 = r.reps("PID", 13)
    net = next(
        (
            rep
            for rep in pid13
            if (eq(r.rep_value(rep, 2), "NET") or eq(r.rep_value(rep, 3), "Internet"))
            and r.rep_value(rep, 4) is not None
        ),
        None,
    )
    address = r.rep_value(net, 4) if net is not None else None
    if address is None:
        for rep in pid13 + r.reps("PID", 14):
            comps = [rep] if isinstance(rep, str) else list(rep)
            found = [r.rep_value(rep, c) for c in range(1, len(comps) + 1)]
            address = next((v for v in found if v and "@" in v), None)
            if address:
                break
    f["patient_email"] = email(address)

    cp = next((rep for rep in pid13 if eq(r.rep_value(rep, 3), "CP")), None)
    untyped = next((rep for rep in pid13 if r.rep_value(rep, 3) is None), None)
    # The alternatives in order; the first that was sent is the number.
    candidates = []
    if cp is not None:
        parts = [r.rep_value(cp, c) for c in (5, 6, 7)]
        if parts[1] or parts[2]:
            candidates.append(lambda: e164_parts(*parts))
        if r.rep_value(cp, 1):
            candidates.append(lambda: e164(r.rep_value(cp, 1)))
    if untyped is not None and r.rep_value(untyped, 1):
        candidates.append(lambda: e164(r.rep_value(untyped, 1)))
    mobile = candidates[0]() if candidates else None
    f["patient_mobile"] = mobile

    f["appointment_id"] = first(r.at("SCH", 2, 1), r.at("SCH", 1, 1))
    f["clinic_id"] = first(r.at("AIL", 3, 1), r.at("PV1", 3, 1))
    f["appointment_category"] = r.at("SCH", 7, 1)
    f["appointment_type"] = first(
        r.at("SCH", 8, 2), r.at("SCH", 8, 1), r.at("AIS", 3, 2), r.at("AIS", 3, 1)
    )
    f["appointment_start"] = instant(
        first(r.at("SCH", 11, 4), r.at("AIS", 4), r.at("AIL", 6), r.at("AIP", 6))
    )

    by_trigger = TRIGGER_STATUS.get((trigger or "").upper()) if eq(code, "SIU") else None
    sch25 = r.at("SCH", 25, 1)
    f["appointment_status"] = by_trigger or (STATUSES.get(sch25.lower()) if sch25 else None)

    f["case_id"] = r.at("PV1", 19, 1)
    f["case_description"] = first(
        r.at("PV2", 3, 2), r.at("PV2", 3, 1), r.at("DG1", 4), r.at("DG1", 3, 2)
    )
    if first_segment(msg, "PV1") is None:
        f["case_status"] = None  # no case without a visit
    else:
        status = (r.at("PV1", 41, 1) or "active").lower()
        f["case_status"] = status if status in ("active", "inactive") else None

    for role, seg_id, n in (("treating", "AIP", 3), ("supervising", "PV1", 7)):
        f[role + "_therapist_id"] = r.at(seg_id, n, 1)
        f[role + "_therapist_family_name"] = r.at(seg_id, n, 2)
        f[role + "_therapist_given_name"] = r.at(seg_id, n, 3)
        npi = None
        for rep in r.reps(seg_id, n):
            authority = [r.rep_value(rep, 9, 1), r.rep_value(rep, 9, 2)]
            if eq(r.rep_value(rep, 13), "NPI") or any(
                eq(a, "NPI") or a == NPI_OID for a in authority
            ):
                npi = r.rep_value(rep, 1)
                break
        f[role + "_therapist_npi"] = npi
    return {name: f[name] for name in FIELDS}


def read(path):
    with open(path, "rb") as fh:
        data = fh.read()
    try:
        return {"file": path, "fields": map_fields(parse(data)), "error": None}
    except Exception as e:  # one bad file must not stop the run
        return {"file": path, "fields": {n: None for n in FIELDS}, "error": "%s: %s" % (type(e).__name__, e)}


def files(args):
    for arg in args:
        if os.path.isdir(arg):
            for root, _, names in sorted(os.walk(arg)):
                for name in sorted(names):
                    if name.endswith(".hl7"):
                        yield os.path.join(root, name)
        else:
            yield arg


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    out = sys.stdout
    for path in files(argv):
        out.write(json.dumps(read(path), ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
