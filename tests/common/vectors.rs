//! Conformance vectors recorded from the upstream Go code (`../shared/vectors/*.json`) and a
//! checker that collects every mismatch against them before failing.
//!
//! The vectors live beside the crate, not in it: a fresh clone has no `../shared`, so a
//! conformance test skips (with a notice) instead of failing when its file is absent.

use std::fmt::{Debug, Display};
use std::path::PathBuf;

use serde_json::Value;

/// `../shared/vectors/<file>` parsed, or `None` (after printing a skipping notice) when the file
/// is not there.
pub fn load(file: &str) -> Option<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/vectors")
        .join(file);
    if !path.exists() {
        eprintln!("skipping: {} not present", path.display());
        return None;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {file}: {e}"));
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {file}: {e}")))
}

/// Collects mismatches instead of stopping at the first, so one run shows every divergence.
#[derive(Default)]
pub struct Checker {
    checked: usize,
    failures: Vec<String>,
}

impl Checker {
    pub fn eq<T: PartialEq + Debug>(&mut self, context: &str, got: T, want: T) {
        self.checked += 1;
        if got != want {
            self.failures.push(format!(
                "{context}\n      got:  {got:?}\n      want: {want:?}"
            ));
        }
    }

    /// A check that passed without a value to compare.
    pub fn pass(&mut self) {
        self.checked += 1;
    }

    pub fn fail(&mut self, context: &str, message: impl Display) {
        self.checked += 1;
        self.failures.push(format!("{context}: {message}"));
    }

    /// Fails when nothing was checked or anything failed.
    pub fn finish(self, what: &str) {
        assert!(self.checked > 0, "{what}: nothing was checked");
        self.finish_at_least(what, 1);
    }

    /// Fails when fewer than `minimum` checks ran (a vector table shrank or was skipped) or
    /// anything failed.
    pub fn finish_at_least(self, what: &str, minimum: usize) {
        assert!(
            self.checked >= minimum,
            "{what}: only {} checks ran, expected at least {minimum}",
            self.checked
        );
        assert!(
            self.failures.is_empty(),
            "{what}: {} of {} checks failed:\n  {}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n  ")
        );
        eprintln!("{what}: {} checks passed", self.checked);
    }
}
