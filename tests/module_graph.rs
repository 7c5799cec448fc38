//! The crate's architecture, checked from its source: data flows one way (front doors ->
//! engine -> credentials, registry, platform -> model), so the graph of `crate::` imports
//! between top-level modules has no cycle, the workload model imports nothing of the crate,
//! and the library never ends the process itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/check/mod.rs` -> `check`), `None` for the
/// crate root and the binary, which wire everything together.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let first = file.strip_prefix(src).ok()?.components().next()?;
    let name = first
        .as_os_str()
        .to_str()?
        .trim_end_matches(".rs")
        .to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// Every `crate::name` the text mentions, test modules included (a test that reaches up is
/// as much a cycle for the reader).
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        // `pullcheck::crate::` never occurs; skip `$crate::` in macros.
        if text[..at].ends_with('$') {
            continue;
        }
        let name: String = text[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

/// Module -> the other top-level modules it imports.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("read source");
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(crate_references(&text).into_iter().filter(|d| *d != module));
    }
    graph
}

/// A cycle through `start`, if any, as the path of modules.
fn cycle_from(
    graph: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    path: &mut Vec<String>,
) -> Option<Vec<String>> {
    let here = path.last().expect("non-empty path").clone();
    for next in graph.get(&here).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if !path.contains(next) {
            path.push(next.clone());
            if let Some(cycle) = cycle_from(graph, start, path) {
                return Some(cycle);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn module_imports_have_no_cycle() {
    let graph = import_graph();
    assert!(graph.len() > 10, "too few modules found: {graph:?}");
    for module in graph.keys() {
        let mut path = vec![module.clone()];
        if let Some(cycle) = cycle_from(&graph, module, &mut path) {
            panic!("module cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_workload_model_imports_nothing_of_the_crate() {
    let graph = import_graph();
    let deps = graph.get("workload").expect("src/workload.rs exists");
    assert!(deps.is_empty(), "workload imports {deps:?}");
}

#[test]
fn the_engine_knows_nothing_of_front_doors() {
    let graph = import_graph();
    let deps = graph.get("check").expect("src/check/ exists");
    for front in [
        "admission",
        "explain",
        "webhook",
        "policy",
        "server",
        "config",
    ] {
        assert!(!deps.contains(front), "check imports {front}: {deps:?}");
    }
}

#[test]
fn the_library_never_exits_the_process() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&src, &mut files);
    for file in files.iter().filter(|f| !f.ends_with("main.rs")) {
        let text = std::fs::read_to_string(file).expect("read source");
        // Unit tests may run helper processes that exit; the library's own code may not.
        let text = match text.find("#[cfg(test)]").or(text.find("#[cfg(all(test")) {
            Some(at) => &text[..at],
            None => &text[..],
        };
        assert!(
            !text.contains("process::exit"),
            "{} ends the process; main decides the exit status",
            file.display()
        );
    }
}

#[test]
fn crate_references_are_read_as_written() {
    let text = "use crate::check::{Engine};\nuse crate::workload::ImageUse;\n$crate::x";
    let got: Vec<String> = crate_references(text).into_iter().collect();
    assert_eq!(got, ["check", "workload"]);
}
