//! `lancet mcp` driven as a coding agent's client drives it: JSON-RPC over the server's
//! real stdio, the handshake, the tool list, each tool, bad arguments, a missing index,
//! a budget too small for one hit, cursor paging, a stale file and a write through `sql`.

use crate::support::cli::{lancet, lancet_command};
use crate::support::tiny_model::write_tiny_model;
use crate::support::write;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};

/// A client of one `lancet mcp` process.
struct Client {
    child: Child,
    input: ChildStdin,
    output: std::io::Lines<BufReader<std::process::ChildStdout>>,
    next_id: u64,
    /// Notifications received so far.
    notifications: Vec<Value>,
}

impl Client {
    /// Starts `lancet --model MODEL mcp ROOT` and completes the handshake.
    fn start(model: &str, root: &Path) -> (Self, Value) {
        Self::start_with(model, root, &[])
    }

    /// [`Client::start`] with more arguments of `lancet mcp`.
    fn start_with(model: &str, root: &Path, options: &[&str]) -> (Self, Value) {
        let mut args = vec!["--model", model, "mcp", root.to_str().unwrap()];
        args.extend_from_slice(options);
        let mut child = lancet_command(&args, root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut client = Client {
            child,
            input,
            output,
            next_id: 1,
            notifications: Vec::new(),
        };
        let init = client.request(
            "initialize",
            json!({
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "lancet-tests", "version": "1"}
            }),
        );
        client.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        (client, init)
    }

    fn send(&mut self, message: &Value) {
        writeln!(self.input, "{message}").unwrap();
        self.input.flush().unwrap();
    }

    /// Sends a request and returns its whole response (`result` or `error`).
    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let line = self
                .output
                .next()
                .expect("the server closed stdout")
                .unwrap();
            let message: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if message["id"] == json!(id) {
                return message;
            }
            self.notifications.push(message);
        }
    }

    /// Calls a tool; returns (structured content, isError, text).
    fn call(&mut self, tool: &str, arguments: Value) -> (Value, bool, String) {
        let response = self.request(
            "tools/call",
            json!({"name": tool, "arguments": arguments, "_meta": {"progressToken": tool}}),
        );
        let result = &response["result"];
        assert!(result.is_object(), "{tool}: not a tool result: {response}");
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        (
            result["structuredContent"].clone(),
            result["isError"] == json!(true),
            text,
        )
    }

    fn search(&mut self, arguments: Value) -> Value {
        let (answer, is_error, text) = self.call("search_code", arguments);
        assert!(!is_error, "{text}");
        answer
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A repository of six small Rust files, indexed.
fn indexed_repo(work: &Path) -> (String, std::path::PathBuf) {
    let model = work.join("model");
    write_tiny_model(&model, 11);
    let repo = work.join("repo");
    let bodies = [
        ("config", "parse the configuration file and return settings"),
        ("retry", "retry a request with exponential backoff"),
        ("cache", "cache results in memory keyed by path"),
        ("render", "render the template to html"),
        ("auth", "check the password hash of a user"),
        ("walk", "walk the directory tree and skip ignored files"),
    ];
    for (name, doc) in bodies {
        write(
            &repo,
            &format!("src/{name}.rs"),
            format!("/// {doc}\npub fn {name}(input: &str) -> usize {{\n    input.len()\n}}\n"),
        );
    }
    let m = model.to_str().unwrap().to_string();
    let out = lancet(&["--model", &m, "index", repo.to_str().unwrap()], work);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (m, repo)
}

#[test]
fn an_agent_lists_the_tools_and_each_answers_within_its_budget() {
    let work = tempfile::tempdir().unwrap();
    let (model, repo) = indexed_repo(work.path());
    let (mut client, init) = Client::start(&model, &repo);
    let info = &init["result"];
    assert_eq!(info["serverInfo"]["name"], "lancet", "{init}");
    assert!(info["capabilities"]["tools"].is_object(), "{init}");

    // Five tools, each described, with input and output schemas a strict client takes.
    let list = client.request("tools/list", json!({}));
    let tools = list["result"]["tools"].as_array().unwrap();
    let names: BTreeSet<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "find_similar",
            "index_status",
            "reindex",
            "search_code",
            "sql"
        ])
    );
    for tool in tools {
        assert!(tool["description"].as_str().unwrap().len() > 40, "{tool}");
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{tool}");
        assert!(
            !tool.to_string().contains("\"null\""),
            "a nullable type: {tool}"
        );
        // No `uint64`-style formats: JSON Schema has none, strict validators warn.
        assert!(
            !tool.to_string().contains("\"format\":\"uint"),
            "a non-standard format: {tool}"
        );
    }

    // A search: hits with locations, scores from both stages, fresh files.
    let answer = client.search(json!({"query": "parse the configuration file"}));
    let hits = answer["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 6, "{answer}");
    for hit in hits {
        assert!(hit["path"].as_str().unwrap().starts_with("src/"), "{hit}");
        assert!(hit["start_line"].as_u64().unwrap() >= 1, "{hit}");
        assert_eq!(hit["stale"], false, "{hit}");
        assert!(!hit["text"].as_str().unwrap().is_empty(), "{hit}");
    }
    assert!(
        hits.iter().any(|h| h["text_score"].as_f64().unwrap() > 0.0),
        "{answer}"
    );
    assert_eq!(answer["next_cursor"], "", "six chunks fit one page of ten");
    assert_eq!(
        answer["vector_coverage"], 1.0,
        "every chunk has its vectors"
    );

    // A budget too small for one whole hit: the first is cut, the rest wait for the cursor.
    let answer =
        client.search(json!({"query": "retry", "k": 3, "detail": "full", "max_tokens": 120}));
    let hits = answer["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{answer}");
    assert_eq!(hits[0]["text_cut"], true, "{answer}");
    let encoded = answer.to_string();
    assert!(!hits[0]["text"].as_str().unwrap().is_empty(), "{answer}");
    assert!(
        encoded.chars().count() <= 120 * 3,
        "{} chars: {encoded}",
        encoded.len()
    );
    assert_eq!(answer["next_cursor"], "o1", "{answer}");

    // Paging with the cursor reaches every chunk once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let answer =
            client.search(json!({"query": "files", "k": 2, "mode": "vector", "cursor": cursor}));
        for hit in answer["hits"].as_array().unwrap() {
            seen.push(format!("{}:{}", hit["path"], hit["start_line"]));
        }
        cursor = answer["next_cursor"].as_str().unwrap().to_string();
        if cursor.is_empty() {
            break;
        }
    }
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (6, 6), "{seen:?}");

    // Keyword mode finds an identifier without the model's help.
    let answer = client.search(json!({"query": "backoff", "mode": "text", "k": 1}));
    assert_eq!(answer["hits"][0]["path"], "src/retry.rs", "{answer}");

    // Similar code from a location leaves the example out.
    let (answer, is_error, text) = client.call(
        "find_similar",
        json!({"path": "src/cache.rs", "line": 2, "k": 5}),
    );
    assert!(!is_error, "{text}");
    let paths: Vec<&str> = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 5, "{answer}");
    assert!(!paths.contains(&"src/cache.rs"), "{paths:?}");

    // Read-only SQL answers; statements that write are refused and change nothing.
    let (answer, is_error, text) =
        client.call("sql", json!({"query": "SELECT count(*) AS n FROM chunks"}));
    assert!(!is_error, "{text}");
    assert_eq!(answer["rows"][0]["n"], 6, "{answer}");
    for write in [
        "DELETE FROM chunks",
        "DROP TABLE chunks",
        "CREATE TABLE copy AS SELECT * FROM chunks",
        "INSERT INTO chunks SELECT * FROM chunks",
    ] {
        let (_, is_error, text) = client.call("sql", json!({"query": write}));
        assert!(is_error, "{write}: {text}");
    }
    let (answer, _, _) = client.call("sql", json!({"query": "SELECT count(*) AS n FROM chunks"}));
    assert_eq!(answer["rows"][0]["n"], 6, "{answer}");
    let (answer, is_error, _) = client.call(
        "sql",
        json!({"query": "SELECT path FROM chunks", "max_rows": 2}),
    );
    assert!(
        !is_error && answer["rows"].as_array().unwrap().len() == 2,
        "{answer}"
    );
    assert_eq!(answer["more_rows"], true, "{answer}");
}

#[test]
fn bad_calls_are_errors_an_agent_can_act_on() {
    let work = tempfile::tempdir().unwrap();
    let (model, repo) = indexed_repo(work.path());
    let (mut client, _) = Client::start(&model, &repo);
    for (tool, arguments, says) in [
        ("search_code", json!({}), "query"),
        (
            "search_code",
            json!({"query": "x", "k": "ten"}),
            "expected u32",
        ),
        ("search_code", json!({"query": "x", "k": 0}), "1 to 50"),
        (
            "search_code",
            json!({"query": "x", "mode": "fuzzy"}),
            "fuzzy",
        ),
        (
            "search_code",
            json!({"query": "x", "cursor": "page2"}),
            "cursor",
        ),
        ("search_code", json!({"query": "x", "bogus": 1}), "bogus"),
        ("search_code", json!({"query": "   "}), "empty"),
        ("find_similar", json!({}), "path"),
        (
            "find_similar",
            json!({"path": "src/none.rs", "line": 1}),
            "src/none.rs",
        ),
        ("sql", json!({"query": "SELEC nonsense"}), "SQL"),
        (
            "sql",
            json!({"query": "SELECT 1", "max_rows": 0}),
            "max_rows",
        ),
    ] {
        let (_, is_error, text) = client.call(tool, arguments.clone());
        assert!(
            is_error && text.contains(says),
            "{tool} {arguments}: {text}"
        );
    }
    // An unknown tool is a protocol error, not a tool result.
    let response = client.request(
        "tools/call",
        json!({"name": "delete_everything", "arguments": {}}),
    );
    assert!(response["error"].is_object(), "{response}");
    // The server still answers after all that.
    let answer = client.search(json!({"query": "cache"}));
    assert!(!answer["hits"].as_array().unwrap().is_empty());
}

#[test]
fn stale_hits_are_marked_and_reindex_brings_the_index_back() {
    let work = tempfile::tempdir().unwrap();
    let (model, repo) = indexed_repo(work.path());
    let (mut client, _) = Client::start(&model, &repo);
    let (status, is_error, text) = client.call("index_status", json!({}));
    assert!(!is_error, "{text}");
    assert_eq!(
        (status["indexed"].clone(), status["files"].clone()),
        (json!(true), json!(6))
    );
    assert_eq!(status["files_changed"], 0, "{status}");

    write(
        &repo,
        "src/auth.rs",
        "/// check the password hash of a user, in constant time\npub fn auth() {}\n",
    );
    let answer = client.search(json!({"query": "password hash", "mode": "text"}));
    let auth = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["path"] == "src/auth.rs")
        .cloned()
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(auth["stale"], true, "{auth}");
    assert_eq!(answer["stale_hits"], 1, "{answer}");
    let (status, _, _) = client.call("index_status", json!({}));
    assert_eq!(status["files_changed"], 1, "{status}");
    assert_eq!(
        status["changed_examples"],
        json!(["src/auth.rs"]),
        "{status}"
    );

    let (_, is_error, text) = client.call("reindex", json!({"paths": ["../elsewhere"]}));
    assert!(
        is_error && text.contains("outside the repository"),
        "{text}"
    );
    let absolute = repo.join("src/auth.rs").display().to_string();
    let (started, is_error, text) = client.call("reindex", json!({"paths": [absolute]}));
    assert!(!is_error, "{text}");
    assert_eq!(started["job"]["state"], "running", "{started}");
    assert_eq!(started["job"]["paths"], json!(["src/auth.rs"]), "{started}");
    let mut status = Value::Null;
    for _ in 0..600 {
        status = client.call("index_status", json!({})).0;
        if status["job"]["state"] != "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(status["job"]["state"], "done", "{status}");
    assert_eq!(status["job"]["files_indexed"], 1, "{status}");
    assert_eq!(status["files_changed"], 0, "{status}");
    // The call carried a progress token: the job's progress came as notifications,
    // the last one saying it is done.
    let finished = |client: &Client| {
        client.notifications.iter().any(|n| {
            n["method"] == "notifications/progress"
                && n["params"]["progressToken"] == "reindex"
                && n["params"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("done: 1 files indexed"))
        })
    };
    for _ in 0..50 {
        if finished(&client) {
            break;
        }
        client.call("index_status", json!({}));
    }
    assert!(finished(&client), "{:?}", client.notifications);
    let answer = client.search(json!({"query": "password hash", "mode": "text"}));
    assert_eq!(answer["stale_hits"], 0, "{answer}");
}

#[test]
fn without_an_index_or_a_model_the_server_starts_and_says_what_to_do() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let empty = work.path().join("empty");
    write(&empty, "src/lib.rs", "pub fn lonely() {}\n");

    let (mut client, init) = Client::start(model.to_str().unwrap(), &empty);
    assert!(init["result"].is_object(), "{init}");
    let (_, is_error, text) = client.call("search_code", json!({"query": "lonely"}));
    assert!(
        is_error && text.contains("reindex") && text.contains("lancet index"),
        "{text}"
    );
    let (status, is_error, _) = client.call("index_status", json!({}));
    assert!(!is_error && status["indexed"] == false, "{status}");
    assert!(!empty.join(".lancet").exists(), "a read tool wrote nothing");

    let missing = work.path().join("no-such-model");
    let (mut client, init) = Client::start(missing.to_str().unwrap(), &empty);
    assert!(init["result"].is_object(), "{init}");
    let (_, is_error, text) = client.call("reindex", json!({}));
    assert!(is_error && text.contains("--model"), "{text}");
}

/// A client of `lancet mcp --http`: JSON-RPC messages POSTed to the server's URL, the
/// answers read from the event stream it replies with.
struct HttpClient {
    url: String,
    session: Option<String>,
}

impl HttpClient {
    /// POSTs `message`; returns the HTTP status and the JSON-RPC response, if any.
    fn post(&mut self, message: Value) -> (u16, Value) {
        let mut request = ureq::post(&self.url)
            .set("Accept", "application/json, text/event-stream")
            .set("Content-Type", "application/json");
        if let Some(session) = &self.session {
            request = request.set("Mcp-Session-Id", session);
        }
        let response = match request.send_string(&message.to_string()) {
            Ok(response) => response,
            Err(ureq::Error::Status(code, response)) => {
                return (code, json!(response.into_string().unwrap_or_default()))
            }
            Err(e) => panic!("{e}"),
        };
        if let Some(session) = response.header("mcp-session-id") {
            self.session = Some(session.to_string());
        }
        let status = response.status();
        let body = response.into_string().unwrap();
        let answer = body
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .chain(std::iter::once(body.as_str()))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .find(|m| m.get("id").is_some())
            .unwrap_or(Value::Null);
        (status, answer)
    }
}

#[test]
fn the_http_transport_serves_the_same_tools() {
    let work = tempfile::tempdir().unwrap();
    let (model, repo) = indexed_repo(work.path());
    let mut child = lancet_command(
        &[
            "--model",
            &model,
            "mcp",
            "--http",
            "127.0.0.1:0",
            repo.to_str().unwrap(),
        ],
        &repo,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = stderr
            .next()
            .expect("the server ended before serving")
            .unwrap();
        if let Some(at) = line.find("http://") {
            break line[at..].trim().to_string();
        }
    };
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(child);

    let mut client = HttpClient { url, session: None };
    let (status, init) = client.post(json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "lancet-tests", "version": "1"}
        }
    }));
    assert_eq!(status, 200, "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "lancet", "{init}");
    assert!(client.session.is_some(), "the server named no session");
    let (status, _) = client.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    assert_eq!(status, 202);

    let (_, list) = client.post(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    assert_eq!(
        list["result"]["tools"].as_array().map(Vec::len),
        Some(5),
        "{list}"
    );
    let (_, call) = client.post(json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "search_code", "arguments": {"query": "password hash", "mode": "text"}}
    }));
    let hits = &call["result"]["structuredContent"]["hits"];
    assert_eq!(hits[0]["path"], "src/auth.rs", "{call}");

    // A request without the session it belongs to is refused, not served.
    let mut stranger = HttpClient {
        url: client.url.clone(),
        session: Some("no-such-session".into()),
    };
    let (status, _) = stranger.post(json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}));
    assert!((400..500).contains(&status), "{status}");
}

#[test]
fn a_watching_server_indexes_the_repository_and_follows_its_edits() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    write_tiny_model(&model, 11);
    let repo = work.path().join("repo");
    write(
        &repo,
        "src/lib.rs",
        "/// open the socket\npub fn listen() {}\n",
    );
    let (mut client, _) = Client::start_with(model.to_str().unwrap(), &repo, &["--watch"]);
    let wait_for = |client: &mut Client, what: &str, done: &dyn Fn(&Value) -> bool| {
        for _ in 0..600 {
            let (status, _, _) = client.call("index_status", json!({}));
            if done(&status) {
                return status;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("{what}: not within a minute");
    };
    wait_for(&mut client, "the first index", &|s| {
        s["indexed"] == true && s["files"] == 1 && s["job"]["state"] == "watching"
    });
    let (answer, is_error, text) = client.call("reindex", json!({}));
    assert!(!is_error && text.contains("watches"), "{answer}");

    write(
        &repo,
        "src/cache.rs",
        "/// evict the least recently used entry\npub fn evict() {}\n",
    );
    wait_for(&mut client, "the new file", &|s| s["files"] == 2);
    let answer = client.search(json!({"query": "evict", "mode": "text"}));
    assert_eq!(answer["hits"][0]["path"], "src/cache.rs", "{answer}");
}
