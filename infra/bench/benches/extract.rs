//! `cargo bench -p tendon-bench`: Tendon's parse + field extraction on the
//! corpus and on the synthetic ~1 MiB SIU^S12 (see docs/benchmarks.md).
//! The side-by-side comparison with other parsers is `infra/bench/parse`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tendon_bench::{big_message, default_corpus_dir, load_corpus, tendon_peer};

fn parse_extract(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse+extract");

    let dir = default_corpus_dir();
    match load_corpus(&dir) {
        Ok(corpus) if !corpus.is_empty() => {
            let bytes: usize = corpus.iter().map(|(_, m)| m.len()).sum();
            group.throughput(Throughput::Bytes(bytes as u64));
            group.bench_function("corpus", |b| {
                b.iter(|| {
                    corpus
                        .iter()
                        .map(|(_, m)| tendon_peer(black_box(m)))
                        .sum::<usize>()
                })
            });
        }
        _ => eprintln!(
            "parse+extract/corpus skipped: no *.hl7 in {} (set TENDON_SAMPLES)",
            dir.display()
        ),
    }

    let big = big_message();
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("1MiB", |b| b.iter(|| tendon_peer(black_box(&big))));

    group.finish();
}

criterion_group!(benches, parse_extract);
criterion_main!(benches);
