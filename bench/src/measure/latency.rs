//! Writes to network remotes with latency (issue 15, item 7): git daemon and smart HTTP (nginx +
//! fcgiwrap + `git http-backend`) behind the delaying proxy of [`crate::proxy`], at each round-trip
//! time asked for. The yardstick is git itself: `t_push`, one `git push` of a one-file commit from
//! a work-tree clone over the same link, measured in the same run (before and after the writers).
//! Then 16 and 64 in-process writers through a store opened on the proxied URL, with their
//! throughput and latencies as ratios to `t_push`, and the round trips of a push on each transport
//! as the proxy sees them.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gitbacked::GitStore;

use super::{Daemon, HOUR, Plan, Via, ms, options, write_level};
use crate::proxy::{Counts, Proxy};
use crate::repogen::{self, Repo};
use crate::report::{Report, median, progress};

/// The writer levels measured over each link.
const WRITERS: [usize; 2] = [16, 64];

/// Runs the measurement at each of `rtts` (ms) over git daemon and, when nginx and fcgiwrap are
/// installed, smart HTTP.
pub async fn run(repo: &Repo, plan: &Plan, rtts: &[u64], report: &mut Report) -> Result<()> {
    let base = repo.remote.parent().context("the remote has a parent directory")?;
    // Anonymous pushes over smart HTTP: http-backend refuses them unless told otherwise.
    repogen::git(&repo.remote, &["config", "http.receivepack", "true"])?;
    let daemon = Daemon::start(repo)?;
    let http = match GitHttp::start(base) {
        Ok(http) => Some(http),
        Err(e) => {
            report.skipped.push(format!("writes over smart HTTP with latency: {e:#}"));
            None
        }
    };
    let mut links: Vec<(&str, SocketAddr, &str)> =
        vec![("git daemon", SocketAddr::from(([127, 0, 0, 1], daemon.port)), "git")];
    if let Some(http) = &http {
        links.push(("smart HTTP", SocketAddr::from(([127, 0, 0, 1], http.port)), "http"));
    }
    for &rtt in rtts {
        for &(transport, upstream, scheme) in &links {
            let proxy = Proxy::start(upstream, Duration::from_millis(rtt))?;
            let url = format!("{scheme}://127.0.0.1:{}/remote.git", proxy.port);
            let section = format!("Network remote with latency: {transport}, {rtt} ms RTT ({} objects)", repo.objects);
            link(repo, plan, &url, &proxy, &section, report).await?;
        }
    }
    Ok(())
}

/// One transport at one round-trip time: `t_push`, then the writer levels, then `t_push` again.
async fn link(repo: &Repo, plan: &Plan, url: &str, proxy: &Proxy, section: &str, report: &mut Report) -> Result<()> {
    let mut clone = tokio::task::block_in_place(|| PushClone::new(repo, url))?;
    progress(&format!("{section}: t_push, {} git push before the writers", plan.push_samples));
    let mut before = Vec::new();
    let mut turns = Vec::new();
    for _ in 0..plan.push_samples {
        let (t, counts) = tokio::task::block_in_place(|| clone.push(proxy))?;
        before.push(t);
        turns.push(counts);
    }

    let t = Instant::now();
    let store = GitStore::open(url, options(HOUR)).await?;
    let open = ms(t.elapsed());
    let client = Via::InProcess(store.client());
    let mut levels = Vec::new();
    for writers in WRITERS {
        let (pushes_before, carried_before) = (super::pushes(&store).await?.0, proxy.counts());
        let level = write_level(&store, repo, &client, writers, plan.latency_writes, plan.runs, section).await?;
        let pushes = super::pushes(&store).await?.0 - pushes_before;
        let carried = proxy.counts() - carried_before;
        levels.push((writers, level, pushes, carried));
    }
    store.close().await?;

    progress(&format!("{section}: t_push, {} git push after the writers", plan.push_samples));
    tokio::task::block_in_place(|| clone.catch_up())?;
    let mut after = Vec::new();
    for _ in 0..plan.push_samples {
        let (t, counts) = tokio::task::block_in_place(|| clone.push(proxy))?;
        after.push(t);
        turns.push(counts);
    }

    let samples: Vec<f64> = before.iter().chain(&after).copied().collect();
    let t_push = median(&samples);
    report.add(
        section,
        "t_push: one git push of a one-file commit (git CLI, same link)",
        "ms",
        samples,
        format!("before the writers {:.0} ms, after {:.0} ms", median(&before), median(&after)),
    );
    let first = turns.first().copied().unwrap_or_default();
    report.add(
        section,
        "round trips of one git push (request → answer turn-arounds at the proxy)",
        "",
        turns.iter().map(|c| c.round_trips as f64).collect(),
        format!(
            "{} TCP connection(s), {} bytes up, {} down (first push)",
            first.connections, first.bytes_up, first.bytes_down
        ),
    );
    report.add(section, "GitStore::open over the link (cold sync)", "ms", vec![open], String::new());
    for (writers, level, pushes, carried) in levels {
        let who = format!("{writers} writers");
        let share = |rates: &[f64]| rates.iter().map(|r| r / (writers as f64 / t_push * 1000.0)).collect::<Vec<_>>();
        let of_t_push = |values: &[f64]| values.iter().map(|v| v / t_push).collect::<Vec<_>>();
        let (throughput, p50, p99) = (share(&level.rates), of_t_push(&level.p50s), of_t_push(&level.p99s));
        let (rate, p50_ms, p99_ms) = (median(&level.rates), median(&level.p50s), median(&level.p99s));
        level.add_to(report, section, &who);
        let per_push = |n: u64| if pushes > 0.0 { n as f64 / pushes } else { 0.0 };
        report.add(
            section,
            format!("{who}: round trips per store push (at the proxy)"),
            "",
            vec![per_push(carried.round_trips)],
            format!("{:.2} TCP connections per push, {pushes:.0} pushes", per_push(carried.connections)),
        );
        report.add(
            section,
            format!("{who}: throughput / (writers / t_push)"),
            "",
            throughput.clone(),
            "goal ≥ 0.9".into(),
        );
        report.add(section, format!("{who}: p50 / t_push"), "", p50.clone(), "goal ≤ 1.2".into());
        report.add(section, format!("{who}: p99 / t_push"), "", p99.clone(), "goal ≤ 2".into());
        let (throughput, p50, p99) = (median(&throughput), median(&p50), median(&p99));
        report.goal(
            format!("{section}, {who}: throughput ≥ 0.9 × writers / t_push, p50 ≤ 1.2 × t_push, p99 ≤ 2 × t_push"),
            format!(
                "t_push {t_push:.0} ms; {rate:.0} writes/s = {throughput:.2}×, p50 {p50_ms:.0} ms = {p50:.2}×, \
                 p99 {p99_ms:.0} ms = {p99:.2}×"
            ),
            throughput >= 0.9 && p50 <= 1.2 && p99 <= 2.0,
        );
    }
    Ok(())
}

/// A work-tree clone whose `origin` is the proxied URL: the yardstick's `git push`.
struct PushClone {
    _dir: tempfile::TempDir,
    wt: PathBuf,
    round: usize,
    /// The file every push changes: the last single-file ConfigMap, which no writer has.
    file: (String, usize),
}

impl PushClone {
    fn new(repo: &Repo, url: &str) -> Result<PushClone> {
        let dir = tempfile::tempdir()?;
        let wt = dir.path().join("wt");
        // Cloned from the path (fast), then pointed at the link.
        repogen::git(dir.path(), &["clone", "--quiet", &repo.local_url(), wt.to_str().context("utf-8")?])?;
        repogen::git(&wt, &["remote", "set-url", "origin", url])?;
        repogen::git(&wt, &["config", "user.name", "Bench"])?;
        repogen::git(&wt, &["config", "user.email", "bench@localhost"])?;
        let last = repogen::configmap_count(repo.objects - 1) - 1;
        Ok(PushClone { _dir: dir, wt, round: 0, file: (repogen::configmap(last, 0).2, last) })
    }

    /// Commits a change of one file, then runs and times `git push` alone (ms); what the proxy
    /// carried meanwhile.
    fn push(&mut self, proxy: &Proxy) -> Result<(f64, Counts)> {
        self.round += 1;
        let (path, k) = &self.file;
        let (_, _, _, text) = repogen::configmap(*k, 9000 + self.round);
        std::fs::write(self.wt.join(path), text)?;
        repogen::git(&self.wt, &["commit", "--quiet", "-m", "t_push", "--", path])?;
        let carried = proxy.counts();
        let t = Instant::now();
        repogen::git(&self.wt, &["push", "--quiet", "origin", "HEAD:main"])?;
        Ok((ms(t.elapsed()), proxy.counts() - carried))
    }

    /// Brings the work tree to the remote's branch (the writers moved it).
    fn catch_up(&self) -> Result<()> {
        repogen::git(&self.wt, &["fetch", "--quiet", "origin"])?;
        repogen::git(&self.wt, &["reset", "--quiet", "--hard", "origin/main"])?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Servers

/// A server process and everything it forks (a process group of its own), stopped on drop: TERM,
/// then KILL for whatever the group still holds.
struct Server {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `command` in a new process group, its output in `log`, and waits (bounded) until
    /// `ready` holds; fails when it exits first.
    fn start(name: &'static str, mut command: Command, log: &Path, ready: impl Fn() -> bool) -> Result<Server> {
        use std::os::unix::process::CommandExt;
        let out = std::fs::File::create(log)?;
        command.process_group(0).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
        let child = command.spawn().with_context(|| format!("{name} starts (is it installed?)"))?;
        let mut server = Server { name, child, log: log.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if ready() {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("{name} exited ({status}): {}", server.log());
            }
            if Instant::now() > deadline {
                bail!("{name} did not become ready: {}", server.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let signal = |signal: &str| {
            let quiet = Stdio::null;
            let _ = Command::new("kill").args([signal, "--", &group]).stdout(quiet()).stderr(quiet()).status();
        };
        signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        signal("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log());
        }
    }
}

/// nginx in front of `git http-backend` (through fcgiwrap), serving every repository under a
/// directory, push allowed without authentication, as the tests run it (there with basic auth).
struct GitHttp {
    // Dropped in this order: nginx first, then fcgiwrap, then their directory.
    _nginx: Server,
    _fcgiwrap: Server,
    port: u16,
    _dir: tempfile::TempDir,
}

impl GitHttp {
    fn start(root: &Path) -> Result<GitHttp> {
        let dir = tempfile::tempdir()?;
        let path = |name: &str| dir.path().join(name);
        let socket = path("fcgiwrap.sock");
        let mut fcgiwrap = Command::new("/usr/sbin/fcgiwrap");
        fcgiwrap.args(["-c", "4", "-s"]).arg(format!("unix:{}", socket.display()));
        let fcgiwrap = Server::start("fcgiwrap", fcgiwrap, &path("fcgiwrap.log"), || socket.exists())?;
        for temp in ["body", "fastcgi", "proxy", "uwsgi", "scgi"] {
            std::fs::create_dir_all(path("tmp").join(temp))?;
        }
        let d = dir.path().display();
        let mut last_error = None;
        // A port found free may be taken before nginx binds it: a few attempts.
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
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
      fastcgi_pass unix:{socket};
      fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
      fastcgi_param GIT_PROJECT_ROOT {root};
      fastcgi_param GIT_HTTP_EXPORT_ALL "";
      fastcgi_param PATH_INFO $uri;
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
            std::fs::write(path("nginx.conf"), config)?;
            let mut nginx = Command::new("/usr/sbin/nginx");
            nginx.arg("-p").arg(dir.path()).arg("-c").arg(path("nginx.conf")).arg("-e").arg(path("error.log"));
            let listening = || TcpStream::connect(("127.0.0.1", port)).is_ok();
            match Server::start("nginx", nginx, &path("nginx.out"), listening) {
                Ok(nginx) => return Ok(GitHttp { _nginx: nginx, _fcgiwrap: fcgiwrap, port, _dir: dir }),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nginx did not start")))
    }
}
