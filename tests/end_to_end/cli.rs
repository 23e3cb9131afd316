//! The `lancet` binary, end to end, with a tiny model.

use crate::support::cli::{lancet, lancet_command, stderr, stdout};
use crate::support::tiny_model::write_tiny_model;
use crate::support::write;
use std::process::Output;

#[test]
fn index_search_status_and_incremental_rerun() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let repo = work.path().join("repo");
    write(
        &repo,
        "src/lib.rs",
        "pub fn parse_config(path: &str) -> Config {\n    todo!()\n}\n",
    );
    write(
        &repo,
        "src/server.go",
        "package main\n\nfunc ServeHTTP() {}\n",
    );
    write(
        &repo,
        "tools/train.py",
        "def train(model, data):\n    return model.fit(data)\n",
    );
    write(&repo, "ignored/secret.rs", "fn hidden() {}\n");
    write(&repo, ".gitignore", "ignored/\n");
    write(&repo, "image.png", "\u{0}\u{1}binary");
    let m = model.to_str().unwrap();
    let r = repo.to_str().unwrap();

    let out = lancet(&["--model", m, "index", r, "--json"], work.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["files_indexed"], 3, "{summary}");
    assert_eq!(summary["skipped"]["unknown_language"], 1, "{summary}");
    assert!(summary["chunks_embedded"].as_u64().unwrap() >= 3);
    assert!(repo.join(".lancet").is_dir());

    // Search from inside the repository finds the database above the current folder.
    let query = "def train(model, data):\n    return model.fit(data)\n";
    let out = lancet(
        &[
            "--model",
            m,
            "search",
            query,
            "-k",
            "2",
            "--json",
            "--task",
            "code2code",
        ],
        &repo.join("src"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let hits: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(hits.as_array().unwrap().len(), 2);
    let out = lancet(
        &["--model", m, "search", "fn", "--lang", "go", "--json"],
        &repo,
    );
    let hits: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let hits = hits.as_array().unwrap();
    // The Go file is there to be found, and nothing else passes the filter.
    assert!(!hits.is_empty(), "the language filter found nothing");
    assert!(hits.iter().all(|h| h["language"] == "go"), "{hits:?}");
    let out = lancet(
        &["--model", m, "search", "fn", "--path", "x' OR '1'='1"],
        &repo,
    );
    assert!(out.status.success());
    assert!(stdout(&out).contains("no results"));
    let out = lancet(
        &[
            "--model",
            m,
            "search",
            "parse config",
            "-k",
            "1",
            "--lang",
            "rust",
        ],
        &repo,
    );
    let text = stdout(&out);
    assert!(
        text.starts_with("src/lib.rs:1-3"),
        "human output shows path:line: {text}"
    );
    assert!(
        text.contains("    pub fn parse_config"),
        "and the snippet: {text}"
    );

    // SQL: a search with a pushed-down filter, as JSON and CSV; errors exit non-zero.
    let sql = "SELECT path, kind, symbol FROM vector_search('chunks', 'train a model', 2) \
               WHERE language = 'python'";
    let out = lancet(&["--model", m, "sql", sql, "--json"], &repo);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows[0]["path"], "tools/train.py", "{rows}");
    assert_eq!(
        (rows[0]["kind"].as_str(), rows[0]["symbol"].as_str()),
        (Some("function"), Some("train"))
    );
    let out = lancet(
        &[
            "sql",
            "--no-model",
            "SELECT language, count(*) AS n FROM chunks GROUP BY language ORDER BY language",
            "--csv",
        ],
        &repo,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "language,n\ngo,1\npython,1\nrust,1\n");
    let out = lancet(&["sql", "--no-model", "SELECT nope FROM chunks"], &repo);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));

    let out = lancet(&["status", "--json"], &repo);
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["files"], 3);

    // A second run over an unchanged tree embeds nothing.
    let out = lancet(&["--model", m, "index", r, "--json"], work.path());
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["chunks_embedded"], 0, "{summary}");
    assert_eq!(summary["files_unchanged"], 3, "{summary}");

    // Edit one file, delete another: exactly those change.
    write(
        &repo,
        "src/lib.rs",
        "pub fn parse_settings(path: &str) -> Settings {\n    todo!()\n}\n",
    );
    std::fs::remove_file(repo.join("src/server.go")).unwrap();
    // Before re-indexing, status counts both files and a search flags the edited one.
    let out = lancet(&["status", "--json"], &repo);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        status["changed_on_disk"],
        serde_json::json!({"changed": 2, "examples": ["src/lib.rs", "src/server.go"]}),
        "{status}"
    );
    let out = lancet(
        &["--model", m, "search", "parse config", "-k", "3", "--json"],
        &repo,
    );
    let hits: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for hit in hits.as_array().unwrap() {
        let changed = hit["path"] == "src/lib.rs" || hit["path"] == "src/server.go";
        assert_eq!(hit["stale"], changed, "{hit}");
    }
    // SQL's search functions say the same in `_stale`.
    let sql_stale = || -> Vec<(String, bool)> {
        let query = "SELECT path, _stale FROM fts('chunks', 'todo model', 10) ORDER BY path";
        let out = lancet(&["sql", "--no-model", query, "--json"], &repo);
        assert!(out.status.success(), "{}", stderr(&out));
        let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| (r["path"].as_str().unwrap().to_string(), r["_stale"] == true))
            .collect()
    };
    assert_eq!(
        sql_stale(),
        [
            ("src/lib.rs".to_string(), true),
            ("tools/train.py".to_string(), false)
        ]
    );
    let out = lancet(&["--model", m, "index", r, "--json"], work.path());
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (
            summary["files_indexed"].as_u64(),
            summary["files_deleted"].as_u64()
        ),
        (Some(1), Some(1)),
        "{summary}"
    );
    assert_eq!(summary["files_unchanged"], 1, "{summary}");
    let out = lancet(&["status", "--json"], &repo);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["changed_on_disk"]["changed"], 0, "{status}");
    assert_eq!(
        sql_stale(),
        [
            ("src/lib.rs".to_string(), false),
            ("tools/train.py".to_string(), false)
        ]
    );

    // Another model is refused, naming both.
    let other = work.path().join("other-model");
    write_tiny_model(&other, 12);
    let out = lancet(&["--model", other.to_str().unwrap(), "search", "x"], &repo);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("other-model") && stderr(&out).contains("model@"),
        "{}",
        stderr(&out)
    );

    let out = lancet(&["optimize"], &repo);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_missing_model_fails_at_once_and_says_how_to_use_a_local_copy() {
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(work.path().join("repo")).unwrap();
    // The default model from the hub, offline and not cached.
    let out = lancet(&["index", "repo"], work.path());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("jinaai/jina-code-embeddings-0.5b") && err.contains("--model DIR"),
        "{err}"
    );
    // A directory that does not exist.
    let out = lancet(&["--model", "./nope", "embed", "x"], work.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    // No database yet.
    let out = lancet(&["status"], work.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("lancet index"), "{}", stderr(&out));
}

#[test]
fn embed_prints_normalised_vectors_of_the_asked_width() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 5);
    let out = lancet(
        &[
            "--model",
            model.to_str().unwrap(),
            "embed",
            "--dims",
            "16",
            "a",
            "b",
        ],
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Vec<f32>> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for v in &lines {
        assert_eq!(v.len(), 16);
        let norm: f32 = v.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    let out = lancet(
        &[
            "--model",
            model.to_str().unwrap(),
            "embed",
            "--dims",
            "65",
            "a",
        ],
        work.path(),
    );
    assert!(!out.status.success());
    let out = lancet(
        &[
            "--model",
            model.to_str().unwrap(),
            "embed",
            "--task",
            "nl2sql",
            "a",
        ],
        work.path(),
    );
    assert!(stderr(&out).contains("unknown task"), "{}", stderr(&out));
}

/// Queries and parameters a person or a script might send, and environments that are
/// broken: each answers or fails with a message and a non-zero code, and writes nothing.
#[test]
fn output_into_a_closed_pipe_ends_quietly_with_success() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let repo = work.path().join("repo");
    write(&repo, "src/lib.rs", "pub fn answer() -> u32 {\n    42\n}\n");
    let m = model.to_str().unwrap();
    let r = repo.to_str().unwrap();
    assert!(lancet(&["--model", m, "index", r], work.path())
        .status
        .success());
    // Like `lancet ... | head -c1` once `head` has exited: every write fails with EPIPE
    // (Rust ignores SIGPIPE), deterministically, since the reader is gone before the start.
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["--model", m, "embed", "a", "b", "c"],
        vec!["--model", m, "search", "answer"],
        vec!["--model", m, "search", "answer", "--json"],
        vec!["--model", m, "index", r],
        vec!["--model", m, "index", r, "--json"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = lancet_command(&args, &repo)
            .stdout(writer)
            .output()
            .unwrap();
        assert!(
            out.status.success() && stderr(&out).trim().is_empty(),
            "{args:?}: {:?} {}",
            out.status,
            stderr(&out)
        );
    }
    // Progress lines go to stderr: with stderr closed the job loses its log, not its
    // work (a commit per file, so a line per commit).
    for i in 0..3 {
        write(
            &repo,
            &format!("src/m{i}.rs"),
            format!("pub fn m{i}() {{}}\n"),
        );
    }
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = lancet_command(&["--model", m, "index", r, "--commit-files", "1"], &repo)
        .stderr(writer)
        .output()
        .unwrap();
    assert!(
        out.status.success() && stdout(&out).contains("files: 3 indexed, 1 unchanged"),
        "{:?} {}",
        out.status,
        stdout(&out)
    );
}

#[test]
fn a_sql_shell_sees_another_processs_commit_within_its_bound() {
    use std::io::{BufRead, BufReader, Write};
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let repo = work.path().join("repo");
    write(&repo, "src/lib.rs", "pub fn answer() -> u32 {\n    42\n}\n");
    let (m, r) = (model.to_str().unwrap(), repo.to_str().unwrap());
    assert!(lancet(&["--model", m, "index", r], &repo).status.success());

    // The shell's stdout and stderr share one pipe: an error answers a statement too.
    let (output, output_writer) = std::io::pipe().unwrap();
    let mut shell = lancet_command(
        &[
            "--consistency",
            "eventual:0.2",
            "sql",
            "--no-model",
            "--json",
        ],
        &repo,
    )
    .stdin(std::process::Stdio::piped())
    .stdout(output_writer.try_clone().unwrap())
    .stderr(output_writer)
    .spawn()
    .unwrap();
    let mut input = shell.stdin.take().unwrap();
    let mut answers = BufReader::new(output).lines();
    let mut files = || -> usize {
        writeln!(input, "SELECT count(DISTINCT path) AS files FROM chunks;").unwrap();
        input.flush().unwrap();
        let answer = answers.next().unwrap().unwrap();
        answer
            .strip_prefix(r#"[{"files":"#)
            .and_then(|rest| rest.strip_suffix("}]"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a count: {answer}"))
    };
    assert_eq!(files(), 1);

    // Another process commits, a file at a time: every statement meanwhile answers, and
    // the counts never go back.
    for i in 0..12 {
        write(
            &repo,
            &format!("src/m{i:02}.rs"),
            format!("pub fn m{i}() -> u32 {{\n    {i}\n}}\n"),
        );
    }
    let mut writer = lancet_command(&["--model", m, "index", r, "--commit-files", "1"], &repo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = vec![files()];
    while writer.try_wait().unwrap().is_none() {
        seen.push(files());
    }
    assert!(writer.wait().unwrap().success());
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    // Past the bound, the same shell's next statement sees the last commit.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        files(),
        13,
        "answers while the other process wrote: {seen:?}"
    );
    drop(input); // end of input ends the shell
    assert!(shell.wait().unwrap().success());
}

#[test]
fn hostile_queries_and_broken_environments_fail_clearly_and_write_nothing() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let repo = work.path().join("repo");
    for i in 0..6 {
        write(
            &repo,
            &format!("src/f{i}.rs"),
            format!("pub fn f{i}() -> u32 {{\n    {i}\n}}\n"),
        );
    }
    let m = model.to_str().unwrap();
    let r = repo.to_str().unwrap();
    assert!(lancet(&["--model", m, "index", r], work.path())
        .status
        .success());
    let version = || {
        let out = lancet(&["status", "--json"], &repo);
        let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        status["version"].as_u64().unwrap()
    };
    let before = version();

    let search = |query: &str, extra: &[&str]| {
        let mut args = vec!["--model", m, "search", query, "--json"];
        args.extend_from_slice(extra);
        lancet(&args, &repo)
    };
    let hits = |out: &Output| -> usize {
        assert!(out.status.success(), "{}", stderr(out));
        serde_json::from_str::<serde_json::Value>(&stdout(out))
            .unwrap()
            .as_array()
            .unwrap()
            .len()
    };
    // Empty and blank queries are refused; long, non-ASCII and control characters answer.
    for empty in ["", "  \n\t"] {
        let out = search(empty, &[]);
        assert!(
            !out.status.success() && stderr(&out).contains("empty"),
            "{}",
            stderr(&out)
        );
    }
    // 100 KB: near the most one command-line argument can hold (128 KiB on Linux).
    let long = "fn retry(request) { loop { send(request) } } ".repeat(2_300);
    assert_eq!(hits(&search(&long, &[])), 6);
    assert_eq!(hits(&search("日本語のコード 🎉 código ünïcödé", &[])), 6);
    // (A NUL cannot be in an argument; the encoder test sends one.)
    assert_eq!(hits(&search("\u{1}\u{1b}[31mred\u{7f}\r\n", &[])), 6);
    // k = 0 answers nothing; k above the table answers every row once; a k no search
    // may hold is refused with the bound.
    assert_eq!(hits(&search("f", &["-k", "0"])), 0);
    assert_eq!(hits(&search("f", &["-k", "5000"])), 6);
    let out = search("f", &["-k", "4000000000"]);
    assert!(
        !out.status.success() && stderr(&out).contains("k = 4000000000"),
        "{}",
        stderr(&out)
    );
    // Filter values are data, never SQL.
    for injection in ["x' OR '1'='1", "%", "src/f1.rs'; DROP TABLE chunks; --"] {
        assert_eq!(hits(&search("f", &["--path", injection])), 0, "{injection}");
        assert_eq!(hits(&search("f", &["--repo", injection])), 0, "{injection}");
        assert_eq!(hits(&search("f", &["--lang", injection])), 0, "{injection}");
    }
    // Malformed SQL, unknown tables and columns.
    for query in [
        "SELEC path FROM chunks",
        "SELECT nope FROM chunks",
        "SELECT * FROM nowhere",
        "SELECT path FROM chunks WHERE",
    ] {
        let out = lancet(&["--model", m, "sql", query], &repo);
        assert!(!out.status.success(), "{query}");
        assert!(
            !stderr(&out).trim().is_empty() && !stderr(&out).contains("panicked"),
            "{query}: {}",
            stderr(&out)
        );
    }

    // Broken models: another architecture, truncated weights, a model of another width
    // for an existing table. Each fails before writing anything.
    let broken = work.path().join("broken");
    write_tiny_model(&broken, 11);
    let config = std::fs::read_to_string(broken.join("config.json")).unwrap();
    std::fs::write(
        broken.join("config.json"),
        config.replace("\"qwen2\"", "\"bert\""),
    )
    .unwrap();
    let b = broken.to_str().unwrap();
    let out = lancet(&["--model", b, "index", r], work.path());
    assert!(
        !out.status.success() && stderr(&out).contains("bert"),
        "{}",
        stderr(&out)
    );
    std::fs::write(broken.join("config.json"), &config).unwrap();
    let weights = std::fs::read(broken.join("model.safetensors")).unwrap();
    std::fs::write(
        broken.join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    let out = lancet(&["--model", b, "search", "f"], &repo);
    assert!(
        !out.status.success() && stderr(&out).contains("weights"),
        "{}",
        stderr(&out)
    );
    let other = work.path().join("other");
    write_tiny_model(&other, 12);
    let out = lancet(
        &["--model", other.to_str().unwrap(), "index", r],
        work.path(),
    );
    assert!(
        !out.status.success(),
        "a table built with another model is refused"
    );
    assert!(stderr(&out).contains("model"), "{}", stderr(&out));

    // Sizes out of range are refused before anything runs (u64::MAX used to wrap to a
    // zero file-size limit that reported every file empty and removed all their rows).
    let huge = u64::MAX.to_string();
    for flag in [
        "--max-file-size",
        "--max-line-length",
        "--chunk-tokens",
        "--commit-files",
        "--threads",
        "--full-dims",
        "--prefix-dims",
    ] {
        for value in [huge.as_str(), "-1"] {
            let option = format!("{flag}={value}");
            let out = lancet(&["--model", m, "index", r, &option], work.path());
            assert!(
                !out.status.success() && stderr(&out).contains(flag),
                "{flag} {value}: {}",
                stderr(&out)
            );
        }
    }
    for flag in ["--max-file-size", "--chunk-tokens", "--commit-files"] {
        let out = lancet(&["--model", m, "index", r, flag, "0"], work.path());
        assert!(
            !out.status.success() && stderr(&out).contains(flag),
            "{flag} 0: {}",
            stderr(&out)
        );
    }
    assert_eq!(version(), before, "nothing was written");
}

#[test]
fn a_dry_run_writes_nothing_and_counts_what_the_real_run_embeds() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let repo = work.path().join("repo");
    for (name, body) in [
        ("parse", "split the line on commas and trim each field"),
        ("retry", "retry the request with exponential backoff"),
        ("render", "render the template with the given context"),
    ] {
        write(
            &repo,
            &format!("src/{name}.rs"),
            format!("/// {body}\npub fn {name}(input: &str) -> usize {{\n    input.len()\n}}\n"),
        );
    }
    // The same function in two files: the header names each path, so two texts.
    write(&repo, "lib/copy.py", "def same():\n    return 1\n");
    write(&repo, "lib/copy2.py", "def same():\n    return 1\n");
    let (m, r) = (model.to_str().unwrap(), repo.to_str().unwrap());
    let json = |out: &Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", stderr(out));
        serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
    };

    // Against no index at all: everything is to embed, and nothing is created.
    let dry = json(&lancet(
        &["--model", m, "index", r, "--dry-run", "--json"],
        work.path(),
    ));
    assert!(
        !repo.join(".lancet").exists(),
        "the dry run wrote a database"
    );
    let plan = &dry["plan"];
    assert_eq!(plan["files_changed"], 5, "{dry}");
    assert_eq!(plan["tokens_counted"], true, "{dry}");
    assert!(dry["calibration"]["tokens_per_second"].as_f64().unwrap() > 0.0);
    assert!(dry["estimated_seconds"].as_f64().unwrap() > 0.0);
    let real = json(&lancet(&["--model", m, "index", r, "--json"], work.path()));
    assert_eq!(
        real["chunks_embedded"], plan["texts_to_embed"],
        "{dry}\n{real}"
    );
    assert_eq!(
        real["tokens_embedded"], plan["tokens_to_embed"],
        "{dry}\n{real}"
    );

    // After an edit and a deletion: only the changed file's text is to embed.
    write(
        &repo,
        "src/retry.rs",
        "/// retry the request with a fixed delay\npub fn retry() {}\n",
    );
    std::fs::remove_file(repo.join("lib/copy2.py")).unwrap();
    let version = |work: &std::path::Path| {
        let out = lancet(
            &[
                "--model",
                m,
                "--db",
                &format!("{r}/.lancet"),
                "status",
                "--json",
            ],
            work,
        );
        json(&out)["version"].clone()
    };
    let before = version(work.path());
    let dry = json(&lancet(
        &["--model", m, "index", r, "--dry-run", "--json"],
        work.path(),
    ));
    assert_eq!(version(work.path()), before, "the dry run committed");
    let plan = &dry["plan"];
    assert_eq!(
        (plan["files_changed"].clone(), plan["files_deleted"].clone()),
        (serde_json::json!(1), serde_json::json!(1)),
        "{dry}"
    );
    let real = json(&lancet(&["--model", m, "index", r, "--json"], work.path()));
    assert_eq!(
        real["chunks_embedded"], plan["texts_to_embed"],
        "{dry}\n{real}"
    );
    assert_eq!(
        real["tokens_embedded"], plan["tokens_to_embed"],
        "{dry}\n{real}"
    );
}

#[test]
fn q8_and_f32_are_interchangeable_for_indexing_and_searching() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let repo = work.path().join("repo");
    write(
        &repo,
        "src/retry.rs",
        "/// retry with backoff\npub fn retry() {}\n",
    );
    write(
        &repo,
        "src/cache.rs",
        "/// evict the oldest entry\npub fn evict() {}\n",
    );
    let (m, r) = (model.to_str().unwrap(), repo.to_str().unwrap());
    let out = lancet(
        &["--model", m, "--precision", "q8", "index", r],
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    for precision in ["f32", "q8"] {
        let out = lancet(
            &[
                "--model",
                m,
                "--precision",
                precision,
                "search",
                "retry",
                "--json",
            ],
            &repo,
        );
        assert!(out.status.success(), "{precision}: {}", stderr(&out));
        let hits: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(
            hits.as_array().map(Vec::len),
            Some(2),
            "{precision}: {hits}"
        );
    }
    let embed = |precision: &str| -> Vec<f32> {
        let out = lancet(
            &[
                "--model",
                m,
                "--precision",
                precision,
                "embed",
                "fn main() {}",
            ],
            work.path(),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap()
    };
    // A file added with f32 joins the q8 rows; status names both numerics.
    write(
        &repo,
        "src/parse.rs",
        "/// split on commas\npub fn parse() {}\n",
    );
    let out = lancet(
        &["--model", m, "--precision", "f32", "index", r],
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lancet(&["status", "--json"], &repo);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let embedded_with: Vec<&str> = status["embedded_with"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(embedded_with.len(), 2, "{status}");
    assert!(embedded_with[0].starts_with("cpu-f32-"), "{status}");
    assert!(embedded_with[1].starts_with("cpu-q8-"), "{status}");

    let (exact, q8) = (embed("f32"), embed("q8"));
    let dot: f32 = exact.iter().zip(&q8).map(|(a, b)| a * b).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(dot / (norm(&exact) * norm(&q8)) > 0.98);

    // q8 packed the model's weights once in the user cache, and every later q8 run
    // mapped them: one file, and the same vector as before.
    let weights = work.path().join("xdg-cache/lancet/weights");
    let packs: Vec<_> = std::fs::read_dir(&weights).unwrap().collect();
    assert_eq!(packs.len(), 1, "{packs:?}");
    assert_eq!(embed("q8"), q8);
    // `--no-cache` quantizes at load instead: the same vector.
    std::fs::remove_dir_all(&weights).unwrap();
    let out = lancet(
        &[
            "--model",
            m,
            "--precision",
            "q8",
            "--no-cache",
            "embed",
            "fn main() {}",
        ],
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let unpacked: Vec<f32> = serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(unpacked, q8);
    assert!(!weights.exists());
    // No `--precision`, or `auto`: q8 where this CPU runs the AVX-512 VNNI kernel, else
    // f32.
    let expected = match lancet::udf::Precision::for_this_machine(true) {
        lancet::udf::Precision::Q8 => &q8,
        lancet::udf::Precision::F32 => &exact,
    };
    for args in [
        &["--model", m, "embed", "fn main() {}"][..],
        &["--model", m, "--precision", "auto", "embed", "fn main() {}"],
    ] {
        let out = lancet(args, work.path());
        assert!(out.status.success(), "{}", stderr(&out));
        let got: Vec<f32> = serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
        assert_eq!(&got, expected, "{args:?}");
    }
    let out = lancet(
        &["--model", m, "--precision", "q4", "embed", "x"],
        work.path(),
    );
    assert!(
        !out.status.success() && stderr(&out).contains("auto, f32 or q8"),
        "{}",
        stderr(&out)
    );
}

/// A Qwen3-Embedding layout (the parity fixture: `model_type` qwen3, weights without the
/// `model.` prefix) works like the default family: index, search, embed and status, and
/// a table it built refuses the Qwen2 family's model.
#[test]
fn a_qwen3_model_indexes_searches_and_embeds() {
    let work = tempfile::tempdir().unwrap();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-qwen3");
    let model = model.to_str().unwrap();
    let repo = work.path().join("repo");
    write(
        &repo,
        "src/lib.rs",
        "pub fn parse_config(path: &str) -> u32 {\n    7\n}\n",
    );
    write(
        &repo,
        "src/net.py",
        "def open_socket(port):\n    return port\n",
    );
    let db = work.path().join("db");
    let db = db.to_str().unwrap();
    let out = lancet(
        &[
            "--model",
            model,
            "--db",
            db,
            "index",
            repo.to_str().unwrap(),
            "--json",
        ],
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["chunks_embedded"], 2, "{summary}");

    let out = lancet(
        &[
            "--model",
            model,
            "--db",
            db,
            "search",
            "parse_config",
            "--json",
        ],
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let hits: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(hits.as_array().unwrap().len(), 2, "{hits}");

    let out = lancet(
        &["--model", model, "--db", db, "status", "--json"],
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        status["model"]
            .as_str()
            .unwrap()
            .contains("qwen3-embedding-v1"),
        "{status}"
    );
    assert_eq!(status["dim_full"], 48);

    let out = lancet(
        &["--model", model, "embed", "--dims", "32", "a query"],
        work.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let vector: Vec<f32> = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(vector.len(), 32);

    // The other family's model is another model: the table refuses it.
    let qwen2 = work.path().join("qwen2");
    write_tiny_model(&qwen2, 5);
    let out = lancet(
        &[
            "--model",
            qwen2.to_str().unwrap(),
            "--db",
            db,
            "search",
            "parse_config",
        ],
        work.path(),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("qwen3-embedding-v1"),
        "{}",
        stderr(&out)
    );
}

/// A device list that cannot work is refused at once with the reason.
#[test]
fn a_bad_device_list_is_refused_with_the_reason() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 5);
    let model = model.to_str().unwrap();
    for (devices, reason) in [
        ("cpu,cuda:0", "mixes the CPU with GPUs"),
        ("cuda:0,0", "twice"),
        ("cuda:0,gpu", "unknown device"),
    ] {
        let out = lancet(
            &["--model", model, "--device", devices, "embed", "x"],
            work.path(),
        );
        assert!(!out.status.success(), "{devices}");
        assert!(stderr(&out).contains(reason), "{devices}: {}", stderr(&out));
    }
}
