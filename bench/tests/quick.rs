//! The quick mode end to end, so that the benchmark never rots. No timing is asserted: only that the run
//! completes and that its table names every measurement.

use std::process::Command;

#[test]
fn quick_mode_runs_every_measurement() {
    let dir = tempfile::tempdir().expect("temp dir");
    let markdown = dir.path().join("bench.md");
    let out = Command::new(env!("CARGO_BIN_EXE_gitbacked-bench"))
        .args(["all", "--quick", "--markdown"])
        .arg(&markdown)
        .output()
        .expect("the benchmark runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the benchmark failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let markdown = std::fs::read_to_string(&markdown).expect("markdown written");
    for name in [
        "Writes (",
        "1 writers: acknowledged writes/s",
        "4 writers: p50 latency",
        "16 writers: p99 latency",
        "64 writers: acknowledged writes/s",
        "HTTP, 16 keep-alive clients: acknowledged writes/s",
        "HTTP, 64 keep-alive clients: p99 latency",
        "16 writers: writes per git push (group commit)",
        "16 writers: mean git push time (store /metrics)",
        "baseline: git add && commit && push per write",
        "cold: GitStore::open → ready (empty cache)",
        "floor: git clone --bare --no-local",
        "floor: parse every YAML file",
        "warm: GitStore::open with the cache of a previous run",
        "1 objects: fetch done → events at a watcher",
        "10 objects: sync() → events at a watcher",
        "100 objects: fetch done → events at a watcher",
        "baseline: full rescan",
        "in-process GET (kube Api::get on store.client()), p50",
        "in-process LIST of",
        "HTTP GET, 8 connections: p99",
        "HTTP LIST of",
        "in-process LIST of namespace",
        "HTTP LIST of namespace",
        "in-process paged LIST of every ConfigMap",
        "HTTP paged LIST of every ConfigMap",
        "paged LIST (limit=50): page p99",
        "local-path remote (watched every 50 ms)",
        "webhook (POST /hooks/git right after the push)",
        "polling every 1 s",
        "peak RSS (VmHWM)",
        "(fixed cost)",
        "JSON size of the objects",
        "Network remote with latency: git daemon, 10 ms RTT",
        "t_push: one git push of a one-file commit",
        "round trips of one git push",
        "16 writers, 1 push(es) in flight: round trips per store push",
        "64 writers, 4 push(es) in flight: throughput / (writers / t_push)",
        "HTTP, 64 keep-alive clients, 4 push(es) in flight: p99 / t_push",
        "open loop, 8 writes per t_push, 4 push(es) in flight: pushes that overlapped one under way",
    ] {
        assert!(stdout.contains(name), "the table does not name {name:?}:\n{stdout}");
        assert!(markdown.contains(name), "the markdown does not name {name:?}");
    }
    assert!(stdout.contains("== Goals"), "the table has no goals:\n{stdout}");
    assert!(markdown.contains("| goal | measured | met |"));
}

/// Runs a subcommand of the bench with small arguments; returns what it printed.
fn run(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gitbacked-bench")).args(args).output().expect("the benchmark runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[test]
fn the_other_measurements_run_small() {
    let fanout = run(&["fanout", "--objects", "200", "--watchers", "10", "--changes", "50"]);
    assert!(fanout.contains("| without selector (5) |") && fanout.contains("per idle watch"), "{fanout}");
    let history = run(&[
        "history",
        "--commits",
        "60",
        "--big-every",
        "20",
        "--big-files",
        "1",
        "--small-files",
        "20",
        "--runs",
        "1",
    ]);
    let rows =
        ["| the history, replayed (no snapshot) |", "| the history, from a snapshot", "| its tip alone, one commit |"];
    assert!(rows.iter().all(|row| history.contains(row)), "{history}");
    let churn = run(&["churn", "--seconds", "2", "--replicators", "2", "--interval-ms", "400"]);
    assert!(churn.contains("| inline |") && churn.contains("| ref |"), "{churn}");
    // Without the status ref, status commits reach the branch; with it, an apply adds no line.
    let row =
        |mode: &str| churn.lines().find(|l| l.starts_with(&format!("| {mode} |"))).unwrap_or_default().to_string();
    assert!(row("ref").ends_with("| 0 | 1 |"), "{churn}");
}
