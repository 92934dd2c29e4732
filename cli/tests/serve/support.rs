//! Fixtures for the end-to-end tests: a bare remote and a person's clone driven with the git CLI, a
//! real `gitbacked serve` process on a free loopback port (killed on drop), kubectl with a kubeconfig
//! and a discovery cache of the server's own, the Python client, and raw HTTP/1.1 requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use gitbacked_test_support::{COMMAND_TIMEOUT, Remote, git, run_bounded};

/// How long a change may take to show (the server polls every 200 ms).
pub const SETTLE: Duration = Duration::from_secs(20);

/// The `gitbacked` binary under test.
pub const GITBACKED: &str = env!("CARGO_BIN_EXE_gitbacked");

/// Waits (bounded by [`SETTLE`]) until `check` holds.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + SETTLE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {SETTLE:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a program is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------------
// The server.

/// How to start a server.
#[derive(Default)]
pub struct ServeOptions {
    /// Serve with `--token-file` holding this token.
    pub token: Option<String>,
    /// Serve HTTPS with this certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve this repository (`--repo`, e.g. a `git://` URL) instead of the temp-dir remote.
    pub repo: Option<String>,
    /// Keep the mirror here (`--cache-dir`) instead of in the temp dir, e.g. to restart on it.
    pub cache_dir: Option<PathBuf>,
    /// More flags for `gitbacked serve`.
    pub args: Vec<String>,
}

/// A child process, killed and reaped on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `gitbacked serve` on a temp-dir remote, killed on drop.
pub struct Server {
    // Dropped first: the process stops before its directory goes.
    _process: Killed,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT` or `https://…`.
    pub url: String,
    pub remote: Remote,
    log: PathBuf,
    /// Holds the remote, the clone, the mirror, kubeconfigs, kubectl caches, manifests and scripts.
    pub dir: tempfile::TempDir,
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

impl Server {
    /// A plain-HTTP server without authentication.
    pub fn start() -> Self {
        Self::start_with(ServeOptions::default())
    }

    /// A server started with `options`; returns once `/readyz` answers 200 (bounded), with a
    /// kubeconfig named `kubeconfig` (carrying the token, if any) written by `gitbacked kubeconfig`.
    pub fn start_with(options: ServeOptions) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let remote = Remote::in_dir(dir.path());
        let https = options.tls.is_some();
        let mut last_error = String::new();
        // A port taken by someone else between choosing and binding makes the server exit: retry.
        for attempt in 1..=5 {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let log = dir.path().join(format!("serve-{attempt}.log"));
            let mut cmd = Command::new(GITBACKED);
            let repo = options.repo.clone().unwrap_or_else(|| remote.path().display().to_string());
            let cache_dir = options.cache_dir.clone().unwrap_or_else(|| dir.path().join(format!("mirror-{attempt}")));
            cmd.arg("serve")
                .arg("--repo")
                .arg(repo)
                .arg("--listen")
                .arg(addr.to_string())
                .args(["--interval", "200ms"])
                .arg("--cache-dir")
                .arg(cache_dir)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
            if let Some(token) = &options.token {
                let file = dir.path().join("token");
                std::fs::write(&file, format!("{token}\n")).unwrap();
                cmd.arg("--token-file").arg(file);
            }
            if let Some((cert, key)) = &options.tls {
                cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            }
            cmd.args(&options.args);
            let mut process = Killed(cmd.spawn().expect("start gitbacked serve"));
            match wait_ready(&mut process.0, addr, https, &log) {
                Ok(()) => {
                    let url = format!("{}://{addr}", if https { "https" } else { "http" });
                    let server = Server { _process: process, addr, url, remote, log, dir };
                    server.write_kubeconfig("kubeconfig", options.token.as_deref());
                    return server;
                }
                Err(e) if e.contains("binding") => last_error = e,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("gitbacked serve could not bind a port: {last_error}")
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self._process.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM could not be sent");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self._process.0.try_wait().expect("wait for gitbacked") {
                return status;
            }
            assert!(std::time::Instant::now() < deadline, "gitbacked did not stop after SIGTERM: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A path inside the server's temp dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `gitbacked kubeconfig --server URL [--token T]` to `name` in the temp dir.
    pub fn write_kubeconfig(&self, name: &str, token: Option<&str>) -> PathBuf {
        self.write_kubeconfig_with(name, token, &[])
    }

    /// Writes `gitbacked kubeconfig --server URL [--token T] ARGS…` to `name` in the temp dir.
    pub fn write_kubeconfig_with(&self, name: &str, token: Option<&str>, args: &[&std::ffi::OsStr]) -> PathBuf {
        let mut cmd = Command::new(GITBACKED);
        cmd.args(["kubeconfig", "--server", &self.url]).args(args);
        if let Some(token) = token {
            cmd.args(["--token", token]);
        }
        let out = run_bounded(&mut cmd, COMMAND_TIMEOUT);
        assert!(out.status.success(), "gitbacked kubeconfig failed: {}", String::from_utf8_lossy(&out.stderr));
        let path = self.path(name);
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }

    /// Writes a manifest into the temp dir and returns its path (for `-f`).
    pub fn manifest(&self, name: &str, content: &str) -> String {
        let path = self.path("manifests").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }

    /// A ConfigMap manifest `namespace/name` holding `data`, written into the temp dir; returns its path.
    /// (`kubectl create configmap --from-literal` would send protobuf: see `create_configmap_from_literals`.)
    pub fn configmap_manifest(&self, namespace: &str, name: &str, data: &[(&str, &str)]) -> String {
        let mut yaml =
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n");
        for (k, v) in data {
            yaml.push_str(&format!("  {k}: \"{v}\"\n"));
        }
        self.manifest(&format!("{namespace}-{name}.yaml"), &yaml)
    }

    /// `kubectl create -f` of a ConfigMap; returns kubectl's output.
    pub fn create_configmap(&self, namespace: &str, name: &str, data: &[(&str, &str)]) -> String {
        let path = self.configmap_manifest(namespace, name, data);
        self.kubectl_ok(&["create", "-f", &path])
    }

    /// A kubectl command on the kubeconfig `kubeconfig` (in the temp dir), with a discovery cache
    /// of this server's own.
    pub fn kubectl_command(&self, kubeconfig: &str, args: &[&str]) -> Command {
        static KUBECTL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        assert!(
            *KUBECTL.get_or_init(|| have("kubectl")),
            "kubectl is not on the PATH: the serve tests drive a real kubectl (1.27 to 1.33)"
        );
        let mut cmd = Command::new("kubectl");
        cmd.env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(self.path(kubeconfig))
            .arg("--cache-dir")
            .arg(self.path(&format!("kubectl-cache-{kubeconfig}")))
            .args(args);
        cmd
    }

    /// Runs kubectl (bounded) with the default kubeconfig.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as("kubeconfig", args)
    }

    /// Runs kubectl (bounded) with the kubeconfig `kubeconfig`.
    pub fn kubectl_as(&self, kubeconfig: &str, args: &[&str]) -> Output {
        run_bounded(&mut self.kubectl_command(kubeconfig, args), COMMAND_TIMEOUT)
    }

    /// Runs kubectl, asserts it succeeded and returns its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl_ok_as("kubeconfig", args)
    }

    /// Runs kubectl with the kubeconfig `kubeconfig`, asserts it succeeded and returns its stdout.
    pub fn kubectl_ok_as(&self, kubeconfig: &str, args: &[&str]) -> String {
        let out = self.kubectl_as(kubeconfig, args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl, asserts it failed and returns its stderr.
    pub fn kubectl_fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} succeeded, expected a failure:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Starts a long-running kubectl (e.g. `get -w`) whose output lines can be awaited.
    pub fn spawn_kubectl(&self, args: &[&str]) -> Lines {
        Lines::spawn(&mut self.kubectl_command("kubeconfig", args))
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until `kubectl get KIND/NAME` finds the object (e.g. after a person's push).
    pub fn wait_served(&self, namespace: &str, kind_name: &str) {
        eventually(&format!("{kind_name} to be served"), || {
            self.kubectl(&["get", "-n", namespace, kind_name]).status.success()
        });
    }

    /// A raw HTTP/1.1 request to the server (plain HTTP only).
    pub fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> HttpResponse {
        http(self.addr, method, path, headers, body)
    }
}

fn wait_ready(child: &mut Child, addr: SocketAddr, https: bool, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!(
                "gitbacked serve exited ({status}) before it was ready:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        let ready = if https {
            let out = run_bounded(
                Command::new("curl")
                    .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2"])
                    .arg(format!("https://{addr}/readyz")),
                COMMAND_TIMEOUT,
            );
            out.stdout == b"200"
        } else {
            try_http(addr, "GET", "/readyz", &[], None, Duration::from_secs(2)).is_ok_and(|r| r.status == 200)
        };
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "gitbacked serve was not ready within 30s:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Long-running processes read line by line.

/// The output lines (stdout and stderr) of a running process, killed on drop.
pub struct Lines {
    _child: Killed,
    rx: mpsc::Receiver<String>,
    /// Every line received so far.
    pub seen: Vec<String>,
}

impl Lines {
    /// Starts `cmd` with piped output.
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let (tx, rx) = mpsc::channel();
        let pipe = |r: Box<dyn Read + Send>, prefix: &'static str, tx: mpsc::Sender<String>| {
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(format!("{prefix}{line}")).is_err() {
                        break;
                    }
                }
            });
        };
        pipe(Box::new(child.stdout.take().unwrap()), "", tx.clone());
        pipe(Box::new(child.stderr.take().unwrap()), "stderr: ", tx);
        Lines { _child: Killed(child), rx, seen: Vec::new() }
    }

    /// Waits (bounded) for a line matching `matches` and returns it.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("no line with {what} within {timeout:?}; lines so far:\n{}", self.seen.join("\n"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the process ended without a line with {what}; its lines:\n{}", self.seen.join("\n"))
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP.

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A raw HTTP/1.1 request with `Connection: close`; panics when the exchange fails.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> HttpResponse {
    try_http(addr, method, path, headers, body, COMMAND_TIMEOUT)
        .unwrap_or_else(|e| panic!("{method} {path} on {addr} failed: {e}"))
}

/// A raw HTTP/1.1 request. The body is written by a thread of its own while the answer is read, so
/// an answer sent before the whole body was read (413) still arrives.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> std::io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = &body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    let writer = body.map(|body| {
        let mut w = stream.try_clone().expect("clone the stream");
        std::thread::spawn(move || {
            let _ = w.write_all(&body);
        })
    });
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw)
        && raw.is_empty()
    {
        return Err(e);
    }
    if let Some(writer) = writer {
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let _ = writer.join();
    }
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::other(format!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(500)])
        ))
    })
}

fn parse_response(raw: &[u8]) -> Option<HttpResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.split(';').next()?.trim(), 16)
                    .ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body = decoded;
    }
    Some(HttpResponse { status, headers, body })
}

// ---------------------------------------------------------------------------------------------
// Python.

/// The venv interpreter that `scripts/test` sets up with the `kubernetes` package.
pub fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: the Python tests need the workspace venv with the kubernetes package. Create it with \
         `python3 -m venv .venv && .venv/bin/pip install kubernetes==37.0.2` at the workspace root, or run scripts/test",
        python.display()
    );
    python
}

/// A self-signed certificate and its key (PEM) for `subject` (`/CN=…`), with an extra
/// `subjectAltName` if given, made by openssl in `dir`; `None` (with a message) without openssl.
pub fn self_signed_certificate(dir: &Path, subject: &str, alt_name: Option<&str>) -> Option<(PathBuf, PathBuf)> {
    if !have("openssl") {
        eprintln!("SKIPPED: the test needs openssl on the PATH");
        return None;
    }
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", subject]);
    if let Some(name) = alt_name {
        cmd.args(["-addext", &format!("subjectAltName={name}")]);
    }
    let out = run_bounded(cmd.arg("-keyout").arg(&key).arg("-out").arg(&cert), COMMAND_TIMEOUT);
    assert!(out.status.success(), "openssl req failed: {}", String::from_utf8_lossy(&out.stderr));
    Some((cert, key))
}

/// Where `scripts/test` installs Node.js 22 and `@kubernetes/client-node` (npm packages `node` and
/// `@kubernetes/client-node`).
pub fn node_modules() -> PathBuf {
    let modules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.node/node_modules");
    assert!(
        modules.join(".bin/node").exists() && modules.join("@kubernetes/client-node").exists(),
        "{} is missing: the client-node tests need `npm install --prefix .node node@22 @kubernetes/client-node@2.0.1` \
         at the workspace root, or run scripts/test",
        modules.display()
    );
    modules
}

impl Server {
    /// Runs an ES module `script` (written into the temp dir, next to a link to the workspace's
    /// `node_modules`) with Node.js 22, bounded; its output, asserting it succeeded.
    pub fn node(&self, name: &str, script: &str, args: &[&std::ffi::OsStr]) -> String {
        let modules = node_modules();
        let link = self.path("node_modules");
        if !link.exists() {
            std::os::unix::fs::symlink(&modules, &link).unwrap();
        }
        let path = self.path(&format!("{name}.mjs"));
        std::fs::write(&path, script).unwrap();
        let out = run_bounded(Command::new(modules.join(".bin/node")).arg(&path).args(args), COMMAND_TIMEOUT);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "the Node.js script {name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        stdout
    }

    /// A command running the Python `script` (written into the temp dir) with the server's URL as
    /// its first argument.
    pub fn python_command(&self, name: &str, script: &str) -> Command {
        let path = self.path(&format!("{name}.py"));
        std::fs::write(&path, script).unwrap();
        let mut cmd = Command::new(python());
        cmd.arg("-u").arg(&path).arg(&self.url).env("PYTHONDONTWRITEBYTECODE", "1");
        cmd
    }

    /// Runs a Python script (bounded), asserts it succeeded, and parses its last stdout line as JSON.
    pub fn python(&self, name: &str, script: &str) -> serde_json::Value {
        let out = run_bounded(&mut self.python_command(name, script), COMMAND_TIMEOUT);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the Python script {name} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("the last line of {name}'s output is not JSON ({e}):\n{stdout}"))
    }
}
