//! `gitbacked-bench`: the benchmarks of issue 5, with baselines measured side by side in the same run.
//!
//! `cargo run --release -p gitbacked-bench -- all [--quick] [--sizes 1000,10000,100000] [--markdown out.md]`
//!
//! `cargo run --release -p gitbacked-bench -- minimal-writes` measures how minimal the writes into
//! a person's files are (issue 14).
//!
//! `cargo run --release -p gitbacked-bench -- write-costs` times the parts of a write (issue 15,
//! item 9); `big-files` compares writes into a large multi-document file with writes into small
//! ones (item 8).
//!
//! Nothing here asserts on timings: the numbers are printed as a table and as markdown.

mod churn;
mod compare;
mod costs;
mod fanout;
mod history;
mod http;
mod measure;
mod minimal;
mod proxy;
mod repogen;
mod report;

use std::path::PathBuf;

/// The allocator `gitbacked serve` runs with (see there), so that the bench measures what it runs.
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use anyhow::Result;
use clap::{Parser, Subcommand};
use tracing::Level;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[derive(Parser)]
#[command(name = "gitbacked-bench", about = "Benchmarks for gitbacked, with baselines side by side")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs every measurement and prints the table (and markdown).
    All(AllArgs),
    /// Random single-value edits of a generated corpus of manifests through `document::rewrite`:
    /// how many change only the lines they must (prints markdown).
    MinimalWrites(minimal::MinimalArgs),
    /// The replicator under a steady load with status and managedFields inline and on the status
    /// ref: commits per hour on each, and the lines an apply adds to a person's file (markdown).
    Churn(churn::ChurnArgs),
    /// Watch fan-out: many watchers (half with label selectors) and a person's commit changing
    /// thousands of objects; time to the first and the last watcher, memory per idle watch.
    Fanout(fanout::FanoutArgs),
    /// Cold start through a long history (some commits changing MB-sized multi-document files)
    /// against the cold start of its tip alone (markdown).
    History(history::HistoryArgs),
    /// The parts of a write (admission and its parts, the minimal edit, the read-back, commit,
    /// push, apply): µs per write and share of the latency, for three kinds (prints markdown).
    WriteCosts(costs::CostArgs),
    /// Writes into one document of a 59-document, 1.9 MB file against writes into small files,
    /// with the parts of each write (prints markdown).
    BigFiles(costs::BigArgs),
    /// Opens a store in this fresh process and prints its peak RSS (used by the memory measurement).
    #[command(hide = true)]
    ChildOpen {
        /// The remote.
        url: String,
    },
    /// Runs the delaying proxy of the latency measurement by hand: prints its port, then what it
    /// carried every second, until killed.
    #[command(hide = true)]
    Proxy {
        /// Where it forwards to (`127.0.0.1:9418`).
        upstream: std::net::SocketAddr,
        /// The round-trip time it adds, in ms (half each way).
        rtt_ms: u64,
    },
    /// Generates a repository of `objects` objects, keeps it and prints the remote's path (for profiling).
    #[command(hide = true)]
    Generate {
        /// How many objects.
        objects: usize,
    },
}

/// Options of `all`.
#[derive(clap::Args, Clone, Debug)]
pub struct AllArgs {
    /// A tiny repository and few iterations: the whole run takes well under a minute.
    #[arg(long)]
    pub quick: bool,
    /// Repository sizes in objects, comma-separated (default 1000,10000,100000; 300 with --quick).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// Also writes the results as markdown to this file.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// How many times each measurement runs (default 3; 2 with --quick).
    #[arg(long)]
    pub runs: Option<usize>,
    /// Generates every namespace's files of a kind in one flat directory (5,000 files at 100k), as
    /// a person might, instead of the layout gitbacked gives the objects it creates (256 files, then
    /// buckets one level down). Shows what large directories cost writes.
    #[arg(long)]
    pub flat: bool,
    /// Generates files as people write them: flat directories (as `--flat`), comments, flow-style
    /// maps, quoted strings, ~550-byte Deployments.
    #[arg(long)]
    pub person: bool,
    /// Pushes to the local remote with `git push` instead of writing into it directly.
    #[arg(long)]
    pub push_with_git: bool,
    /// Round-trip times (ms) of the links the `latency` measurement delays (default 10,50; 10 with
    /// --quick).
    #[arg(long, value_delimiter = ',')]
    pub rtts: Vec<u64>,
    /// Runs only these measurements (default: all of them).
    #[arg(long, value_delimiter = ',', value_enum)]
    pub only: Vec<Measurement>,
}

/// One measurement of `all`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measurement {
    /// Cold sync and warm restart, with the floor.
    Cold,
    /// Acknowledged writes.
    Writes,
    /// In-process and HTTP reads.
    Reads,
    /// Peak RSS.
    Memory,
    /// A person's push → watch event.
    Propagation,
    /// Incremental sync of the largest repository.
    Incremental,
    /// Writes to git daemon and smart HTTP behind a delaying proxy, against `git push` over the
    /// same link (issue 15, item 7).
    Latency,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // The library's progress lines (files read and rate during an initial sync, objects indexed);
    // RUST_LOG shows more.
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "gitbacked::progress=info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let log = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).with_filter(filter);
    // The parts of writes are timed only where they are reported: their spans cost a little.
    let timing = matches!(cli.command, Cmd::WriteCosts(_) | Cmd::BigFiles(_)).then(|| {
        costs::Timing.with_filter(tracing_subscriber::filter::Targets::new().with_target(costs::TARGET, Level::TRACE))
    });
    tracing_subscriber::registry().with(log).with(timing).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Cmd::All(args) => {
            let report = runtime.block_on(measure::all(&args))?;
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            println!("{}", report.table());
            if let Some(path) = &args.markdown {
                std::fs::write(path, report.markdown(&command))?;
                eprintln!("markdown written to {}", path.display());
            }
            Ok(())
        }
        Cmd::MinimalWrites(args) => {
            println!("{}", minimal::run(&args)?);
            Ok(())
        }
        Cmd::Churn(args) => {
            println!("{}", runtime.block_on(churn::run(&args))?);
            Ok(())
        }
        Cmd::Fanout(args) => {
            println!("{}", runtime.block_on(fanout::run(&args))?);
            Ok(())
        }
        Cmd::WriteCosts(args) => {
            println!("{}", runtime.block_on(costs::write_costs(&args))?);
            Ok(())
        }
        Cmd::BigFiles(args) => {
            println!("{}", runtime.block_on(costs::big_files(&args))?);
            Ok(())
        }
        Cmd::History(args) => {
            println!("{}", runtime.block_on(history::run(&args))?);
            Ok(())
        }
        Cmd::ChildOpen { url } => runtime.block_on(measure::child_open(&url)),
        Cmd::Proxy { upstream, rtt_ms } => {
            let proxy = proxy::Proxy::start(upstream, std::time::Duration::from_millis(rtt_ms))?;
            println!("127.0.0.1:{}", proxy.port);
            let mut last = proxy.counts();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let now = proxy.counts();
                if now != last {
                    eprintln!("{:?}", now - last);
                    last = now;
                }
            }
        }
        Cmd::Generate { objects } => {
            let repo = repogen::generate(objects)?;
            println!("{}", repo.local_url());
            // Kept for the caller, who removes it.
            std::mem::forget(repo);
            Ok(())
        }
    }
}
