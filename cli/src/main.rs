//! `gitbacked`: serve the Kubernetes API over HTTP from a git repository, so that kubectl, client-go,
//! Python and every other Kubernetes client work against git.

mod connections;
mod history;
mod repo;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::{Parser, Subcommand, ValueEnum};
use gitbacked::{GitStore, Identity, Options};
use gitbacked_core::StatusError;
use gitbacked_git::mirror::remote::redact_url;
use tracing::{info, warn};

/// jemalloc: at 100k objects the initial sync peaks ~8% lower than with glibc's malloc and runs
/// faster (BENCHMARKS.md, "Memory: the shared key, the allocator"); mimalloc did not lower the peak.
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The Kubernetes API served from a git repository.
#[derive(Parser, Debug)]
#[command(name = "gitbacked", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value = "human", env = "GITBACKED_LOG_FORMAT", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the Kubernetes API over HTTP(S).
    Serve(Box<Serve>),
    /// Print a kubeconfig that points kubectl at a running server.
    Kubeconfig(Kubeconfig),
    /// Check a working tree or a revision offline, with the reader and validation the server uses;
    /// exit 1 when something is wrong.
    Check(CheckArgs),
    /// The history of one object: the commits that changed it, across moves between files.
    Log(LogArgs),
    /// The objects added, changed and removed between two revisions, as `kubectl diff` prints
    /// them; exit 1 when something differs.
    Diff(DiffArgs),
}

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
enum Output {
    /// Lines for people.
    #[default]
    Text,
    /// JSON.
    Json,
}

/// Where the objects are: a repository (bare or with a working tree) or a directory of files.
#[derive(clap::Args, Debug)]
struct Place {
    /// Directory holding the objects (default: the repository root).
    #[arg(long, env = "GITBACKED_SUBDIR")]
    subdir: Option<String>,
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// A working tree (its files as git would commit them), a bare repository, or a directory.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Check this revision instead of the working tree (a bare repository: HEAD by default).
    #[arg(long)]
    rev: Option<String>,
    #[command(flatten)]
    place: Place,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(clap::Args, Debug)]
struct LogArgs {
    /// The object, as KIND/NAME (`deployment/web`, `configmaps/settings`, `gear.example.com/g`).
    object: String,
    /// Its namespace (default: `default` for namespaced kinds).
    #[arg(short, long)]
    namespace: Option<String>,
    /// The repository (default: the current directory).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The revision whose history is read.
    #[arg(long, default_value = "HEAD")]
    rev: String,
    #[command(flatten)]
    place: Place,
    /// Show the object's diff at each step.
    #[arg(short, long)]
    patch: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(clap::Args, Debug)]
struct DiffArgs {
    /// The revision to compare from.
    from: String,
    /// The revision to compare to.
    #[arg(default_value = "HEAD")]
    to: String,
    /// The repository (default: the current directory).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    #[command(flatten)]
    place: Place,
}

/// Where the embedded default repository lives when `--repo` is not given.
const EMBEDDED_REPO: &str = "gitbacked-data/state.git";

#[derive(clap::Args, Debug)]
struct Serve {
    /// Repository: a local path, a file://, git://, ssh:// or https:// URL, or user@host:path.
    /// Default: a local repository under ./gitbacked-data, created on first run.
    #[arg(long, env = "GITBACKED_REPO")]
    repo: Option<String>,
    /// Branch holding the objects (default: the remote's default branch).
    #[arg(long, env = "GITBACKED_BRANCH")]
    branch: Option<String>,
    /// Directory holding the objects (default: the repository root).
    #[arg(long, env = "GITBACKED_SUBDIR")]
    subdir: Option<String>,
    /// How often the remote is polled, e.g. 15s or 500ms.
    #[arg(long, env = "GITBACKED_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Address to listen on.
    #[arg(long, env = "GITBACKED_LISTEN", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where the local mirror of the repository is kept (default: a temporary directory).
    #[arg(long, env = "GITBACKED_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// ssh: private key to authenticate with (default: the ssh agent and ~/.ssh/config).
    #[arg(long, env = "GITBACKED_SSH_KEY")]
    ssh_key: Option<PathBuf>,
    /// ssh: known_hosts file holding the server's host key, checked strictly (default: ssh's own).
    #[arg(long, env = "GITBACKED_KNOWN_HOSTS")]
    known_hosts: Option<PathBuf>,
    /// https: file holding an access token, re-read before every fetch and push (default: the
    /// GITBACKED_GIT_TOKEN variable, else git's credential helpers).
    #[arg(long, env = "GITBACKED_GIT_TOKEN_FILE")]
    git_token_file: Option<PathBuf>,
    /// Create --branch with the first write when the repository has other branches but not this one.
    #[arg(long, env = "GITBACKED_CREATE_BRANCH")]
    create_branch: bool,
    /// File holding the bearer token clients must send; without it, no authentication.
    #[arg(long, env = "GITBACKED_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// TLS certificate (PEM); serves HTTPS together with --tls-key.
    #[arg(long, env = "GITBACKED_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "GITBACKED_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Author and committer of the commits written, "Name <email>".
    #[arg(long, env = "GITBACKED_AUTHOR", default_value = "gitbacked <gitbacked@localhost>")]
    author: Identity,
    /// Sign every commit, with the key and format git's own configuration names (`gpg.format`,
    /// `user.signingkey` in the global or system git config, or in the mirror under --cache-dir).
    #[arg(long, env = "GITBACKED_SIGN_COMMITS")]
    sign_commits: bool,
    /// File holding the secret shared with the git host's webhook (GitHub, GitLab, Gitea): serves
    /// POST /hooks/git, which syncs now. Without it, /hooks/git is not served (404).
    #[arg(long, env = "GITBACKED_WEBHOOK_SECRET_FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// Always push with `git push`, also to a bare repository on this machine, which is otherwise
    /// written directly when it has no hooks (receive-pack would do nothing more).
    #[arg(long, env = "GITBACKED_NO_DIRECT_PUSH")]
    no_direct_push: bool,
    /// How many pushes of batches of writes may be under way at once: the next batch is built on
    /// the commit still in flight and pushed as a fast-forward before it is answered. 1 pushes one
    /// batch at a time.
    #[arg(long, env = "GITBACKED_PUSHES_IN_FLIGHT", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pushes_in_flight: u16,
    /// Do not delete objects whose owners (metadata.ownerReferences) are gone; orphan and
    /// foreground deletions then wait for their finalizers forever.
    #[arg(long, env = "GITBACKED_NO_GARBAGE_COLLECTOR")]
    no_garbage_collector: bool,
    /// The IPv4 range Service cluster IPs are allocated from, as kube-apiserver's flag.
    #[arg(long, env = "GITBACKED_SERVICE_CLUSTER_IP_RANGE", default_value = "10.96.0.0/12")]
    service_cluster_ip_range: gitbacked::ServiceCidr,
    /// Where objects' status is kept: `inline` in their documents on the branch, or `ref` on the
    /// status ref refs/gitbacked/status/<branch>, merged into what is served (every process on the
    /// repository must say the same).
    #[arg(long, env = "GITBACKED_STATUS", default_value = "inline")]
    status: gitbacked::Placement,
    /// Where metadata.managedFields (server-side apply's field ownership) is kept: `ref` (on the
    /// status ref) or `inline`, as for --status.
    #[arg(long, env = "GITBACKED_MANAGED_FIELDS", default_value = "ref")]
    managed_fields: gitbacked::Placement,
    /// At most this many connections open at once; beyond it new ones are closed (and logged),
    /// so that the server never runs out of file descriptors.
    #[arg(long, env = "GITBACKED_MAX_CONNECTIONS", default_value_t = 512)]
    max_connections: usize,
    /// How long a client may take to send a request's headers, and how long an idle keep-alive
    /// connection stays open (kube-apiserver's ReadHeaderTimeout).
    #[arg(long, env = "GITBACKED_REQUEST_HEADER_TIMEOUT", default_value = "32s", value_parser = humantime::parse_duration)]
    request_header_timeout: Duration,
}

#[derive(clap::Args, Debug)]
struct Kubeconfig {
    /// The server's URL.
    #[arg(long, env = "GITBACKED_SERVER", default_value = "http://127.0.0.1:6443")]
    server: String,
    /// Bearer token to put in the kubeconfig.
    #[arg(long, env = "GITBACKED_TOKEN")]
    token: Option<String>,
    /// The certificate (PEM) that an https server's certificate is checked against: the server's
    /// own for a self-signed one. Without it an https server is not verified.
    #[arg(long)]
    certificate_authority: Option<PathBuf>,
}

/// A kubeconfig for `server` that kubectl, client-go, the Python client and client-node all
/// accept. kubectl prompts for a username over https when the user is empty, so the user always
/// carries a token; client-node refuses plain http unless TLS verification is skipped, so an
/// http server is written with `insecure-skip-tls-verify: true` (there is nothing to verify); an
/// https server is verified against `ca` (PEM) when given.
fn kubeconfig(server: &str, token: Option<&str>, ca: Option<&[u8]>) -> String {
    use base64::Engine;
    let token = token.unwrap_or("gitbacked");
    let trust = match ca.filter(|_| server.starts_with("https://")) {
        Some(pem) => format!("certificate-authority-data: {}", base64::engine::general_purpose::STANDARD.encode(pem)),
        None => "insecure-skip-tls-verify: true".to_string(),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gitbacked\n  cluster:\n    server: {server}\n    {trust}\nusers:\n- name: gitbacked\n  user:\n    token: {token}\ncontexts:\n- name: gitbacked\n  context:\n    cluster: gitbacked\n    user: gitbacked\n    namespace: default\ncurrent-context: gitbacked\n"
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::Check(args) => {
            let repo = repo::Repo::new(&args.path, args.place.subdir.as_deref());
            let files = match (&args.rev, repo.is_bare()) {
                (Some(rev), _) => repo.at_revision(rev)?,
                (None, true) => repo.at_revision("HEAD")?,
                (None, false) => repo.working_tree()?,
            };
            let findings = gitbacked_core::check::check(&files);
            match args.output {
                Output::Text => {
                    for finding in &findings {
                        println!("{finding}");
                    }
                    if findings.is_empty() {
                        eprintln!("{} files, no problems", files.len());
                    }
                }
                Output::Json => println!("{}", serde_json::to_string_pretty(&findings)?),
            }
            if !findings.is_empty() {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Log(args) => {
            let repo = repo::Repo::new(&args.repo, args.place.subdir.as_deref());
            let mut steps = history::log(&repo, &args.rev, &args.object, args.namespace.as_deref(), args.patch)?;
            match args.output {
                Output::Text => history::print_log(&steps),
                Output::Json => {
                    steps.reverse();
                    println!("{}", serde_json::to_string_pretty(&steps)?);
                }
            }
            Ok(())
        }
        Command::Diff(args) => {
            let repo = repo::Repo::new(&args.repo, args.place.subdir.as_deref());
            if history::diff(&repo, &args.from, &args.to)? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Kubeconfig(args) => {
            let ca = match &args.certificate_authority {
                Some(path) => Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
                None => None,
            };
            print!("{}", kubeconfig(&args.server, args.token.as_deref(), ca.as_deref()));
            Ok(())
        }
    }
}

/// Creates the embedded default repository if it does not exist yet.
fn embedded_repo() -> anyhow::Result<String> {
    let path = Path::new(EMBEDDED_REPO);
    if !path.join("HEAD").exists() {
        std::fs::create_dir_all(path)?;
        let status = std::process::Command::new("git")
            .args(["init", "--quiet", "--bare", "--initial-branch=main"])
            .arg(path)
            .status()
            .context("running git init")?;
        anyhow::ensure!(status.success(), "git init --bare {EMBEDDED_REPO} failed");
        info!(repo = EMBEDDED_REPO, "created the embedded repository");
    }
    Ok(std::path::absolute(path)?.display().to_string())
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path).with_context(|| format!("reading the token file {}", path.display()))?;
    let token = token.trim().to_string();
    anyhow::ensure!(!token.is_empty(), "the token file {} is empty", path.display());
    Ok(token)
}

fn status_response(e: &StatusError) -> Response {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, "application/json")], e.to_status().to_string()).into_response()
}

/// The webhook secret, trimmed (files usually end with a newline).
fn read_webhook_secret(path: &Path) -> anyhow::Result<String> {
    let secret =
        std::fs::read_to_string(path).with_context(|| format!("reading the webhook secret file {}", path.display()))?;
    let secret = secret.trim().to_string();
    anyhow::ensure!(!secret.is_empty(), "the webhook secret file {} is empty", path.display());
    Ok(secret)
}

/// The served Router: `/livez` at once, the API once the initial sync is done (503 before), all
/// of it behind the bearer token when there is one.
fn front(api: Arc<OnceLock<Router>>, token: Option<String>) -> Router {
    let app =
        Router::new().route("/livez", axum::routing::get(|| async { "ok" })).fallback(move |req: Request<Body>| {
            let api = api.clone();
            async move {
                match api.get() {
                    Some(router) => {
                        use tower::ServiceExt;
                        match router.clone().oneshot(req).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        }
                    }
                    None => status_response(&StatusError::unavailable("the initial sync is not complete")),
                }
            }
        });
    match token {
        Some(token) => gitbacked_apiserver::http::require_bearer_token(app, &token),
        None => app,
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    info!("shutting down: finishing writes in flight");
}

async fn serve(args: Serve) -> anyhow::Result<()> {
    let repo = match &args.repo {
        Some(repo) => repo.clone(),
        None => embedded_repo()?,
    };
    let token = args.token_file.as_deref().map(read_token).transpose()?;
    let webhook_secret = args.webhook_secret_file.as_deref().map(read_webhook_secret).transpose()?;
    let api: Arc<OnceLock<Router>> = Arc::default();
    let app = front(api.clone(), token.clone());
    let scheme = if args.tls_cert.is_some() { "https" } else { "http" };
    let server_url = format!("{scheme}://{}", args.listen);

    let handle = axum_server::Handle::new();
    let server = {
        let handle = handle.clone();
        let service = app.into_make_service();
        let listen = args.listen;
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .context("reading the TLS certificate and key")?,
            ),
            _ => None,
        };
        let limit = connections::ConnectionLimit::new(args.max_connections);
        let header_timeout = args.request_header_timeout;
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(limit);
                    let mut server = axum_server::bind(listen).acceptor(acceptor).handle(handle);
                    server.http_builder().http1().header_read_timeout(header_timeout);
                    server.serve(service).await
                }
                None => {
                    let mut server = axum_server::bind(listen).acceptor(limit).handle(handle);
                    server.http_builder().http1().header_read_timeout(header_timeout);
                    server.serve(service).await
                }
            }
        })
    };
    let listening = handle.listening().await.context("binding the listen address")?;
    info!(address = %listening, repository = %redact_url(&repo), "listening; syncing the repository");

    let options = Options {
        branch: args.branch,
        subdirectory: args.subdir,
        interval: args.interval,
        cache_dir: args.cache_dir,
        ssh_key: args.ssh_key,
        known_hosts: args.known_hosts,
        git_token_file: args.git_token_file,
        create_branch: args.create_branch,
        author: args.author,
        sign_commits: args.sign_commits,
        webhook_secret,
        direct_push: !args.no_direct_push,
        pushes_in_flight: usize::from(args.pushes_in_flight),
        garbage_collector: !args.no_garbage_collector,
        service_cluster_ip_range: args.service_cluster_ip_range,
        status: args.status,
        managed_fields: args.managed_fields,
        ..Default::default()
    };
    let store = GitStore::open(&repo, options).await.context("opening the repository")?;
    let _ = api.set(store.router());
    info!(
        "ready. Point kubectl at it:\n  gitbacked kubeconfig --server {server_url}{} > kubeconfig && export KUBECONFIG=$PWD/kubeconfig",
        if token.is_some() { " --token \"$(cat TOKEN_FILE)\"" } else { "" }
    );

    shutdown_signal().await;
    // Stop accepting requests, let requests in flight (writes waiting for their push) finish.
    handle.graceful_shutdown(Some(Duration::from_secs(30)));
    if let Err(e) = store.close().await {
        warn!(error = %e, "closing the store");
    }
    match server.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_flags_parse() {
        let cli = Cli::try_parse_from([
            "gitbacked",
            "serve",
            "--repo",
            "git@example.com:org/state.git",
            "--ssh-key",
            "/k/id",
            "--known-hosts",
            "/k/known_hosts",
            "--git-token-file",
            "/k/token",
            "--create-branch",
            "--no-direct-push",
            "--no-garbage-collector",
        ])
        .unwrap();
        let Command::Serve(serve) = cli.command else { panic!("serve") };
        assert_eq!(serve.ssh_key.as_deref(), Some(Path::new("/k/id")));
        assert_eq!(serve.known_hosts.as_deref(), Some(Path::new("/k/known_hosts")));
        assert_eq!(serve.git_token_file.as_deref(), Some(Path::new("/k/token")));
        assert!(serve.create_branch);
        assert!(serve.no_direct_push && serve.no_garbage_collector);
    }

    #[test]
    fn kubeconfig_carries_a_token() {
        let k = kubeconfig("https://127.0.0.1:1", Some("t0k"), None);
        assert!(k.contains("token: t0k") && k.contains("insecure-skip-tls-verify: true"));
        let k = kubeconfig("https://127.0.0.1:1", None, Some(b"PEM"));
        assert!(k.contains("certificate-authority-data: UEVN") && !k.contains("insecure"), "{k}");
        // Plain http: nothing to verify, and client-node refuses http otherwise.
        let k = kubeconfig("http://127.0.0.1:1", None, Some(b"PEM"));
        assert!(k.contains("insecure-skip-tls-verify: true") && !k.contains("certificate-authority"), "{k}");
    }

    #[tokio::test]
    async fn webhooks_need_no_bearer_token() {
        use tower::ServiceExt;
        let api: Arc<OnceLock<Router>> = Arc::default();
        let _ = api.set(Router::new().fallback(|| async { "reached the API Router" }));
        let app = front(api, Some("t0k".into()));
        let post = |path: &str| Request::post(path).body(Body::empty()).unwrap();
        let hook = app.clone().oneshot(post(gitbacked_apiserver::http::webhook::PATH)).await.unwrap();
        assert_eq!(hook.status(), StatusCode::OK, "the signature, checked by the API Router, authenticates");
        let other = app.oneshot(post("/hooks/git/other")).await.unwrap();
        assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    }
}
