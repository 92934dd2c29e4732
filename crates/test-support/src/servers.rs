//! Server processes on loopback for tests and benchmarks: each runs in its own process group,
//! stopped on drop with everything it forked. `git daemon`, and nginx in front of
//! `git http-backend` (smart HTTP).

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// A server process and everything it forks (its own process group), stopped on drop: TERM, then
/// KILL for whatever the group still holds.
pub struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `command` in a new process group, its output in `log`, and waits (bounded) until
    /// `ready` holds. `None` when it exited first (a port taken in the meantime, say) or could not
    /// start (not installed).
    pub fn start(name: &'static str, mut command: Command, log: &Path, ready: impl Fn() -> bool) -> Option<Server> {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).expect("log file");
        command.process_group(0).stdin(Stdio::null()).stdout(out.try_clone().expect("log file")).stderr(out);
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                eprintln!("{name} does not start: {e}");
                return None;
            }
        };
        let mut server = Server { name, child, log: log.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if ready() {
                return Some(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                eprintln!("{name} exited ({status}): {}", server.log());
                return None;
            }
            assert!(Instant::now() < deadline, "{name} did not become ready: {}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a server listening on a free port: `command` builds it for a port; a few attempts.
    pub fn on_free_port(name: &'static str, log: &Path, command: impl Fn(u16) -> Command) -> Option<(Server, u16)> {
        (0..3).find_map(|_| {
            let port = free_port();
            let listening = || TcpStream::connect(("127.0.0.1", port)).is_ok();
            Server::start(name, command(port), log, listening).map(|server| (server, port))
        })
    }

    /// What the server wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let signal = |signal: &str| {
            let quiet = || Stdio::null();
            let _ = Command::new("kill").args([signal, "--", &group]).stdout(quiet()).stderr(quiet()).status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever the group still holds (workers, connections) goes too.
        signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
    }
}

/// `git daemon` exporting every repository under `base`, with push enabled.
pub fn git_daemon(base: &Path, log: &Path) -> (Server, u16) {
    let daemon = Server::on_free_port("git daemon", log, |port| {
        let mut command = Command::new("git");
        command.args([
            "daemon",
            "--reuseaddr",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", base.display()),
            "--export-all",
            "--enable=receive-pack",
        ]);
        command.arg(base);
        command
    });
    daemon.expect("git daemon starts")
}

/// nginx in front of `git http-backend` (through fcgiwrap), serving every repository under a
/// directory; with a password, basic auth for the user `x-access-token` (as git hosts take tokens).
pub struct GitHttp {
    // Dropped in this order: nginx first, then fcgiwrap, then their directory.
    _nginx: Server,
    _fcgiwrap: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

impl GitHttp {
    /// Starts both; `None` when either cannot start (not installed).
    pub fn start(root: &Path, password: Option<&str>) -> Option<GitHttp> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        let auth = match password {
            Some(password) => {
                // htpasswd: the password goes through stdin, not a command line.
                let mut openssl = Command::new("openssl")
                    .args(["passwd", "-apr1", "-stdin"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .ok()?;
                writeln!(openssl.stdin.take()?, "{password}").ok()?;
                let hash = openssl.wait_with_output().ok().filter(|o| o.status.success())?;
                let entry = format!("x-access-token:{}", String::from_utf8_lossy(&hash.stdout));
                std::fs::write(path("htpasswd"), entry).expect("htpasswd");
                format!("auth_basic \"git\";\n      auth_basic_user_file {}/htpasswd;", dir.path().display())
            }
            None => String::new(),
        };
        let socket = path("fcgiwrap.sock");
        let mut fcgiwrap = Command::new("/usr/sbin/fcgiwrap");
        fcgiwrap.args(["-c", "4", "-s"]).arg(format!("unix:{}", socket.display()));
        let fcgiwrap = Server::start("fcgiwrap", fcgiwrap, &path("fcgiwrap.log"), || socket.exists())?;
        for temp in ["body", "fastcgi", "proxy", "uwsgi", "scgi"] {
            std::fs::create_dir_all(path("tmp").join(temp)).expect("nginx's directories");
        }
        let (nginx, port) = Server::on_free_port("nginx", &path("nginx.out"), |port| {
            let d = dir.path().display();
            let config = format!(
                r#"user root;
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/tmp/body;
  fastcgi_temp_path {d}/tmp/fastcgi;
  proxy_temp_path {d}/tmp/proxy;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 0;
    location / {{
      {auth}
      fastcgi_pass unix:{socket};
      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
      fastcgi_param GIT_PROJECT_ROOT {root};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $uri;
      fastcgi_param REMOTE_USER $remote_user;
      fastcgi_param QUERY_STRING $query_string;
      fastcgi_param REQUEST_METHOD $request_method;
      fastcgi_param CONTENT_TYPE $content_type;
      fastcgi_param CONTENT_LENGTH $content_length;
    }}
  }}
}}
"#,
                socket = socket.display(),
                root = root.display(),
            );
            std::fs::write(path("nginx.conf"), config).expect("nginx.conf");
            let mut command = Command::new("/usr/sbin/nginx");
            command.arg("-p").arg(dir.path()).arg("-c").arg(path("nginx.conf")).arg("-e").arg(path("error.log"));
            command
        })?;
        Some(GitHttp { _nginx: nginx, _fcgiwrap: fcgiwrap, port, _dir: dir })
    }

    /// The port nginx listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of a repository under the root.
    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}", self.port)
    }
}
