//! Shared pieces of the Tendon parse benchmark: the workload (corpus + one
//! synthetic ~1 MiB message), the field reads every peer performs, and the
//! Rust peers (Tendon and the `hl7-parser` crate); and what every bench
//! binary uses: the command line ([`Args`], [`parse_options`]) and
//! [`median`].
//!
//! The Medplum peer lives in `medplum/bench.mjs`; it carries its own copy of
//! [`READ_PATHS`] and `parse-bench` refuses to compare against it unless the
//! two lists are identical.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

mod args;
mod big;
mod tendon_peer;
pub use args::{Args, options_or_exit, parse_options};
pub use big::{BIG_NAME, BIG_TARGET_BYTES, big_message};
pub use tendon_peer::tendon_peer;

/// The raw HL7 paths behind the project's field map, read by every peer.
///
/// * `SEG-F`      – the whole first repetition of field F (components joined)
/// * `SEG-F.C`    – component C of the first repetition of field F
/// * `SEG-F[*].C` – component C of every repetition of field F
///
/// Every value is escape-decoded to a string. Only the first occurrence of
/// each segment is read; a missing segment, field or component is skipped.
pub const READ_PATHS: &[&str] = &[
    "MSH-4.1",
    "MSH-9.1",
    "MSH-9.2",
    "MSH-10",
    "PID-3[*].1",
    "PID-3[*].5",
    "PID-5.1",
    "PID-5.2",
    "PID-7",
    "PID-8",
    "PID-13[*].1",
    "PID-13[*].2",
    "PID-13[*].3",
    "PID-13[*].4",
    "PID-13[*].5",
    "PID-13[*].6",
    "PID-13[*].7",
    "PID-14[*].1",
    "SCH-1.1",
    "SCH-2.1",
    "SCH-7.1",
    "SCH-8.1",
    "SCH-8.2",
    "SCH-11.4",
    "SCH-25.1",
    "AIS-3.1",
    "AIS-3.2",
    "AIS-4",
    "AIL-3.1",
    "AIL-6",
    "AIP-3.1",
    "AIP-3.2",
    "AIP-3.3",
    "AIP-6",
    "PV1-3.1",
    "PV1-7.1",
    "PV1-7.2",
    "PV1-7.3",
    "PV1-19.1",
    "PV1-41.1",
    "PV2-3.1",
    "PV2-3.2",
    "DG1-3.2",
    "DG1-4",
    "MRG-1.1",
];

/// One read inside a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// HL7 field number (MSH-1 is the field separator, as in the standard).
    pub field: usize,
    /// Component number, or `None` for the whole repetition.
    pub component: Option<usize>,
    /// Read every repetition instead of only the first.
    pub all_reps: bool,
}

/// All reads of one segment, so a peer looks each segment up once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReads {
    pub segment: String,
    pub reads: Vec<Read>,
}

/// Parse one entry of [`READ_PATHS`].
pub fn parse_read_path(path: &str) -> Option<(String, Read)> {
    let (segment, rest) = path.split_once('-')?;
    let (field_part, component) = match rest.split_once('.') {
        Some((f, c)) => (f, Some(c.parse().ok()?)),
        None => (rest, None),
    };
    let (field, all_reps) = match field_part.strip_suffix("[*]") {
        Some(f) => (f.parse().ok()?, true),
        None => (field_part.parse().ok()?, false),
    };
    Some((
        segment.to_owned(),
        Read {
            field,
            component,
            all_reps,
        },
    ))
}

/// [`READ_PATHS`] grouped by segment, in first-appearance order.
pub fn read_plan() -> Vec<SegmentReads> {
    let mut plan: Vec<SegmentReads> = Vec::new();
    for path in READ_PATHS {
        let (segment, read) = parse_read_path(path).expect("valid read path");
        match plan.iter_mut().find(|s| s.segment == segment) {
            Some(s) => s.reads.push(read),
            None => plan.push(SegmentReads {
                segment,
                reads: vec![read],
            }),
        }
    }
    plan
}

/// What one pass of field reads produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Total byte length of all decoded values (the checksum).
    pub bytes: usize,
    /// Number of non-empty decoded values.
    pub values: usize,
}

impl Tally {
    fn add(&mut self, value: &str) {
        self.bytes += value.len();
        self.values += usize::from(!value.is_empty());
    }
}

/// The `hl7-parser` 0.3 peer: `Message::parse_with_lenient_newlines`, then the
/// [`READ_PATHS`] through its segment/field/repeat/component API, decoding
/// escapes with its `display()` facility into a reused buffer.
pub struct Hl7ParserPeer {
    plan: Vec<SegmentReads>,
    buf: String,
}

impl Default for Hl7ParserPeer {
    fn default() -> Self {
        Self::new()
    }
}

impl Hl7ParserPeer {
    pub fn new() -> Self {
        Self {
            plan: read_plan(),
            buf: String::with_capacity(256),
        }
    }

    /// Parse and read one message. The UTF-8 check (lossy fallback) is part of
    /// the measured work, as Tendon starts from bytes too.
    pub fn run(&mut self, input: &[u8]) -> Result<Tally, hl7_parser::parser::ParseError> {
        let text: Cow<'_, str> = match std::str::from_utf8(input) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(input),
        };
        let message = hl7_parser::Message::parse_with_lenient_newlines(&text, true)?;
        Ok(self.read(&message))
    }

    /// Like [`run`](Self::run), but also reports a parse that silently stopped
    /// before the end of the input (hl7-parser returns `Ok` with the segments
    /// it managed to read). Used outside the timed region.
    pub fn check(&mut self, input: &[u8]) -> Result<(Tally, Option<usize>), String> {
        let text = String::from_utf8_lossy(input);
        let message = hl7_parser::Message::parse_with_lenient_newlines(&text, true)
            .map_err(|e| e.to_string())?;
        let consumed = message.raw_value().len();
        let meaningful = text.trim_end_matches(['\r', '\n', '\u{1c}']).len();
        let stopped_at = (consumed < meaningful).then_some(consumed);
        Ok((self.read(&message), stopped_at))
    }

    fn read(&mut self, message: &hl7_parser::Message<'_>) -> Tally {
        let separators = &message.separators;
        let buf = &mut self.buf;
        let mut tally = Tally::default();
        for group in &self.plan {
            let Some(segment) = message.segment(&group.segment) else {
                continue;
            };
            for read in &group.reads {
                let Some(field) = segment.field(read.field) else {
                    continue;
                };
                let reps = if read.all_reps {
                    &field.repeats[..]
                } else {
                    &field.repeats[..field.repeats.len().min(1)]
                };
                for rep in reps {
                    buf.clear();
                    match read.component {
                        Some(c) => match rep.component(c) {
                            Some(comp) => write!(buf, "{}", comp.display(separators)),
                            None => continue,
                        },
                        None => write!(buf, "{}", rep.display(separators)),
                    }
                    .expect("writing to a String");
                    tally.add(buf);
                }
            }
        }
        tally
    }
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    lexical_join(Path::new(env!("CARGO_MANIFEST_DIR")), "../..")
}

/// `base/rel` with `..` resolved lexically (like the shell's logical `cd`),
/// so paths stay readable and symlinked checkouts resolve like in bash.
fn lexical_join(base: &Path, rel: &str) -> PathBuf {
    let mut out = base.to_path_buf();
    for part in Path::new(rel).components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `$CARGO_TARGET_DIR`, else `<repo>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join("target"),
    }
}

/// `$TENDON_SAMPLES`, else `<repo>/tests/fixtures/hl7/conformance`.
pub fn default_corpus_dir() -> PathBuf {
    match std::env::var_os("TENDON_SAMPLES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => lexical_join(&repo_root(), "tests/fixtures/hl7/conformance"),
    }
}

/// Every `*.hl7` file in `dir`, sorted by file name, as raw bytes.
pub fn load_corpus(dir: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "hl7") && path.is_file() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((name, std::fs::read(&path)?));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// The median of `v` (the mean of the middle two for an even count); `v`
/// must not be empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_paths_parse() {
        assert_eq!(
            parse_read_path("PID-13[*].7").unwrap(),
            (
                "PID".to_owned(),
                Read {
                    field: 13,
                    component: Some(7),
                    all_reps: true
                }
            )
        );
        assert_eq!(
            parse_read_path("MSH-10").unwrap().1,
            Read {
                field: 10,
                component: None,
                all_reps: false
            }
        );
        let plan = read_plan();
        assert_eq!(
            plan.iter().map(|s| s.reads.len()).sum::<usize>(),
            READ_PATHS.len()
        );
        assert_eq!(plan[0].segment, "MSH");
    }

    #[test]
    fn hl7_parser_peer_reads_standard_numbering_and_decodes() {
        let msg = b"MSH|^~\\&|APP|FAC|||20240101||SIU^S12|CTRL1|P|2.5\r\
                    PID|||123^^^^MR~456^^^^PI||DOE\\T\\X^JANE";
        let tally = Hl7ParserPeer::new().run(msg).unwrap();
        // FAC SIU S12 CTRL1 | 123 MR 456 PI | DOE&X JANE
        assert_eq!(
            tally,
            Tally {
                bytes: 3 + 3 + 3 + 5 + 3 + 2 + 3 + 2 + 5 + 4,
                values: 10
            }
        );
    }

    #[test]
    fn medplum_peer_reads_the_same_paths() {
        let js = include_str!("../medplum/bench.mjs");
        let start = js.find("READ_PATHS = [").expect("READ_PATHS in bench.mjs");
        let block = &js[start..start + js[start..].find("];").expect("end of READ_PATHS")];
        let js_paths: Vec<&str> = block.split('\'').skip(1).step_by(2).collect();
        assert_eq!(js_paths, READ_PATHS);
    }

    #[test]
    fn hl7_parser_reads_every_mapped_field_of_big_message() {
        let mut peer = Hl7ParserPeer::new();
        let (tally, stopped_at) = peer.check(&big_message()).unwrap();
        assert_eq!(stopped_at, None);
        // MRG is absent from an SIU; every other path has a value (PID-3 has
        // three repetitions, PID-13 three, PID-14 one).
        assert!(tally.values >= READ_PATHS.len() - 1, "{tally:?}");
    }
}
