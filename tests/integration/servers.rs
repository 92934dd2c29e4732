//! Server processes for the tests: each runs in its own process group, killed on drop with
//! everything it forked, on a free loopback port.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// A server process and everything it forks (its own process group), stopped on drop.
pub struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `command` in a new process group, its output in `log`, and waits (bounded) until
    /// `ready` holds. `None` when it exited first (a port taken in the meantime, say).
    pub fn start(name: &'static str, mut command: Command, log: &Path, ready: impl Fn() -> bool) -> Option<Server> {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log).expect("log file");
        command.process_group(0).stdin(Stdio::null()).stdout(out.try_clone().expect("log file")).stderr(out);
        let child = command.spawn().unwrap_or_else(|e| panic!("{name} starts: {e}"));
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
    pub fn on_free_port(name: &'static str, log: &Path, command: impl Fn(u16) -> Command) -> (Server, u16) {
        for _ in 0..3 {
            let port = free_port();
            let listening = || TcpStream::connect(("127.0.0.1", port)).is_ok();
            if let Some(server) = Server::start(name, command(port), log, listening) {
                return (server, port);
            }
        }
        panic!("{name} did not start");
    }

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
    Server::on_free_port("git daemon", log, |port| {
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
    })
}
