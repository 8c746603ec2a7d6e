//! The shared conformance corpus: `../shared/hl7-samples` beside the repo, or `$TENDON_SAMPLES`.
use std::path::PathBuf;

pub fn corpus_dir() -> PathBuf {
    std::env::var_os("TENDON_SAMPLES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/hl7-samples")
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
