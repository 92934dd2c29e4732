//! Real remotes on loopback, started by the tests: git daemon (`git://`), OpenSSH (`ssh://` with a
//! key and a known_hosts file) and smart HTTP (nginx + fcgiwrap + git http-backend, basic auth with
//! a token). Clear errors for unknown host keys, refused credentials, missing repositories, missing
//! branches and non-bare remotes. Every server runs in its own process group, killed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitbacked::GitError;
use gitbacked::RemoteError;
use gitbacked::{Error, GitStore, Options};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::support::{Remote, configmap, git, options, status_of, within};
use gitbacked_test_support::servers::{GitHttp, Server, free_port, git_daemon};

// ---------------------------------------------------------------------------------------------
// Servers.

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn keygen(path: &Path) {
    run("ssh-keygen", &["-q", "-t", "ed25519", "-N", "", "-C", "gitbacked-test", "-f", path.to_str().unwrap()]);
}

/// An OpenSSH server on loopback that lets root in with one key.
struct Sshd {
    _server: Server,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        for key in ["host_key", "client_key", "other_key", "other_host_key"] {
            keygen(&path(key));
        }
        std::fs::copy(path("client_key.pub"), path("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let (server, port) = Server::on_free_port("sshd", &path("sshd.log"), |port| {
            let config = format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
                 StrictModes no\nUsePAM no\nPermitRootLogin yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nLoginGraceTime 20\n",
                path("host_key").display(),
                path("authorized_keys").display(),
                path("sshd.pid").display(),
            );
            std::fs::write(path("sshd_config"), config).unwrap();
            let mut command = Command::new("/usr/sbin/sshd");
            command.args(["-D", "-e", "-f"]).arg(path("sshd_config"));
            command
        })
        .expect("sshd starts");
        let sshd = Sshd { _server: server, port, dir };
        let host = |key: &str| format!("[127.0.0.1]:{port} {}", std::fs::read_to_string(sshd.path(key)).unwrap());
        std::fs::write(sshd.path("known_hosts"), host("host_key.pub")).unwrap();
        std::fs::write(sshd.path("wrong_known_hosts"), host("other_host_key.pub")).unwrap();
        std::fs::write(sshd.path("empty_known_hosts"), "").unwrap();
        sshd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn url(&self, repo: &Path) -> String {
        format!("ssh://root@127.0.0.1:{}{}", self.port, repo.display())
    }

    /// Options with a key and a known_hosts file from this server's directory.
    fn options(&self, key: &str, known_hosts: &str) -> Options {
        Options { ssh_key: Some(self.path(key)), known_hosts: Some(self.path(known_hosts)), ..options() }
    }
}

/// The token the smart HTTP server accepts (as the password of `x-access-token`).
const TOKEN: &str = "gbt-s3cr3t-T0KEN-4242";

// ---------------------------------------------------------------------------------------------
// Helpers.

/// The error of an open that must fail.
fn open_error(result: Result<GitStore, Error>) -> Error {
    match result {
        Ok(_) => panic!("the store opened, but it must not"),
        Err(e) => e,
    }
}

/// The remote error inside an open error; panics with the message otherwise.
fn remote_error(e: &Error) -> &RemoteError {
    match e {
        Error::Git(GitError::Remote(r)) => r,
        other => panic!("expected a remote error, got {other:?}: {other}"),
    }
}

fn cm(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"key": value}})).unwrap()
}

/// Writes through the API land on the remote; a person's push is served.
async fn round_trip(store: &GitStore, remote: &Remote, name: &str) {
    let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
    api.create(&PostParams::default(), &cm(&format!("{name}-api"), "from the api")).await.expect("create");
    let file = remote.file(&format!("default/configmaps/{name}-api.yaml")).expect("pushed to the remote");
    assert!(file.contains("from the api"), "{file}");
    assert_eq!(remote.log()[0], format!("create v1 ConfigMap default/{name}-api"));

    remote.commit(&[(&format!("people/{name}.yaml"), Some(&configmap(&format!("{name}-person"), "pushed")))], "add");
    store.sync().await.expect("sync");
    let got = api.get(&format!("{name}-person")).await.expect("a person's object is served");
    assert_eq!(got.data.unwrap()["key"], "pushed");
}

/// Log lines, captured for the current thread (the test runtime runs the sync loop there too).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        // Call sites first reached by other tests while no subscriber existed keep a cached "not
        // interested": ask them again.
        tracing::callsite::rebuild_interest_cache();
        (logs, guard)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// git daemon.

#[tokio::test]
async fn git_daemon_reads_and_writes() {
    within(90, async {
        let remote = Remote::new();
        let (_daemon, port) = git_daemon(remote.dir(), &remote.dir().join("daemon.log"));
        let store = GitStore::open(&format!("git://127.0.0.1:{port}/remote.git"), options()).await.expect("opens");
        round_trip(&store, &remote, "daemon").await;
        store.close().await.unwrap();

        let missing = open_error(GitStore::open(&format!("git://127.0.0.1:{port}/missing.git"), options()).await);
        assert!(matches!(remote_error(&missing), RemoteError::RepositoryNotFound { .. }), "{missing}");
        assert!(missing.to_string().contains("repository not found at git://127.0.0.1"), "{missing}");

        let closed = format!("git://127.0.0.1:{}/remote.git", free_port());
        let refused = open_error(GitStore::open(&closed, options()).await);
        assert!(matches!(remote_error(&refused), RemoteError::Unreachable { .. }), "{refused}");
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// ssh.

#[tokio::test]
async fn ssh_with_a_key_and_known_hosts() {
    within(90, async {
        let remote = Remote::new();
        let sshd = Sshd::start();
        let store = GitStore::open(&sshd.url(&remote.path()), sshd.options("client_key", "known_hosts"))
            .await
            .expect("opens over ssh");
        round_trip(&store, &remote, "ssh").await;
        store.close().await.unwrap();

        let missing = remote.dir().join("missing.git");
        let e = open_error(GitStore::open(&sshd.url(&missing), sshd.options("client_key", "known_hosts")).await);
        assert!(matches!(remote_error(&e), RemoteError::RepositoryNotFound { .. }), "{e}");
        assert!(e.to_string().contains("does not appear to be a git repository"), "{e}");
    })
    .await
}

#[tokio::test]
async fn ssh_failures_are_clear_and_quick() {
    within(90, async {
        let remote = Remote::new();
        let sshd = Sshd::start();
        let url = sshd.url(&remote.path());
        for known_hosts in ["wrong_known_hosts", "empty_known_hosts"] {
            let started = Instant::now();
            let e = open_error(GitStore::open(&url, sshd.options("client_key", known_hosts)).await);
            assert!(matches!(remote_error(&e), RemoteError::UnknownHostKey { .. }), "{e}");
            let message = e.to_string();
            assert!(message.contains("Host key verification failed") && message.contains("--known-hosts"), "{e}");
            assert!(message.contains(&format!("ssh://root@127.0.0.1:{}", sshd.port)), "{e}");
            assert!(started.elapsed() < Duration::from_secs(20), "no prompt, no hang");
        }
        let started = Instant::now();
        let e = open_error(GitStore::open(&url, sshd.options("other_key", "known_hosts")).await);
        assert!(matches!(remote_error(&e), RemoteError::AuthenticationFailed { .. }), "{e}");
        assert!(e.to_string().contains("Permission denied (publickey)"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(20), "no prompt, no hang");

        let unreadable =
            Options { ssh_key: Some(sshd.path("no_such_key")), ..sshd.options("client_key", "known_hosts") };
        let e = open_error(GitStore::open(&url, unreadable).await);
        assert!(matches!(remote_error(&e), RemoteError::Credentials(_)), "{e}");
        assert!(e.to_string().contains("no_such_key"), "{e}");
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Smart HTTP with a token.

#[tokio::test]
async fn http_with_a_token_from_a_file() {
    within(120, async {
        let (logs, _guard) = Logs::capture();
        let remote = Remote::new();
        git(&remote.path(), &["config", "http.receivepack", "true"]);
        let http = GitHttp::start(remote.dir(), Some(TOKEN)).expect("nginx and fcgiwrap start");
        let secrets = tempfile::tempdir().unwrap();
        let token_file = secrets.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        let mirror = secrets.path().join("mirror.git");
        let with_token = |file: &Path| Options {
            git_token_file: Some(file.to_path_buf()),
            cache_dir: Some(mirror.clone()),
            ..options()
        };

        let store = GitStore::open(&http.url("remote.git"), with_token(&token_file)).await.expect("opens over http");
        round_trip(&store, &remote, "http").await;

        // The token is read again before every command: a revoked one fails the next sync, a
        // new one works.
        std::fs::write(&token_file, "revoked").unwrap();
        let e = store.sync().await.expect_err("a revoked token fails");
        assert!(e.to_string().contains("authentication to http://127.0.0.1"), "{e}");
        assert!(!e.to_string().contains("revoked"), "{e}");
        std::fs::write(&token_file, TOKEN).unwrap();
        store.sync().await.expect("the token is back");
        store.close().await.unwrap();

        // Wrong, missing and empty tokens.
        let wrong = secrets.path().join("wrong");
        std::fs::write(&wrong, "not-the-token").unwrap();
        let e = open_error(GitStore::open(&http.url("remote.git"), with_token(&wrong)).await);
        assert!(matches!(remote_error(&e), RemoteError::AuthenticationFailed { .. }), "{e}");
        assert!(!e.to_string().contains("not-the-token"), "{e}");
        if std::env::var_os("GITBACKED_GIT_TOKEN").is_none() {
            let e = open_error(GitStore::open(&http.url("remote.git"), options()).await);
            assert!(matches!(remote_error(&e), RemoteError::AuthenticationFailed { .. }), "{e}");
        }
        let empty = secrets.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = open_error(GitStore::open(&http.url("remote.git"), with_token(&empty)).await);
        assert!(e.to_string().contains("is empty"), "{e}");

        // A repository that is not there.
        let e = open_error(GitStore::open(&http.url("missing.git"), with_token(&token_file)).await);
        assert!(matches!(remote_error(&e), RemoteError::RepositoryNotFound { .. }), "{e}");

        // Credentials in the URL are never shown.
        let with_password = format!("http://someone:pa55word@127.0.0.1:{}/remote.git", http.port());
        let e = open_error(GitStore::open(&with_password, Options { cache_dir: None, ..options() }).await);
        assert!(matches!(remote_error(&e), RemoteError::AuthenticationFailed { .. }), "{e}");
        assert!(!e.to_string().contains("pa55word") && e.to_string().contains("http://***@127.0.0.1"), "{e}");

        // The token is nowhere: not in the mirror's config, the commits or the logs.
        let encoded = gitbacked_git::mirror::credentials::base64(format!("x-access-token:{TOKEN}").as_bytes());
        let config = std::fs::read_to_string(mirror.join("config")).unwrap();
        assert!(config.contains("tokenFile") && !config.contains(TOKEN) && !config.contains(&encoded), "{config}");
        let history = git(&remote.path(), &["log", "--all", "--format=%H %an %ae %cn %ce%n%B"]);
        assert!(history.contains("create v1 ConfigMap") && !history.contains(TOKEN), "{history}");
        let logs = logs.text();
        assert!(logs.contains("the git token is sent over plain http"), "logs are captured: {logs}");
        assert!(!logs.contains(TOKEN) && !logs.contains(&encoded) && !logs.contains("pa55word"), "{logs}");
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Repositories and branches (local remotes).

#[tokio::test]
async fn a_missing_repository_is_named() {
    within(30, async {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing-here.git");
        let e = open_error(GitStore::open(missing.to_str().unwrap(), options()).await);
        assert!(matches!(remote_error(&e), RemoteError::RepositoryNotFound { .. }), "{e}");
        assert!(e.to_string().contains("nothing-here.git"), "{e}");
    })
    .await
}

#[tokio::test]
async fn a_missing_branch_is_an_error_unless_it_is_created() {
    within(60, async {
        let remote = Remote::new();
        let feature = Options { branch: Some("feature".into()), ..options() };
        let e = open_error(GitStore::open(&remote.url(), feature.clone()).await);
        assert!(matches!(remote_error(&e), RemoteError::BranchMissing { .. }), "{e}");
        let message = e.to_string();
        assert!(message.contains("\"feature\"") && message.contains("\"main\"") && message.contains("--create-branch"));

        let store =
            GitStore::open(&remote.url(), Options { create_branch: true, ..feature }).await.expect("opens to create");
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        assert!(api.list(&Default::default()).await.unwrap().items.is_empty());
        api.create(&PostParams::default(), &cm("first", "on feature")).await.expect("the first write creates it");
        // The branch starts from nothing; main is untouched.
        let log = git(&remote.path(), &["log", "--format=%s", "feature"]);
        assert_eq!(log.lines().collect::<Vec<_>>(), ["create v1 ConfigMap default/first"]);
        assert_eq!(remote.log(), ["initial"]);
        store.close().await.unwrap();

        // Once it exists, it opens without the option.
        let reopened = GitStore::open(&remote.url(), Options { branch: Some("feature".into()), ..options() })
            .await
            .expect("opens");
        let api: Api<ConfigMap> = Api::namespaced(reopened.client(), "default");
        assert_eq!(api.get("first").await.unwrap().data.unwrap()["key"], "on feature");
        reopened.close().await.unwrap();
    })
    .await
}

#[tokio::test]
async fn pushing_to_a_checked_out_branch_is_explained() {
    within(60, async {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        git(dir.path(), &["init", "--quiet", "--initial-branch=main", work.to_str().unwrap()]);
        git(
            &work,
            &[
                "-c",
                "user.name=P",
                "-c",
                "user.email=p@example.com",
                "commit",
                "--quiet",
                "--allow-empty",
                "-m",
                "init",
            ],
        );
        let quick = Options { write_timeout: Duration::from_secs(2), ..options() };
        let store = GitStore::open(work.to_str().unwrap(), quick).await.expect("reading a non-bare repository works");
        let api: Api<ConfigMap> = Api::namespaced(store.client(), "default");
        let status = status_of(api.create(&PostParams::default(), &cm("x", "y")).await);
        assert_eq!(status.code, 503, "{status:?}");
        assert!(
            status.message.contains("refusing to update checked out branch") && status.message.contains("bare"),
            "{}",
            status.message
        );
        store.close().await.unwrap();
    })
    .await
}
