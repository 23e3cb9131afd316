//! A real S3-compatible server for the tests: moto's `moto_server` (PyPI `moto[server]`,
//! which `.ci/run` installs), started on a free loopback port and stopped with the test,
//! reached through a proxy that can cut the connection as if the store went away
//! (stopping moto itself would lose its in-memory buckets).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set (by `.ci/run`) to fail, rather than skip, the object-store tests when
/// `moto_server` is missing.
const REQUIRE_ENV: &str = "LANCET_REQUIRE_S3";
const BUCKET: &str = "lancet-test";

pub struct S3 {
    server: Child,
    server_port: u16,
    proxy: Proxy,
}

impl S3 {
    /// A fresh server with one empty bucket; `None` (with a note) when `moto_server` is
    /// not installed and `LANCET_REQUIRE_S3` is not set.
    pub fn start() -> Option<S3> {
        let port = free_port();
        let spawned = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let server = match spawned {
            Ok(child) => child,
            Err(e) if std::env::var_os(REQUIRE_ENV).is_none() => {
                eprintln!(
                    "skipped: no moto_server ({e}); `pip install 'moto[server]'` runs the \
                     object-store tests"
                );
                return None;
            }
            Err(e) => panic!("moto_server is required ({REQUIRE_ENV} is set): {e}"),
        };
        let mut s3 = S3 {
            server,
            server_port: port,
            proxy: Proxy::start(port),
        };
        s3.wait_until_up(port);
        let answer = http(port, &format!("PUT /{BUCKET} HTTP/1.1"), "", "");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "bucket not created: {answer}"
        );
        Some(s3)
    }

    fn wait_until_up(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.server.try_wait() {
                panic!("moto_server exited at start: {status}");
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto_server did not listen on port {port} within 30 s");
    }

    /// Creates the DynamoDB table Lance's `s3+ddb://` commits need (moto serves
    /// DynamoDB beside S3; it reads the service from the request's credential scope and
    /// does not check signatures).
    pub fn create_commit_table(&self, name: &str) {
        let body = format!(
            r#"{{"TableName":"{name}","BillingMode":"PAY_PER_REQUEST",
            "KeySchema":[{{"AttributeName":"base_uri","KeyType":"HASH"}},
                         {{"AttributeName":"version","KeyType":"RANGE"}}],
            "AttributeDefinitions":[{{"AttributeName":"base_uri","AttributeType":"S"}},
                                    {{"AttributeName":"version","AttributeType":"N"}}]}}"#
        );
        let headers = "X-Amz-Target: DynamoDB_20120810.CreateTable\r\n\
             Content-Type: application/x-amz-json-1.0\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20261203/us-east-1/dynamodb/\
             aws4_request, SignedHeaders=host, Signature=0\r\n";
        let answer = http(self.server_port, "POST / HTTP/1.1", headers, &body);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "table not created: {answer}"
        );
    }

    /// `s3+ddb://bucket/path?ddbTableName=TABLE`: commits through DynamoDB.
    pub fn ddb_uri(&self, path: &str, table: &str) -> String {
        format!("s3+ddb://{BUCKET}/{path}?ddbTableName={table}")
    }

    /// `s3://bucket/path`.
    pub fn uri(&self, path: &str) -> String {
        format!("s3://{BUCKET}/{path}")
    }

    /// What Lance needs to reach the server: its endpoint, plain HTTP, a region, dummy
    /// credentials, and short retries so that a store gone away fails in seconds.
    pub fn storage_options(&self) -> Vec<(String, String)> {
        [
            ("endpoint", format!("http://127.0.0.1:{}", self.proxy.port)),
            (
                "dynamodb_endpoint",
                format!("http://127.0.0.1:{}", self.proxy.port),
            ),
            ("allow_http", "true".into()),
            ("region", "us-east-1".into()),
            ("aws_access_key_id", "test".into()),
            ("aws_secret_access_key", "test".into()),
            ("client_max_retries", "2".into()),
            ("client_retry_timeout", "5".into()),
            ("connect_timeout", "2s".into()),
            ("timeout", "10s".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The same as `--storage-option` flags.
    pub fn storage_flags(&self) -> Vec<String> {
        self.storage_options()
            .into_iter()
            .flat_map(|(k, v)| ["--storage-option".to_string(), format!("{k}={v}")])
            .collect()
    }

    /// The store is back, with everything it held.
    pub fn restore(&self) {
        self.proxy.up.store(true, Ordering::SeqCst);
    }

    /// A handle that makes the store go away (open connections cut, new ones refused),
    /// for another thread (an encoder's hook).
    pub fn cutter(&self) -> impl Fn() + Send + Sync + 'static {
        let up = self.proxy.up.clone();
        let open = self.proxy.open.clone();
        move || {
            up.store(false, Ordering::SeqCst);
            for stream in open.lock().unwrap().drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// A loopback TCP proxy to the server that can refuse and cut connections.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (accept_up, accept_open) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !accept_up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                {
                    let mut open = accept_open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { port, up, open }
    }
}

/// Copies `from` to `to` on a thread until either side closes.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
    });
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// One HTTP/1.1 request to the server itself (`headers`: lines ending in CRLF); the
/// answer.
fn http(port: u16, request_line: &str, headers: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to moto");
    write!(
        stream,
        "{request_line}\r\nHost: 127.0.0.1:{port}\r\n{headers}Content-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}
