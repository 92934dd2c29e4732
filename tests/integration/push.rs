//! Pushes to a bare repository on this machine: written directly when receive-pack would do nothing
//! more, through `git push` when the remote has hooks or checks.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::{Remote, configmap, eventually, git, git_runs, open, open_with, options, within};

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": value}})).unwrap()
}

/// `git fsck` of the remote finds every object of every commit, and nothing broken.
fn assert_complete(remote: &Remote) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(remote.path())
        .args(["fsck", "--full", "--strict", "--no-dangling"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "git fsck: {stderr}");
}

#[tokio::test]
async fn writes_go_straight_into_a_local_bare_remote_and_leave_it_complete() {
    within(60, async {
        let remote = Remote::new();
        // A remote that keeps a reflog gets an entry per push, as from receive-pack.
        git(&remote.path(), &["config", "core.logAllRefUpdates", "always"]);
        let mirror = remote.dir().join("mirror.git");
        let store = open_with(&remote, gitbacked::Options { cache_dir: Some(mirror.clone()), ..options() }).await;
        let client = store.client();
        let default: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let fresh: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
        default.create(&PostParams::default(), &cm("a", "1")).await.unwrap();
        // New directories: the namespace's and the kind's trees are new objects too.
        fresh.create(&PostParams::default(), &cm("b", "2")).await.unwrap();
        let patch = Patch::Merge(json!({"data": {"k": "3"}}));
        default.patch("a", &PatchParams::default(), &patch).await.unwrap();
        fresh.delete("b", &DeleteParams::default()).await.unwrap();

        assert_eq!(git_runs(&store, "direct-push", "ok").await, 4);
        assert_eq!(git_runs(&store, "push", "ok").await, 0, "no git push ran");
        assert_eq!(remote.log().len(), 5, "{:?}", remote.log());
        let a = remote.file("default/configmaps/a.yaml").unwrap();
        assert!(a.contains("k: '3'") || a.contains("k: \"3\""), "{a}");
        assert!(remote.file("kube-public/configmaps/b.yaml").is_none());
        assert_complete(&remote);
        // Each line: `push gitbacked main@{<unix time of the update>}`.
        let reflog = git(&remote.path(), &["log", "-g", "--date=unix", "--format=%gs %gn %gd", "main"]);
        let time = |line: &str| {
            let braces = line.rsplit_once('{').map(|(_, t)| t.trim_end_matches('}'));
            braces.and_then(|t| t.parse::<i64>().ok()).unwrap_or(0)
        };
        let pushes: Vec<&str> = reflog.lines().filter(|l| l.starts_with("push gitbacked ")).collect();
        assert_eq!(pushes.len(), 4, "{reflog}");
        assert!(pushes.iter().all(|l| time(l) > 1_700_000_000), "{reflog}");
        // The remote's new objects are copies, never links to the mirror's files: the mirror is a
        // disposable cache, and truncating its files leaves the remote's history whole.
        let blob = git(&remote.path(), &["rev-parse", "main:default/configmaps/a.yaml"]);
        assert_ne!(inode(&mirror, blob.trim()), inode(&remote.path(), blob.trim()));
        let shared = files_of(&mirror).intersection(&files_of(&remote.path())).count();
        assert_eq!(shared, 0, "no file of the remote is a hard link of a file in the cache");

        // The mirror refers to what it pushed, so that its own maintenance never prunes it.
        assert_eq!(
            git(&mirror, &["rev-parse", "refs/remotes/origin/main"]),
            git(&remote.path(), &["rev-parse", "main"])
        );

        // The remote is an ordinary repository: a person clones it, commits on top and pushes.
        remote.commit(&[("default/configmaps/c.yaml", Some(&configmap("c", "4")))], "a person's commit");
        store.sync().await.unwrap();
        assert_eq!(default.get("c").await.unwrap().data.unwrap()["key"], "4");
        default.create(&PostParams::default(), &cm("d", "5")).await.unwrap();
        assert_eq!(remote.log()[..2], ["create v1 ConfigMap default/d".to_string(), "a person's commit".into()]);
        assert_complete(&remote);
        store.close().await.unwrap();
        // Damaging the cache afterwards leaves the remote's history whole.
        for file in walk(&mirror.join("objects")) {
            std::fs::write(&file, b"").unwrap();
        }
        assert_complete(&remote);
    })
    .await;
}

/// Every regular file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

/// The (device, inode) of every file of the repository at `dir`.
fn files_of(dir: &std::path::Path) -> std::collections::HashSet<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    walk(dir).iter().filter_map(|f| std::fs::metadata(f).ok()).map(|m| (m.dev(), m.ino())).collect()
}

/// The inode of a loose object of the repository at `dir`.
fn inode(dir: &std::path::Path, id: &str) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(dir.join("objects").join(&id[..2]).join(&id[2..])).unwrap())
}

#[tokio::test]
async fn a_remote_on_another_file_system_gets_copies() {
    within(60, async {
        let remote = Remote::new();
        // The mirror on tmpfs, the remote in the temp dir: hard links cannot cross.
        let mirror = tempfile::tempdir_in("/dev/shm").unwrap();
        let device = |p: &std::path::Path| std::os::unix::fs::MetadataExt::dev(&std::fs::metadata(p).unwrap());
        assert_ne!(device(mirror.path()), device(&remote.path()), "/dev/shm is another file system");
        let cache = mirror.path().join("mirror.git");
        let store = open_with(&remote, gitbacked::Options { cache_dir: Some(cache.clone()), ..options() }).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        api.create(&PostParams::default(), &cm("a", "1")).await.unwrap();
        api.create(&PostParams::default(), &cm("b", "2")).await.unwrap();
        assert_eq!(git_runs(&store, "direct-push", "ok").await, 2);
        assert!(remote.file("default/configmaps/b.yaml").is_some());
        let blob = git(&remote.path(), &["rev-parse", "main:default/configmaps/a.yaml"]);
        assert!(remote.path().join("objects").join(&blob.trim()[..2]).join(&blob.trim()[2..]).is_file());
        let leftovers = git(&remote.path(), &["count-objects", "-v"]);
        assert!(leftovers.contains("garbage: 0"), "no temporary file is left: {leftovers}");
        assert_complete(&remote);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_remote_with_a_hook_or_object_checks_is_pushed_with_git() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        api.create(&PostParams::default(), &cm("a", "1")).await.unwrap();
        assert_eq!((git_runs(&store, "direct-push", "ok").await, git_runs(&store, "push", "ok").await), (1, 0));

        // A hook appears: receive-pack must run it, so git pushes.
        let received = remote.dir().join("received");
        let hook = remote.path().join("hooks/post-receive");
        std::fs::write(&hook, format!("#!/bin/sh\ncat >> '{}'\n", received.display())).unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        api.create(&PostParams::default(), &cm("b", "2")).await.unwrap();
        let head = git(&remote.path(), &["rev-parse", "main"]);
        let ran = std::fs::read_to_string(&received).expect("the hook ran");
        assert!(ran.contains(&format!("{} refs/heads/main", head.trim())), "{ran}");
        assert_eq!((git_runs(&store, "direct-push", "ok").await, git_runs(&store, "push", "ok").await), (1, 1));

        // Without the hook but with object checks turned on in the remote's config: git again.
        std::fs::remove_file(&hook).unwrap();
        git(&remote.path(), &["config", "receive.fsckObjects", "true"]);
        api.create(&PostParams::default(), &cm("c", "3")).await.unwrap();
        assert_eq!((git_runs(&store, "direct-push", "ok").await, git_runs(&store, "push", "ok").await), (1, 2));
        git(&remote.path(), &["config", "--unset", "receive.fsckObjects"]);
        api.create(&PostParams::default(), &cm("d", "4")).await.unwrap();
        assert_eq!((git_runs(&store, "direct-push", "ok").await, git_runs(&store, "push", "ok").await), (2, 2));
        assert_eq!(remote.log().len(), 5);
        assert_complete(&remote);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn without_direct_push_every_push_runs_git() {
    within(60, async {
        let remote = Remote::new();
        let store = open_with(&remote, gitbacked::Options { direct_push: false, ..options() }).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        api.create(&PostParams::default(), &cm("a", "1")).await.unwrap();
        assert_eq!((git_runs(&store, "direct-push", "ok").await, git_runs(&store, "push", "ok").await), (0, 1));
        assert!(remote.file("default/configmaps/a.yaml").is_some());
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_ref_locked_by_another_writer_is_waited_for_never_overwritten() {
    within(60, async {
        let remote = Remote::new();
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let before = git(&remote.path(), &["rev-parse", "main"]);
        // Another writer is moving the branch: git's lock file is held.
        let lock = remote.path().join("refs/heads/main.lock");
        std::fs::write(&lock, "").unwrap();
        let write = tokio::spawn(async move { api.create(&PostParams::default(), &cm("a", "1")).await });
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(!write.is_finished(), "the write waits while the ref is locked");
        assert_eq!(git(&remote.path(), &["rev-parse", "main"]), before, "the locked ref did not move");
        assert!(git_runs(&store, "direct-push", "rejected").await >= 1);
        std::fs::remove_file(&lock).unwrap();
        write.await.unwrap().unwrap();
        assert!(remote.file("default/configmaps/a.yaml").is_some());
        assert_complete(&remote);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_remote_is_packed_now_and_then_as_receive_pack_would() {
    within(90, async {
        let remote = Remote::new();
        // `gc --auto` packs once it counts more than gc.auto / 256 loose objects in `objects/17`:
        // with gc.auto at 1, two. Thousands of loose blobs make sure there are; the pushes add more.
        let blobs = remote.dir().join("blobs");
        std::fs::create_dir(&blobs).unwrap();
        let paths: Vec<String> = (0..3000)
            .map(|i| {
                let path = blobs.join(i.to_string());
                std::fs::write(&path, format!("blob {i}\n")).unwrap();
                path.display().to_string()
            })
            .collect();
        std::fs::write(remote.dir().join("paths"), paths.join("\n")).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("git -C '{}' hash-object -w --stdin-paths < paths >/dev/null", remote.path().display()))
            .current_dir(remote.dir())
            .status()
            .unwrap();
        assert!(status.success());
        git(&remote.path(), &["config", "gc.auto", "1"]);
        // In the foreground of the process gitbacked starts, so that it is done soon after.
        git(&remote.path(), &["config", "gc.autoDetach", "false"]);
        assert!(std::fs::read_dir(remote.path().join("objects/17")).unwrap().count() >= 2);
        let store = open(&remote).await;
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        for i in 0..64 {
            api.create(&PostParams::default(), &cm(&format!("cm-{i}"), "v")).await.unwrap();
        }
        assert_eq!(git_runs(&store, "direct-push", "ok").await, 64);
        let packs = || {
            let counts = git(&remote.path(), &["count-objects", "-v"]);
            counts.lines().find_map(|l| l.strip_prefix("packs: ")?.parse::<u32>().ok()).unwrap_or(0)
        };
        eventually("git gc --auto packed the remote", || packs() > 0).await;
        // Maintenance moves the branch into packed-refs: the compare-and-swap finds it there.
        git(&remote.path(), &["pack-refs", "--all"]);
        assert!(!remote.path().join("refs/heads/main").exists());
        api.create(&PostParams::default(), &cm("after", "v")).await.unwrap();
        assert_eq!(remote.files().iter().filter(|f| f.starts_with("default/configmaps/")).count(), 65);
        assert_complete(&remote);
        store.close().await.unwrap();
    })
    .await;
}

/// A person's commit, pushed with plain git, retried while the stores keep moving the branch.
fn persons_commit(p: &std::path::Path, path: &str, text: &str) {
    for _ in 0..50 {
        let run = |args: &[&str]| std::process::Command::new("git").arg("-C").arg(p).args(args).output().unwrap();
        if !run(&["pull", "--quiet", "--rebase", "origin", "main"]).status.success() {
            continue;
        }
        std::fs::create_dir_all(p.join(path).parent().unwrap()).unwrap();
        std::fs::write(p.join(path), text).unwrap();
        git(p, &["add", path]);
        git(p, &["commit", "--quiet", "-m", &format!("person: {path}")]);
        if run(&["push", "--quiet", "origin", "main"]).status.success() {
            return;
        }
        git(p, &["reset", "--quiet", "--hard", "origin/main"]);
    }
    panic!("the person could not push {path}");
}

#[tokio::test]
async fn three_stores_and_a_person_racing_on_one_remote_lose_nothing() {
    within(120, async {
        let remote = Remote::new();
        let stores = futures::future::join_all((0..3).map(|_| open(&remote))).await;
        let mut writers = Vec::new();
        for (s, store) in stores.iter().enumerate() {
            for w in 0..4 {
                let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
                writers.push(tokio::spawn(async move {
                    let name = format!("s{s}-w{w}");
                    api.create(&PostParams::default(), &cm(&name, "0")).await.unwrap();
                    for round in 1..=8 {
                        let patch = Patch::Merge(json!({"data": {"k": round.to_string()}}));
                        api.patch(&name, &PatchParams::default(), &patch).await.unwrap();
                    }
                    name
                }));
            }
        }
        let person_dir = remote.person();
        let person = tokio::task::spawn_blocking(move || {
            for i in 0..8 {
                persons_commit(&person_dir, &format!("people/p-{i}.yaml"), &configmap(&format!("p-{i}"), "person"));
            }
        });
        let mut names = Vec::new();
        for writer in writers {
            names.push(writer.await.unwrap());
        }
        person.await.unwrap();

        // Every acknowledged write is on the remote, and so is every commit of the person's.
        for name in &names {
            let file = remote.file(&format!("default/configmaps/{name}.yaml")).unwrap();
            assert!(file.contains("k: \"8\""), "{name}: {file}");
        }
        let log = remote.log();
        for i in 0..8 {
            assert!(log.contains(&format!("person: people/p-{i}.yaml")), "{log:?}");
            assert!(remote.file(&format!("people/p-{i}.yaml")).is_some());
        }
        assert!(git(&remote.path(), &["log", "--merges", "--format=%H", "main"]).is_empty(), "history stays linear");
        assert_complete(&remote);
        // And every store converges on it.
        for store in &stores {
            store.sync().await.unwrap();
            let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
            for name in &names {
                assert_eq!(api.get(name).await.unwrap().data.unwrap()["k"], "8");
            }
            assert_eq!(api.get("p-7").await.unwrap().data.unwrap()["key"], "person");
        }
        let mut rejected = 0;
        for store in &stores {
            rejected += git_runs(store, "direct-push", "rejected").await;
        }
        // The stores did race: some of their pushes found the branch moved and were replayed.
        assert!(rejected > 0, "no push was rejected");
        for store in stores {
            store.close().await.unwrap();
        }
    })
    .await;
}

/// Makes every push into `remote` take `secs` seconds longer in its hook `name`: `pre-receive`
/// holds the update of the branch back, `post-receive` the answer after it.
fn slow_hook(remote: &Remote, name: &str, secs: u32) {
    let hook = remote.path().join("hooks").join(name);
    std::fs::write(&hook, format!("#!/bin/sh\ncat > /dev/null\nsleep {secs}\n")).unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// How many pushes of batches started so: `alone`, `overlapping` or `again`.
async fn pushes_started(store: &gitbacked::GitStore, start: &str) -> u64 {
    crate::support::counted(store, "gitbacked_git_pushes_total", &[format!("start=\"{start}\"")]).await
}

/// A remote whose pushes take `secs` seconds longer in its hook `hook` (see [`slow_hook`]), a
/// store on it and its ConfigMaps in `default`, after a first write (which times a push).
async fn slow_remote(hook: &str, secs: u32) -> (Remote, gitbacked::GitStore, Api<ConfigMap>) {
    let remote = Remote::new();
    slow_hook(&remote, hook, secs);
    let store = open(&remote).await;
    let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
    api.create(&PostParams::default(), &cm("first", "0")).await.unwrap();
    (remote, store, api)
}

/// Each answer is what is served.
async fn assert_served(api: &Api<ConfigMap>, answers: &[&ConfigMap]) {
    for answer in answers {
        let name = answer.metadata.name.as_deref().unwrap();
        assert_eq!(api.get(name).await.unwrap().metadata.resource_version, answer.metadata.resource_version);
    }
}

/// Creates ConfigMap `default/<name>` in a task of its own.
fn create_in_background(api: &Api<ConfigMap>, name: &str) -> tokio::task::JoinHandle<ConfigMap> {
    let (api, object) = (api.clone(), cm(name, "1"));
    tokio::spawn(async move { api.create(&PostParams::default(), &object).await.unwrap() })
}

/// Waits until the remote's last commit is `subject`.
async fn landed(remote: &Remote, subject: &str) {
    eventually(subject, || remote.log().first().is_some_and(|s| s == subject)).await;
}

#[tokio::test]
async fn a_write_that_comes_during_a_slow_push_is_pushed_on_top_of_it_before_it_is_answered() {
    within(60, async {
        // The remote updates the branch at once and answers a second later.
        let (remote, store, api) = slow_remote("post-receive", 1).await;
        let a = create_in_background(&api, "a");
        landed(&remote, "create v1 ConfigMap default/a").await;
        let b = create_in_background(&api, "b");
        let (a, b) = (a.await.unwrap(), b.await.unwrap());

        assert_eq!(pushes_started(&store, "overlapping").await, 1, "b's push started while a's was under way");
        assert_eq!(pushes_started(&store, "again").await, 0);
        assert_eq!(git_runs(&store, "push", "rejected").await, 0);
        let log = remote.log();
        assert_eq!(
            log[..3],
            ["create v1 ConfigMap default/b", "create v1 ConfigMap default/a", "create v1 ConfigMap default/first"]
        );
        // Each answer is what is served, numbered in the order the commits landed.
        assert_served(&api, &[&a, &b]).await;
        let version = |o: &ConfigMap| o.metadata.resource_version.as_deref().unwrap().parse::<u64>().unwrap();
        assert!(version(&a) < version(&b));
        assert_complete(&remote);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_overlapping_push_that_read_the_branch_before_the_push_below_landed_is_sent_again() {
    within(60, async {
        // The remote holds every update back for two seconds: the next push's advertisement still
        // shows the branch without a's commit, so receive-pack refuses b's update.
        let (remote, store, api) = slow_remote("pre-receive", 2).await;
        let a = create_in_background(&api, "a");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let b = create_in_background(&api, "b");
        let (a, b) = (a.await.unwrap(), b.await.unwrap());

        assert_eq!(pushes_started(&store, "overlapping").await, 1);
        assert_eq!(pushes_started(&store, "again").await, 1, "b's commit was sent again as it was");
        assert_eq!(git_runs(&store, "push", "rejected").await, 1);
        assert_eq!(
            remote.log()[..3],
            ["create v1 ConfigMap default/b", "create v1 ConfigMap default/a", "create v1 ConfigMap default/first"]
        );
        assert_served(&api, &[&a, &b]).await;
        assert_complete(&remote);
        store.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn overlapping_pushes_refused_because_a_person_pushed_between_them_are_replayed_on_the_persons_commit() {
    within(60, async {
        let (remote, store, api) = slow_remote("post-receive", 2).await;
        let a = create_in_background(&api, "a");
        landed(&remote, "create v1 ConfigMap default/a").await;
        // A person pushes on top of a's commit while the store still waits for a's answer.
        let person = remote.person();
        let persons = tokio::task::spawn_blocking(move || persons_commit(&person, "p.yaml", &configmap("p", "1")));
        landed(&remote, "person: p.yaml").await;
        let b = create_in_background(&api, "b");
        let (_, b) = (a.await.unwrap(), b.await.unwrap());
        persons.await.unwrap();

        assert_eq!(pushes_started(&store, "overlapping").await, 1);
        assert_eq!(pushes_started(&store, "again").await, 1);
        // b, refused twice, was staged again on the person's commit and pushed alone.
        assert_eq!(pushes_started(&store, "alone").await, 3);
        assert_eq!(
            remote.log()[..4],
            [
                "create v1 ConfigMap default/b",
                "person: p.yaml",
                "create v1 ConfigMap default/a",
                "create v1 ConfigMap default/first"
            ]
        );
        assert!(git(&remote.path(), &["log", "--merges", "--format=%H", "main"]).is_empty(), "history stays linear");
        assert_served(&api, &[&b]).await;
        assert_eq!(api.get("p").await.unwrap().data.unwrap()["key"], "1");
        assert_complete(&remote);
        store.close().await.unwrap();
    })
    .await;
}
