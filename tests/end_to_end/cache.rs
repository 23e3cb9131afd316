//! The machine-wide embedding cache: a second worktree of an indexed repository embeds
//! nothing and stores the same vectors, a damaged entry is embedded again, `--no-cache`
//! leaves the cache alone, and `lancet cache` shows and prunes it.

use crate::ingest::{open_chunks, rows};
use crate::support::cli::{lancet, stderr, stdout};
use crate::support::runtime;
use crate::support::tiny_model::write_tiny_model;
use crate::support::write;
use std::path::{Path, PathBuf};
use std::process::Output;

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// Every entry file of the cache at `root` (not the model descriptions).
fn entries(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for namespace in std::fs::read_dir(root).unwrap().flatten() {
        for shard in std::fs::read_dir(namespace.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if shard.path().is_dir() {
                out.extend(
                    std::fs::read_dir(shard.path())
                        .unwrap()
                        .flatten()
                        .map(|e| e.path()),
                );
            }
        }
    }
    out.sort();
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_name() == ".lancet" {
            continue;
        }
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::create_dir_all(to).unwrap();
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_second_worktree_embeds_nothing_and_a_damaged_entry_is_embedded_again() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let first = work.path().join("first");
    for (name, body) in [
        ("parse", "split the line on commas and trim each field"),
        ("retry", "retry the request with exponential backoff"),
        ("render", "render the template with the given context"),
    ] {
        write(
            &first,
            &format!("src/{name}.rs"),
            format!("/// {body}\npub fn {name}(input: &str) -> usize {{\n    input.len()\n}}\n"),
        );
    }
    let cache = work.path().join("cache");
    let (m, c) = (model.to_str().unwrap(), cache.to_str().unwrap());
    let index = |tree: &Path, extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["--model", m, "--cache-dir", c, "index"];
        args.push(tree.to_str().unwrap());
        args.extend(["--repo", "same", "--json"]);
        args.extend(extra);
        json(&lancet(&args, work.path()))
    };

    let run = index(&first, &[]);
    let texts = run["chunks_embedded"].as_u64().unwrap();
    assert!(texts >= 3, "{run}");
    assert_eq!(run["chunks_cached"], 0, "{run}");
    assert_eq!(entries(&cache).len() as u64, texts);

    // A second worktree: the dry run and the run agree that nothing is to embed, and
    // the rows are those of the first, bit for bit.
    let second = work.path().join("second");
    copy_tree(&first, &second);
    let dry = index(&second, &["--dry-run"]);
    assert_eq!(dry["plan"]["texts_to_embed"], 0, "{dry}");
    assert_eq!(dry["plan"]["texts_cached"], texts, "{dry}");
    assert!(
        !second.join(".lancet").exists(),
        "the dry run wrote a database"
    );
    let run = index(&second, &[]);
    assert_eq!(run["chunks_embedded"], 0, "{run}");
    assert_eq!(run["chunks_cached"], texts, "{run}");
    let rt = runtime();
    let (a, b) = rt.block_on(async {
        let a = rows(&open_chunks(&first.join(".lancet")).await).await;
        let b = rows(&open_chunks(&second.join(".lancet")).await).await;
        (a, b)
    });
    assert_eq!(a, b);

    // A damaged entry is a miss: that one text is embedded again, and stored again.
    let victim = entries(&cache)[0].clone();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[12] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();
    let third = work.path().join("third");
    copy_tree(&first, &third);
    let run = index(&third, &[]);
    assert_eq!(run["chunks_embedded"], 1, "{run}");
    assert_eq!(run["chunks_cached"], texts - 1, "{run}");
    let c_rows = rt.block_on(async { rows(&open_chunks(&third.join(".lancet")).await).await });
    assert_eq!(a, c_rows);
    assert_eq!(entries(&cache).len() as u64, texts);

    // --no-cache: everything embedded, the cache untouched.
    let before: Vec<_> = entries(&cache)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let fourth = work.path().join("fourth");
    copy_tree(&first, &fourth);
    write(&fourth, "src/extra.rs", "pub fn extra() {}\n");
    let run = index(&fourth, &["--no-cache"]);
    assert_eq!(run["chunks_embedded"].as_u64().unwrap(), texts + 1, "{run}");
    let after: Vec<_> = entries(&cache)
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn lancet_cache_shows_each_model_and_prunes_to_a_size() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let repo = work.path().join("repo");
    for i in 0..4 {
        write(
            &repo,
            &format!("src/f{i}.rs"),
            format!("pub fn f{i}() -> u32 {{ {i} }}\n"),
        );
    }
    let cache = work.path().join("cache");
    let (m, c, r) = (
        model.to_str().unwrap(),
        cache.to_str().unwrap(),
        repo.to_str().unwrap(),
    );
    json(&lancet(
        &[
            "--model",
            m,
            "--precision",
            "f32",
            "--cache-dir",
            c,
            "index",
            r,
            "--json",
        ],
        work.path(),
    ));
    let shown = json(&lancet(&["--cache-dir", c, "cache", "--json"], work.path()));
    assert_eq!(shown["entries"], 4, "{shown}");
    let models = shown["models"].as_array().unwrap();
    assert_eq!(models.len(), 1, "{shown}");
    assert_eq!(models[0]["entries"], 4, "{shown}");
    assert!(
        models[0]["model"]["numerics"]
            .as_str()
            .unwrap()
            .starts_with("cpu-f32"),
        "{shown}"
    );
    let bytes = shown["bytes"].as_u64().unwrap();
    assert!(bytes > 0);
    // No q8 load yet: no packed weights.
    assert_eq!(shown["packed_weights"]["files"], 0, "{shown}");
    let out = lancet(
        &["--model", m, "--precision", "q8", "embed", "fn f() {}"],
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = json(&lancet(&["--cache-dir", c, "cache", "--json"], work.path()));
    assert_eq!(shown["packed_weights"]["files"], 1, "{shown}");
    assert!(
        shown["packed_weights"]["bytes"].as_u64().unwrap() > 0,
        "{shown}"
    );

    // Within the bound: nothing goes. Over it: the least recently used go.
    let pruned = json(&lancet(
        &[
            "--cache-dir",
            c,
            "cache",
            "prune",
            "--max-mb",
            "1",
            "--json",
        ],
        work.path(),
    ));
    assert_eq!(
        (pruned["removed"].as_u64(), pruned["kept"].as_u64()),
        (Some(0), Some(4))
    );
    let cleared = json(&lancet(
        &["--cache-dir", c, "cache", "clear", "--json"],
        work.path(),
    ));
    assert_eq!(cleared["removed"], 4, "{cleared}");
    assert_eq!(cleared["bytes_removed"].as_u64(), Some(bytes));
    let shown = json(&lancet(&["--cache-dir", c, "cache", "--json"], work.path()));
    assert_eq!(shown["entries"], 0, "{shown}");

    let out = lancet(&["--no-cache", "cache"], work.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--no-cache"), "{}", stderr(&out));
}
