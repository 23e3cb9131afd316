//! The layering rule, checked on the sources: each layer folder imports only from the
//! layers below it, and by layer path (`crate::store::...`), never through the crate
//! root's re-exports, so that a wrong-way import is visible and caught here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What each layer may name after `crate::` (besides itself): the layers below it, what
/// every layer shares (the error type, the user's cache folder), and the test-data
/// generator (compiled only for tests and benchmarks).
const LAYERS: &[(&str, &[&str])] = &[
    ("store", &[]),
    ("cache", &[]),
    ("search", &["store"]),
    ("ingest", &["store", "cache"]),
    ("sql", &["store", "search"]),
];
const SHARED: &[&str] = &["error", "synthetic", "user_cache_home"];

/// One import that breaks the rule.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    names: String,
}

/// The first path segments named after each `crate::` in `line` (`crate::{a, b::c}`
/// names `a` and `b`).
fn crate_segments(line: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        // `lancet_crate::` or `my_crate::` are other paths.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let head = item.trim().split("::").next().unwrap_or("").trim();
                if !head.is_empty() {
                    names.push(head.to_string());
                }
            }
        } else {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            names.push(head);
        }
    }
    names
}

/// How many `super::` lead a path in `line` (the longest run on the line).
fn super_depth(line: &str) -> usize {
    let mut deepest = 0;
    for (at, _) in line.match_indices("super::") {
        let before = line[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let mut depth = 0;
        let mut rest = &line[at..];
        while let Some(next) = rest.strip_prefix("super::") {
            depth += 1;
            rest = next;
        }
        deepest = deepest.max(depth);
    }
    deepest
}

/// The module path of a source file under a layer folder, without the layer
/// (`search/hot/mod.rs` -> `[hot]`, `search/filter.rs` -> `[filter]`, `store/mod.rs` -> `[]`).
fn module_depth(relative: &Path) -> usize {
    let parts: Vec<_> = relative.components().collect();
    let file_is_mod = relative.file_name().is_some_and(|n| n == "mod.rs");
    // Components after the layer folder, the file counting unless it is `mod.rs`.
    parts.len() - 1 - usize::from(file_is_mod)
}

/// The rule's violations in one layer's source text.
fn check_source(layer: &str, relative: &Path, source: &str) -> Vec<Violation> {
    let allowed: BTreeSet<&str> = LAYERS
        .iter()
        .find(|(name, _)| *name == layer)
        .map(|(_, below)| below.iter().copied())
        .into_iter()
        .flatten()
        .chain(SHARED.iter().copied())
        .chain([layer])
        .collect();
    let depth = module_depth(relative);
    let mut found = Vec::new();
    for (number, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut wrong: Vec<String> = crate_segments(code)
            .into_iter()
            .filter(|name| !allowed.contains(name.as_str()))
            .collect();
        if super_depth(code) > depth {
            wrong.push("super:: beyond the layer".to_string());
        }
        if !wrong.is_empty() {
            found.push(Violation {
                file: relative.display().to_string(),
                line: number + 1,
                names: wrong.join(", "),
            });
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_layer_imports_only_from_the_layers_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut checked = 0;
    for (layer, _) in LAYERS {
        let mut files = Vec::new();
        rust_files(&src.join(layer), &mut files);
        assert!(!files.is_empty(), "layer folder src/{layer} is missing");
        for file in files {
            let relative = file.strip_prefix(&src).expect("under src");
            let source = std::fs::read_to_string(&file).expect("readable source");
            violations.extend(check_source(layer, relative, &source));
            checked += 1;
        }
    }
    violations.sort();
    assert!(checked >= LAYERS.len());
    assert!(
        violations.is_empty(),
        "imports that run the wrong way or go through the crate root:\n{violations:#?}"
    );
}

#[test]
fn top_level_holds_at_most_four_loose_files() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let loose: Vec<_> = std::fs::read_dir(&src)
        .expect("src")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    assert!(loose.len() <= 4, "loose files in engine/src: {loose:?}");
}

#[test]
fn the_checker_catches_wrong_way_and_root_imports() {
    let store = Path::new("store/write.rs");
    // Each of these breaks the rule in the store.
    for line in [
        "use crate::search::Filter;",
        "use crate::ingest::walk;",
        "use crate::{ChunkTable, Error};",
        "let x = crate::sql::Session::new();",
        "use super::super::search::hot;",
    ] {
        assert_eq!(check_source("store", store, line).len(), 1, "{line}");
    }
    // And these keep it.
    for line in [
        "use crate::store::predicate::sql_string;",
        "use crate::error::{Error, Result};",
        "use super::rows::to_record_batch;",
        "use lancet_crate::search::x; // crate::search in a comment",
    ] {
        assert!(check_source("store", store, line).is_empty(), "{line}");
    }
    // The search may use the store, not ingestion or SQL; SQL may use both below it.
    assert!(check_source(
        "search",
        Path::new("search/hot/mod.rs"),
        "use crate::store::ChunkTable;"
    )
    .is_empty());
    assert_eq!(
        check_source(
            "search",
            Path::new("search/vector.rs"),
            "use crate::ingest::x;"
        )
        .len(),
        1
    );
    assert!(check_source(
        "sql",
        Path::new("sql/mod.rs"),
        "use crate::search::{Filter, SearchHit};"
    )
    .is_empty());
    assert_eq!(
        check_source(
            "ingest",
            Path::new("ingest/mod.rs"),
            "use crate::sql::Session;"
        )
        .len(),
        1
    );
    // `super::` may climb inside the layer, not out of it.
    assert!(check_source(
        "search",
        Path::new("search/hot/hnsw.rs"),
        "use super::super::filter::Filter;"
    )
    .is_empty());
    assert_eq!(
        check_source(
            "search",
            Path::new("search/hot/hnsw.rs"),
            "use super::super::super::x;"
        )
        .len(),
        1
    );
}
