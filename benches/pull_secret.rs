//! A pull secret is tenant input: the largest one the API server stores (1 MiB, the Secret size
//! limit) packed with as many registry keys as fit, read in both layouts and turned into a
//! keyring that then answers one lookup.
//! Run: cargo bench --bench pull_secret

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use pullcheck::credentials::dockerconfig::{self, SecretKind};
use pullcheck::credentials::keyring::Keyring;
use std::hint::black_box;

/// About 88,000 distinct keys (`"r12345":{}`) in just under 1 MiB.
const KEYS: usize = 88_000;

fn registry_map() -> String {
    let members: Vec<String> = (0..KEYS).map(|i| format!("\"r{i}\":{{}}")).collect();
    format!("{{{}}}", members.join(","))
}

fn bench(c: &mut Criterion) {
    let map = registry_map();
    let json = format!("{{\"auths\":{map}}}");
    assert!(json.len() <= 1 << 20, "{} bytes", json.len());

    let mut group = c.benchmark_group("pull_secret_1MiB_88k_keys");
    // One iteration per sample: a slow parse must not multiply into minutes.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("parse_dockerconfigjson", |b| {
        b.iter(|| dockerconfig::parse(SecretKind::DockerConfigJson, black_box(json.as_bytes())))
    });
    group.bench_function("parse_dockercfg", |b| {
        b.iter(|| dockerconfig::parse(SecretKind::DockerCfg, black_box(map.as_bytes())))
    });
    let entries = dockerconfig::parse(SecretKind::DockerConfigJson, json.as_bytes())
        .expect("the generated secret parses");
    group.bench_function("keyring_add_and_lookup", |b| {
        b.iter(|| {
            let mut keyring = Keyring::new();
            keyring.add("secret bench/big", black_box(&entries));
            keyring.lookup("r87999/app")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
