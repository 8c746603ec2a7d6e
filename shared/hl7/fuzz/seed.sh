#!/usr/bin/env bash
# Fills corpus/parse with seeds for the `parse` target:
#  - the repo's HL7 fixture messages (tests/fixtures/hl7, copied at run time;
#    corpus/ is gitignored);
#  - a few small synthetic messages for paths the samples do not reach.
# Usage: shared/hl7/fuzz/seed.sh [SAMPLES_DIR]
# SAMPLES_DIR defaults to $HL7_SAMPLES, then tests/fixtures/hl7 in the repo
# (searched recursively: the conformance and the external corpus).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
samples="${1:-${HL7_SAMPLES:-$repo/tests/fixtures/hl7}}"
out="$here/corpus/parse"
mkdir -p "$out"

n=0
if [ -d "$samples" ]; then
  while IFS= read -r -d '' f; do
    # The path in the name keeps files of the same name from two projects apart.
    rel=${f#"$samples"/}
    cp "$f" "$out/sample_${rel//\//_}"
    n=$((n + 1))
  done < <(find "$samples" -name '*.hl7' -type f -print0)
fi
echo "copied $n sample messages from $samples" >&2

seed() { printf '%b' "$2" > "$out/synthetic_$1"; }
seed minimal         'MSH|^~\\&|A\rPID|1'
seed crlf            'MSH|^~\\&|A|B|C|D|20261120093000-0800||ADT^A08|C1|P|2.5.1\r\nPID|1||P1^^^ACME^MR||Doe^Jane\r\n'
seed lf_only         'MSH|^~\\&|A|B|C|D|20261120||SIU^S12|C2|P|2.3\nSCH|1|2\nPID|1||X~Y'
seed mllp_bom        '\x0b\xef\xbb\xbfMSH|^~\\&|A\rPID|1\r\x1c\r'
seed custom_delims   'MSH#$*@%!#A#B\rPID#1##P1$x!F!y%a*P2'
seed truncation      'MSH|^~\\&#|A\rNTE|1||cut \\P\\ \\F\\\\S\\\\T\\\\R\\\\E\\'
seed hex_escape      'MSH|^~\\&|A\rNTE|1||a\\X0D0A\\b\\XC3A9\\c\\.br\\d\\H\\e\\N\\'
seed nulls_empties   'MSH|^~\\&|A||||""||ADT^A04|""|P\rPID|""||""~||&&^^\rPD1\rEVN|'
seed latin1          'MSH|^~\\&|A||||||ADT^A08|1|P|2.3||||||8859/1\rPID|1||1||M\xfcller^J\xf6rg'
seed latin9          'MSH|^~\\&|A||||||ADT^A08|1|P|2.3||||||8859/15\rPID|1||1||\xa4\xa6'
seed bad_utf8        'MSH|^~\\&|A||||||ADT^A08|1|P|2.5||||||UNICODE UTF-8\rPID|1||1||\xc3\x28'
seed timestamps      'MSH|^~\\&|A|||20261120093000.1234+1400||SIU^S14|1|P|2.5\rSCH|1|||||||||||^^^20260308023000^20260308033000'
seed broken_body     '\x0bMSH|^~\\&|EMR|ACME01|TENDON|T|2026||ADT^A01| C1 |P|2.5\r!!bad'
echo "corpus/parse now holds $(ls "$out" | wc -l) files" >&2
