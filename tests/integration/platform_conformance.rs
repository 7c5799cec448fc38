//! Conformance of `pullcheck::platform` with containerd/platforms, against
//! `../shared/vectors/platform_cases.json` (outputs of the upstream Go code at `09756f59`).
//!
//! Checked, every row:
//! * `upstream_tables.TestOnly`: `Only(Parse(platform)).Match(Parse(spec))` is
//!   [`MatcherKind::ContainerdOnly`];
//! * `upstream_tables.TestOnlyStrict`: `OnlyStrict(Parse(platform))` is
//!   [`MatcherKind::ContainerdStrict`] (both are `Ordered(Normalize(p))`);
//! * `matrix` (node `DefaultSpec()` x index entry): `match_Only_DefaultSpec` against
//!   `ContainerdOnly`, `match_Ordered_DefaultSpec` against `ContainerdStrict`,
//!   `match_windows_Default` (containerd running on Windows, where `Default()` is also
//!   `Only(DefaultSpec())`) against `ContainerdOnly`, and `match_quality` consistent with the pair;
//! * `matrix` node specs: `node_platform` rebuilds each `DefaultSpec()` from what the API shows,
//!   except the arm/v6 node, whose variant the API cannot reveal (`node_platform` assumes v7);
//! * `normalize`: `Platform::normalized`.
//!
//! All mismatches are collected and reported together.

use crate::common::vectors::{self, Checker};
use pullcheck::platform::{
    match_quality, matches, node_platform, MatchQuality, MatcherKind, Platform,
};
use serde_json::Value;

const MATRIX_ROWS: usize = 161;

fn load_vectors() -> Option<Value> {
    vectors::load("platform_cases.json")
}

fn platform_of(value: &Value) -> Result<Platform, String> {
    serde_json::from_value(value.clone()).map_err(|e| format!("bad platform {value}: {e}"))
}

fn check_upstream_table(c: &mut Checker, vectors: &Value, table: &str, kind: MatcherKind) {
    let Some(cases) = vectors["upstream_tables"][table]["cases"].as_array() else {
        c.fail(table, "table missing");
        return;
    };
    if cases.is_empty() {
        c.fail(table, "table empty");
    }
    for case in cases {
        let spec = case["platform"].as_str().unwrap_or("");
        let node = match Platform::parse(spec) {
            Ok(node) => node,
            Err(e) => {
                c.fail(&format!("{table} {spec:?}"), format!("parse failed: {e}"));
                continue;
            }
        };
        for (key, want) in [("true", true), ("false", false)] {
            for entry in case["matches"][key].as_array().into_iter().flatten() {
                let entry = entry.as_str().unwrap_or("");
                let context = format!("{table} {kind:?}: platform {spec:?} vs {entry:?}");
                match Platform::parse(entry) {
                    Ok(image) => c.eq(&context, matches(kind, &node, &image), want),
                    Err(e) => c.fail(&context, format!("parse failed: {e}")),
                }
            }
        }
    }
}

#[test]
fn upstream_only_and_only_strict_tables() {
    let Some(vectors) = load_vectors() else {
        return;
    };
    let mut c = Checker::default();
    check_upstream_table(&mut c, &vectors, "TestOnly", MatcherKind::ContainerdOnly);
    check_upstream_table(
        &mut c,
        &vectors,
        "TestOnlyStrict",
        MatcherKind::ContainerdStrict,
    );
    c.finish("upstream TestOnly/TestOnlyStrict");
}

#[test]
fn node_by_index_matrix_under_both_containerd_matchers() {
    let Some(vectors) = load_vectors() else {
        return;
    };
    let rows = vectors["matrix"].as_array().cloned().unwrap_or_default();
    let mut c = Checker::default();
    c.eq("matrix row count", rows.len(), MATRIX_ROWS);
    for (i, row) in rows.iter().enumerate() {
        let label = row["node"].as_str().unwrap_or("?");
        let (node, image) = match (
            platform_of(&row["node_default_spec"]),
            platform_of(&row["image_index_entry_platform"]),
        ) {
            (Ok(node), Ok(image)) => (node, image),
            (Err(e), _) | (_, Err(e)) => {
                c.fail(&format!("matrix[{i}]"), &e);
                continue;
            }
        };
        let context = |what: &str| format!("matrix[{i}] {what}: node {label} ({node}) vs {image}");
        let only = row["match_Only_DefaultSpec"].as_bool();
        let ordered = row["match_Ordered_DefaultSpec"].as_bool();
        let (Some(only), Some(ordered)) = (only, ordered) else {
            c.fail(&context("row"), "missing expected results");
            continue;
        };
        c.eq(
            &context("Only"),
            matches(MatcherKind::ContainerdOnly, &node, &image),
            only,
        );
        c.eq(
            &context("Ordered"),
            matches(MatcherKind::ContainerdStrict, &node, &image),
            ordered,
        );
        if let Some(windows_default) = row["match_windows_Default"].as_bool() {
            c.eq(
                &context("windows Default"),
                matches(MatcherKind::ContainerdOnly, &node, &image),
                windows_default,
            );
        }
        let want_quality = match (only, ordered) {
            (_, true) => Some(MatchQuality::Exact),
            (true, false) => Some(MatchQuality::Fallback),
            (false, false) => None,
        };
        c.eq(
            &context("match_quality(Only)"),
            match_quality(MatcherKind::ContainerdOnly, &node, &image),
            want_quality,
        );
        c.eq(
            &context("match_quality(Strict)"),
            match_quality(MatcherKind::ContainerdStrict, &node, &image),
            ordered.then_some(MatchQuality::Exact),
        );
    }
    c.finish("node x index matrix");
}

#[test]
fn node_platform_rebuilds_the_matrix_default_specs() {
    let Some(vectors) = load_vectors() else {
        return;
    };
    let mut c = Checker::default();
    let mut seen = Vec::new();
    for row in vectors["matrix"].as_array().into_iter().flatten() {
        let label = row["node"].as_str().unwrap_or("?").to_owned();
        if seen.contains(&label) {
            continue;
        }
        seen.push(label.clone());
        let spec = match platform_of(&row["node_default_spec"]) {
            Ok(spec) => spec,
            Err(e) => {
                c.fail(&label, &e);
                continue;
            }
        };
        // The API never reveals an arm node's cpuinfo variant; node_platform assumes v7.
        if spec.architecture == "arm" && spec.variant.as_deref() != Some("v7") {
            eprintln!("not rebuilt from the API (variant not advertised): {label}");
            continue;
        }
        let got = node_platform(
            &spec.os,
            &spec.architecture,
            spec.os_version.as_deref(),
            None,
        );
        c.eq(&format!("node_platform for {label}"), got, spec);
    }
    c.finish("node DefaultSpecs");
}

#[test]
fn normalize_table() {
    let Some(vectors) = load_vectors() else {
        return;
    };
    let mut c = Checker::default();
    for (i, case) in vectors["normalize"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        match (platform_of(&case["in"]), platform_of(&case["normalized"])) {
            (Ok(input), Ok(want)) => {
                c.eq(&format!("normalize[{i}] {input}"), input.normalized(), want)
            }
            (Err(e), _) | (_, Err(e)) => c.fail(&format!("normalize[{i}]"), &e),
        }
    }
    c.finish("normalize");
}
