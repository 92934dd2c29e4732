//! Soak: four `gitbacked serve` processes on one `git://` remote (a real `git daemon`), concurrent raw-HTTP
//! writers on each, and a person pushing with the git CLI, while the daemon goes away for two seconds and one
//! process is killed with SIGKILL and restarted on its mirror. At the end the remote, read with the git CLI,
//! holds every acknowledged write and every person's commit, with a fast-forward-only history.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{COMMAND_TIMEOUT, Remote, SETTLE, ServeOptions, Server, free_port, git, run_bounded, try_http};

const PROCESSES: usize = 4;
const WRITERS_PER_PROCESS: usize = 2;
/// Updates after each create (alternately PUT and merge-PATCH).
const UPDATES_PER_OBJECT: usize = 3;
/// Every process gets at least this many writes through (with turns, 46 or more in every run seen;
/// without, three of four processes once got none).
const MIN_ACKNOWLEDGED_PER_PROCESS: usize = 5;
/// How long the writers and the person keep going.
const WRITE_PHASE: Duration = Duration::from_secs(35);
/// When the git daemon goes away (for [`DAEMON_OUTAGE`]), and when a process is killed.
const DAEMON_KILL_AT: Duration = Duration::from_secs(8);
const DAEMON_OUTAGE: Duration = Duration::from_secs(2);
const PROCESS_KILL_AT: Duration = Duration::from_secs(18);
const KILLED_PROCESS: usize = 1;
/// One write may wait for the server's write timeout (30 s) and then some.
const WRITE_HTTP_TIMEOUT: Duration = Duration::from_secs(45);
const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";

// ---------------------------------------------------------------------------------------------
// The git daemon: its own process group, killed with everything it forked.

struct GitDaemon {
    child: Option<Child>,
    port: u16,
    base: PathBuf,
    log: PathBuf,
}

impl GitDaemon {
    /// Serves every repository under `base` with push enabled, on a free port.
    fn start(base: &Path) -> Self {
        let mut daemon = GitDaemon { child: None, port: 0, base: base.to_path_buf(), log: base.join("daemon.log") };
        for _ in 0..5 {
            daemon.port = free_port();
            if daemon.spawn() {
                return daemon;
            }
        }
        panic!("git daemon did not start: {}", daemon.log());
    }

    fn url(&self) -> String {
        format!("git://127.0.0.1:{}/remote.git", self.port)
    }

    /// Starts the daemon on `self.port` and waits (bounded) until `git ls-remote` answers through it.
    fn spawn(&mut self) -> bool {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("daemon log");
        let mut cmd = Command::new("git");
        cmd.args([
            "daemon",
            "--reuseaddr",
            "--listen=127.0.0.1",
            &format!("--port={}", self.port),
            &format!("--base-path={}", self.base.display()),
            "--export-all",
            "--enable=receive-pack",
        ])
        .arg(&self.base)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        self.child = Some(cmd.spawn().expect("start git daemon"));
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let probe = run_bounded(
                Command::new("git").args(["ls-remote", &self.url()]).env("GIT_TERMINAL_PROMPT", "0"),
                COMMAND_TIMEOUT,
            );
            if probe.status.success() {
                return true;
            }
            if let Ok(Some(status)) = self.child.as_mut().unwrap().try_wait() {
                eprintln!("git daemon on port {} exited ({status})", self.port);
                self.child = None;
                return false;
            }
            if Instant::now() > deadline {
                self.kill();
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL to the daemon's whole process group (its connections' upload-pack and receive-pack too).
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (bounded retries while the port is released).
    fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.spawn() {
            assert!(Instant::now() < deadline, "git daemon did not restart on port {}: {}", self.port, self.log());
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// The gitbacked processes.

struct Process {
    options: ServeOptions,
    server: Mutex<Option<Server>>,
    addr: RwLock<SocketAddr>,
    restarts: AtomicUsize,
}

impl Process {
    fn start(url: &str, cache_dir: PathBuf) -> Self {
        let options = ServeOptions { repo: Some(url.to_string()), cache_dir: Some(cache_dir), ..Default::default() };
        let server = Server::start_with(clone_options(&options));
        Process {
            addr: RwLock::new(server.addr),
            server: Mutex::new(Some(server)),
            options,
            restarts: AtomicUsize::new(0),
        }
    }

    fn addr(&self) -> SocketAddr {
        *self.addr.read().unwrap()
    }

    /// SIGKILL (dropping the `Server` kills its process), then a new process on the same mirror.
    fn kill_and_restart(&self) {
        drop(self.server.lock().unwrap().take());
        let server = Server::start_with(clone_options(&self.options));
        *self.addr.write().unwrap() = server.addr;
        *self.server.lock().unwrap() = Some(server);
        self.restarts.fetch_add(1, Ordering::SeqCst);
    }

    fn log_tail(&self) -> String {
        self.server.lock().unwrap().as_ref().map(Server::log_tail).unwrap_or_default()
    }
}

fn clone_options(o: &ServeOptions) -> ServeOptions {
    ServeOptions { repo: o.repo.clone(), cache_dir: o.cache_dir.clone(), ..Default::default() }
}

// ---------------------------------------------------------------------------------------------
// Writers.

#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    /// 2xx, with the resourceVersion and the value the answer carried.
    Acked { rv: u64, served: String },
    /// A 4xx: refused, so it must not land.
    Refused(u16, String),
    /// 5xx or no answer: may or may not land.
    Unknown(String),
}

#[derive(Clone, Debug)]
struct Attempt {
    verb: &'static str,
    value: String,
    outcome: Outcome,
    took: Duration,
}

/// Every attempt of one writer, by object name, in order.
type Log = BTreeMap<String, Vec<Attempt>>;

fn configmap(name: &str, value: &str) -> Vec<u8> {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
           "data": {"v": value}})
    .to_string()
    .into_bytes()
}

fn send(addr: SocketAddr, verb: &'static str, name: &str, value: &str) -> Outcome {
    let item = format!("{CONFIGMAPS}/{name}");
    let (method, path, content_type, body) = match verb {
        "create" => ("POST", CONFIGMAPS, "application/json", configmap(name, value)),
        "update" => ("PUT", item.as_str(), "application/json", configmap(name, value)),
        _ => ("PATCH", item.as_str(), "application/merge-patch+json", json!({"data": {"v": value}}).to_string().into()),
    };
    match try_http(addr, method, path, &[("Content-Type", content_type)], Some(body), WRITE_HTTP_TIMEOUT) {
        Ok(r) if (200..300).contains(&r.status) => {
            let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let rv = answer["metadata"]["resourceVersion"].as_str().and_then(|rv| rv.parse().ok()).unwrap_or(0);
            let served = answer["data"]["v"].as_str().unwrap_or_default().to_string();
            Outcome::Acked { rv, served }
        }
        Ok(r) if (400..500).contains(&r.status) && r.status != 408 && r.status != 429 => {
            Outcome::Refused(r.status, r.text().chars().take(300).collect())
        }
        Ok(r) => {
            let status: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let message = status["message"].as_str().map(str::to_string).unwrap_or_else(|| r.text());
            Outcome::Unknown(format!("{}: {}", r.status, message.chars().take(200).collect::<String>()))
        }
        Err(e) => Outcome::Unknown(format!("no answer: {e}")),
    }
}

/// Creates `p{p}-w{w}-{n}` objects and updates each a few times until `stop`.
fn writer(process: &Process, p: usize, w: usize, stop: &AtomicBool) -> Log {
    let mut log = Log::new();
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let name = format!("p{p}-w{w}-{n}");
        let mut attempts: Vec<Attempt> = Vec::new();
        for k in 0..=UPDATES_PER_OBJECT {
            if k > 0 && stop.load(Ordering::SeqCst) {
                break;
            }
            let verb = match k {
                0 => "create",
                k if k % 2 == 1 => "update",
                _ => "patch",
            };
            let value = format!("{name}-v{k}");
            let sent = Instant::now();
            let outcome = send(process.addr(), verb, &name, &value);
            let failed = !matches!(outcome, Outcome::Acked { .. });
            attempts.push(Attempt { verb, value, outcome, took: sent.elapsed() });
            if failed {
                // Down or restarting: do not spin.
                thread::sleep(Duration::from_millis(200));
                if k == 0 {
                    // Whether the object exists is unknown: leave this name.
                    break;
                }
            }
        }
        log.insert(name, attempts);
    }
    log
}

/// The person: commits a ConfigMap file at a time from a clone and pushes through the daemon, pulling with
/// rebase when the push is rejected. Returns the subjects of the commits pushed.
fn person(clone: &Path, stop: &AtomicBool) -> (Vec<String>, BTreeMap<String, String>, usize) {
    let run = |args: &[&str]| {
        run_bounded(
            Command::new("git").arg("-C").arg(clone).args(args).env("GIT_TERMINAL_PROMPT", "0"),
            COMMAND_TIMEOUT,
        )
    };
    let (mut pushed, mut files, mut retries) = (Vec::new(), BTreeMap::new(), 0);
    let mut pending: Vec<(String, String, String)> = Vec::new();
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let name = format!("person-{n}");
        let path = format!("default/configmaps/{name}.yaml");
        let value = format!("{name}-by-hand");
        let full = clone.join(&path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(
            &full,
            format!(
                "# written by a person\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n\
                 data:\n  v: {value}\n"
            ),
        )
        .unwrap();
        let subject = format!("person adds {name}");
        git(clone, &["add", &path]);
        git(clone, &["commit", "--quiet", "-m", &subject]);
        pending.push((subject, path, value));
        for _ in 0..50 {
            if run(&["push", "--quiet", "origin", "main"]).status.success() {
                for (subject, path, value) in pending.drain(..) {
                    pushed.push(subject);
                    files.insert(path, value);
                }
                break;
            }
            retries += 1;
            let pull = run(&["pull", "--quiet", "--rebase", "origin", "main"]);
            if !pull.status.success() {
                // The daemon is away, most likely: wait for it.
                thread::sleep(Duration::from_millis(200));
            }
        }
        thread::sleep(Duration::from_millis(500));
    }
    (pushed, files, retries)
}

// ---------------------------------------------------------------------------------------------
// Reading the remote.

/// `git cat-file --batch` for `commit:path` specs: each file's content, `None` when missing.
fn cat_files(repo: &Path, specs: &[String]) -> Vec<Option<String>> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("git cat-file");
    let mut stdin = child.stdin.take().unwrap();
    let input = specs.iter().map(|s| format!("{s}\n")).collect::<String>();
    let feeder = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let _ = feeder.join();
    let _ = child.wait();
    let mut rest = &out[..];
    let mut files = Vec::new();
    for _ in specs {
        let end = rest.iter().position(|&b| b == b'\n').expect("a cat-file header");
        let header = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 1..];
        let fields: Vec<&str> = header.split(' ').collect();
        if fields.len() == 3 && fields[1] == "blob" {
            let size: usize = fields[2].parse().unwrap();
            files.push(Some(String::from_utf8_lossy(&rest[..size]).into_owned()));
            rest = &rest[size + 1..];
        } else {
            files.push(None);
        }
    }
    files
}

/// The `v:` value of a ConfigMap file.
fn value_of(file: &str) -> Option<String> {
    file.lines()
        .find_map(|l| l.trim().strip_prefix("v:"))
        .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
}

fn path_of(name: &str) -> String {
    format!("default/configmaps/{name}.yaml")
}

/// What a process serves: ConfigMap name → `data.v`.
fn served(addr: SocketAddr) -> Option<HashMap<String, String>> {
    let r = try_http(addr, "GET", CONFIGMAPS, &[], None, Duration::from_secs(10)).ok()?;
    if r.status != 200 {
        return None;
    }
    let list: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    Some(
        list["items"]
            .as_array()?
            .iter()
            .map(|i| {
                let name = i["metadata"]["name"].as_str().unwrap_or_default().to_string();
                (name, i["data"]["v"].as_str().unwrap_or_default().to_string())
            })
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------------

#[test]
fn soak_four_processes_daemon_restart_and_kill_9_lose_no_acknowledged_write() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let remote = Remote::in_dir(dir.path());
    // Every update of the remote's main in its reflog, to prove there was no force-push.
    git(&remote.path(), &["config", "core.logAllRefUpdates", "true"]);
    let mut daemon = GitDaemon::start(dir.path());
    let url = daemon.url();
    git(&remote.person(), &["remote", "set-url", "origin", &url]);

    let processes: Arc<Vec<Process>> =
        Arc::new((0..PROCESSES).map(|p| Process::start(&url, dir.path().join(format!("cache-{p}")))).collect());
    eprintln!("soak: {PROCESSES} processes ready on {url} after {:?}", started.elapsed());

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for p in 0..PROCESSES {
        for w in 0..WRITERS_PER_PROCESS {
            let (processes, stop) = (processes.clone(), stop.clone());
            writers.push(((p, w), thread::spawn(move || writer(&processes[p], p, w, &stop))));
        }
    }
    let person_thread = {
        let (clone, stop) = (remote.person(), stop.clone());
        thread::spawn(move || person(&clone, &stop))
    };

    // Faults.
    let phase = Instant::now();
    thread::sleep(DAEMON_KILL_AT);
    daemon.kill();
    eprintln!("soak: git daemon killed at {:?}", phase.elapsed());
    thread::sleep(DAEMON_OUTAGE);
    daemon.restart();
    eprintln!("soak: git daemon back on port {} at {:?}", daemon.port, phase.elapsed());
    thread::sleep(PROCESS_KILL_AT.saturating_sub(phase.elapsed()));
    eprintln!("soak: kill -9 process {KILLED_PROCESS} at {:?}", phase.elapsed());
    processes[KILLED_PROCESS].kill_and_restart();
    eprintln!("soak: process {KILLED_PROCESS} back at {:?}", phase.elapsed());
    thread::sleep(WRITE_PHASE.saturating_sub(phase.elapsed()));
    stop.store(true, Ordering::SeqCst);

    // Every writer ends within one write's timeout.
    let deadline = Instant::now() + WRITE_HTTP_TIMEOUT + Duration::from_secs(5);
    let mut logs: BTreeMap<(usize, usize), Log> = BTreeMap::new();
    for ((p, w), handle) in writers {
        while !handle.is_finished() {
            assert!(Instant::now() < deadline, "writer p{p}-w{w} did not stop");
            thread::sleep(Duration::from_millis(20));
        }
        logs.insert((p, w), handle.join().expect("writer panicked"));
    }
    while !person_thread.is_finished() {
        assert!(Instant::now() < deadline, "the person did not stop");
        thread::sleep(Duration::from_millis(20));
    }
    let (person_subjects, person_files, person_retries) = person_thread.join().expect("person panicked");

    // Settle: every process serves what the remote holds (bounded), so nothing is still on its way.
    let settle = Instant::now();
    let head = || remote.head().unwrap();
    let mut converged = [false; PROCESSES];
    let mut last_head = head();
    while settle.elapsed() < SETTLE {
        thread::sleep(Duration::from_millis(500));
        let now = head();
        let files: HashMap<String, String> = {
            let names: Vec<String> = git(&remote.path(), &["ls-tree", "--name-only", "main", "default/configmaps/"])
                .lines()
                .map(str::to_string)
                .collect();
            let contents = cat_files(&remote.path(), &names.iter().map(|n| format!("{now}:{n}")).collect::<Vec<_>>());
            names
                .iter()
                .zip(contents)
                .map(|(n, c)| {
                    let name = n.trim_start_matches("default/configmaps/").trim_end_matches(".yaml").to_string();
                    (name, c.as_deref().and_then(value_of).unwrap_or_default())
                })
                .collect()
        };
        for (p, process) in processes.iter().enumerate() {
            converged[p] = served(process.addr()).is_some_and(|s| s == files);
        }
        if converged.iter().all(|&c| c) && now == last_head {
            break;
        }
        last_head = now;
    }

    // Audit.
    let mut problems: Vec<String> = Vec::new();
    for (p, ok) in converged.iter().enumerate() {
        if !ok {
            problems.push(format!("process {p} does not serve the remote's ConfigMaps after {SETTLE:?}"));
        }
    }
    let repo = remote.path();
    let fsck = run_bounded(
        Command::new("git").arg("-C").arg(&repo).args(["fsck", "--full", "--no-dangling"]),
        COMMAND_TIMEOUT,
    );
    if !fsck.status.success() || !fsck.stdout.is_empty() {
        problems.push(format!(
            "git fsck: {} {} {}",
            fsck.status,
            String::from_utf8_lossy(&fsck.stdout),
            String::from_utf8_lossy(&fsck.stderr)
        ));
    }
    // No force-push: each update of main in the reflog moved it forward.
    let reflog = std::fs::read_to_string(repo.join("logs/refs/heads/main")).expect("the remote's reflog of main");
    let mut ref_updates = 0;
    for line in reflog.lines() {
        let mut ids = line.split(' ');
        let (old, new) = (ids.next().unwrap(), ids.next().unwrap());
        ref_updates += 1;
        if old.chars().all(|c| c == '0') {
            continue;
        }
        let ff = run_bounded(
            Command::new("git").arg("-C").arg(&repo).args(["merge-base", "--is-ancestor", old, new]),
            COMMAND_TIMEOUT,
        );
        if !ff.status.success() {
            problems.push(format!("main moved from {old} to {new}, not a fast-forward: {line}"));
        }
    }
    // Commits along the first-parent chain, numbered from 1 at the root, as resourceVersions count them.
    let chain: Vec<String> =
        git(&repo, &["rev-list", "--first-parent", "--reverse", "main"]).lines().map(str::to_string).collect();
    let subjects = remote.log();

    // Every acknowledged write is in the commit its resourceVersion names, on main's first-parent chain.
    let mut specs = Vec::new();
    let mut acked_writes = Vec::new();
    for ((p, w), log) in &logs {
        for (name, attempts) in log {
            for a in attempts {
                if let Outcome::Acked { rv, served } = &a.outcome {
                    if served != &a.value {
                        problems
                            .push(format!("p{p}-w{w}: {} of {name} answered {served:?}, not {:?}", a.verb, a.value));
                    }
                    let n = (*rv / 1_000_000) as usize;
                    match chain.get(n.wrapping_sub(1)) {
                        Some(commit) => {
                            specs.push(format!("{commit}:{}", path_of(name)));
                            acked_writes.push((name.clone(), a.clone(), *rv));
                        }
                        None => problems.push(format!(
                            "{} of {name} = {} acknowledged with resourceVersion {rv}, but main has {} commits",
                            a.verb,
                            a.value,
                            chain.len()
                        )),
                    }
                }
            }
        }
    }
    for ((name, a, rv), file) in acked_writes.iter().zip(cat_files(&repo, &specs)) {
        let value = file.as_deref().and_then(value_of);
        if value.as_deref() != Some(a.value.as_str()) {
            problems.push(format!(
                "{} of {name} = {} acknowledged with resourceVersion {rv}: that commit ({}) holds {value:?}",
                a.verb,
                a.value,
                chain[(*rv / 1_000_000) as usize - 1]
            ));
        }
    }

    // The final state: each name holds its last acknowledged value, or a later one that was not refused.
    let names: Vec<(&String, &Vec<Attempt>)> = logs.values().flat_map(|l| l.iter()).collect();
    let mut unacknowledged_landed = 0;
    let finals = cat_files(&repo, &names.iter().map(|(n, _)| format!("main:{}", path_of(n))).collect::<Vec<_>>());
    for ((name, attempts), file) in names.iter().zip(finals) {
        let value = file.as_deref().and_then(value_of);
        let last_ack = attempts.iter().rposition(|a| matches!(a.outcome, Outcome::Acked { .. }));
        let landed = value.as_ref().and_then(|v| attempts.iter().position(|a| &a.value == v));
        let fine = match (last_ack, landed) {
            (_, Some(i)) if Some(i) == last_ack => true,
            (_, Some(i)) => last_ack.is_none_or(|l| i > l) && matches!(attempts[i].outcome, Outcome::Unknown(_)),
            (None, None) => value.is_none(),
            (Some(_), None) => false,
        };
        if fine && landed.is_some_and(|i| !matches!(attempts[i].outcome, Outcome::Acked { .. })) {
            unacknowledged_landed += 1;
        }
        if !fine {
            problems.push(format!("{name}: main holds {value:?}; attempts: {attempts:?}"));
        }
    }

    // Every person's commit is on main, with its file.
    for subject in &person_subjects {
        if !subjects.contains(subject) {
            problems.push(format!("the person's commit {subject:?} is not in git log main"));
        }
    }
    let person_paths: Vec<(&String, &String)> = person_files.iter().collect();
    let person_finals =
        cat_files(&repo, &person_paths.iter().map(|(path, _)| format!("main:{path}")).collect::<Vec<_>>());
    for ((path, value), file) in person_paths.iter().zip(person_finals) {
        if file.as_deref().and_then(value_of).as_deref() != Some(value.as_str()) {
            problems.push(format!("the person's {path} is {file:?} on main, not {value}"));
        }
    }

    // Summary.
    eprintln!(
        "soak summary after {:?}: {} commits on main, {ref_updates} updates of main, {} \
         acknowledged writes audited, {unacknowledged_landed} objects hold an unacknowledged (in-flight) later value",
        started.elapsed(),
        chain.len(),
        acked_writes.len()
    );
    for (p, process) in processes.iter().enumerate() {
        let attempts: Vec<&Attempt> = logs.range((p, 0)..(p + 1, 0)).flat_map(|(_, l)| l.values().flatten()).collect();
        let count = |f: fn(&Outcome) -> bool| attempts.iter().filter(|a| f(&a.outcome)).count();
        let mut codes: BTreeMap<String, usize> = BTreeMap::new();
        for a in &attempts {
            match &a.outcome {
                Outcome::Acked { .. } => {}
                Outcome::Refused(code, _) => *codes.entry(code.to_string()).or_default() += 1,
                Outcome::Unknown(why) => *codes.entry(why.chars().take(80).collect()).or_default() += 1,
            }
        }
        let mut took: Vec<Duration> =
            attempts.iter().filter(|a| matches!(a.outcome, Outcome::Acked { .. })).map(|a| a.took).collect();
        took.sort();
        let median = took.get(took.len() / 2).copied().unwrap_or_default();
        let max = took.last().copied().unwrap_or_default();
        eprintln!(
            "soak: process {p}: {} objects, {} acknowledged (median {median:.1?}, max {max:.1?}), {} refused, {} unknown \
             {codes:?}, {} restarts",
            logs.range((p, 0)..(p + 1, 0)).map(|(_, l)| l.len()).sum::<usize>(),
            count(|o| matches!(o, Outcome::Acked { .. })),
            count(|o| matches!(o, Outcome::Refused(..))),
            count(|o| matches!(o, Outcome::Unknown(_))),
            process.restarts.load(Ordering::SeqCst)
        );
        // Turns (sync::Pacing): no process keeps the branch to itself for the whole run.
        let acknowledged = count(|o| matches!(o, Outcome::Acked { .. }));
        if acknowledged < MIN_ACKNOWLEDGED_PER_PROCESS {
            problems.push(format!("process {p} starved: {acknowledged} writes acknowledged"));
        }
    }
    eprintln!(
        "soak: person: {} commits pushed, {person_retries} rejected pushes retried; git daemon restarts: 1",
        person_subjects.len()
    );

    if !problems.is_empty() || person_subjects.is_empty() {
        for (p, process) in processes.iter().enumerate() {
            eprintln!("--- process {p} log tail ---\n{}", process.log_tail());
        }
        eprintln!("--- git daemon log ---\n{}", daemon.log());
        panic!("{} problems:\n{}", problems.len(), problems.join("\n"));
    }
    assert!(acked_writes.len() >= 50, "too few acknowledged writes to mean anything: {}", acked_writes.len());
    assert!(!person_subjects.is_empty(), "the person pushed nothing");
    eprintln!("soak: audit passed after {:?}", started.elapsed());
}
