//! The conformance corpus: `tests/fixtures/hl7/conformance` in the repo (see its
//! SOURCES.md), or `$TENDON_SAMPLES`.
use std::path::PathBuf;

pub fn corpus_dir() -> PathBuf {
    std::env::var_os("TENDON_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hl7/conformance")
        })
}

pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the HL7 corpus {} is needed (set TENDON_SAMPLES): {e}",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hl7"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// The external corpus: `tests/fixtures/hl7/external/<project>/**/*.hl7` (see
/// its SOURCES.md), gathered from other HL7 projects' test data.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn external_corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hl7/external")
}

/// Every `.hl7` file under `dir`, recursively, named by its path relative to
/// `dir` with `/` separators (`hapi-hl7v2/foo.hl7`), sorted by name.
#[allow(dead_code)]
pub fn hl7_files_under(dir: &std::path::Path) -> Vec<(String, PathBuf)> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, PathBuf)>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|x| x == "hl7") {
                let rel = path.strip_prefix(root).unwrap();
                let name = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((name, path));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The external corpus as (relative name, path, bytes).
#[allow(dead_code)]
pub fn external_corpus() -> Vec<(String, PathBuf, Vec<u8>)> {
    hl7_files_under(&external_corpus_dir())
        .into_iter()
        .map(|(name, path)| {
            let bytes = std::fs::read(&path).unwrap();
            (name, path, bytes)
        })
        .collect()
}
