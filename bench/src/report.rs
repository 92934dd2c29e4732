//! Results: rows of repeated measurements (median, min, max), goals, a text table and markdown.

use std::fmt::Write;
use std::io::Write as _;
use std::time::Instant;

/// One measurement, repeated.
pub struct Row {
    /// Group the row belongs to, e.g. `Writes (10000 objects)`.
    pub section: String,
    /// What was measured.
    pub name: String,
    /// Unit of the values.
    pub unit: &'static str,
    /// One value per run (or per sample).
    pub values: Vec<f64>,
    /// Baseline ratio or other context.
    pub note: String,
}

impl Row {
    /// The median value (0 when empty).
    pub fn median(&self) -> f64 {
        median(&self.values)
    }

    /// The smallest and the largest value.
    pub fn range(&self) -> (f64, f64) {
        let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    }
}

/// A goal of the issue and whether this run met it.
pub struct Goal {
    /// The goal as the issue states it.
    pub goal: String,
    /// The measured number.
    pub measured: String,
    /// Whether it is met.
    pub met: bool,
}

/// Everything measured in a run.
#[derive(Default)]
pub struct Report {
    /// Measurements, in order.
    pub rows: Vec<Row>,
    /// Goals, in order.
    pub goals: Vec<Goal>,
    /// Things not measured, and why.
    pub skipped: Vec<String>,
    /// Remarks printed under the machine line.
    pub notes: Vec<String>,
}

/// The median of `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0)
}

/// The `p`-th percentile of `values`, nearest rank (0 when empty).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn fmt(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl Report {
    /// Adds a row and prints it as progress.
    pub fn add(&mut self, section: &str, name: impl Into<String>, unit: &'static str, values: Vec<f64>, note: String) {
        let row = Row { section: section.into(), name: name.into(), unit, values, note };
        progress(&format!(
            "{}: {} = {} {} (n={}) {}",
            row.section,
            row.name,
            fmt(row.median()),
            row.unit,
            row.values.len(),
            row.note
        ));
        self.rows.push(row);
    }

    /// The median of the row named `name` in `section`.
    pub fn get(&self, section: &str, name: &str) -> Option<f64> {
        self.rows.iter().find(|r| r.section == section && r.name == name).map(Row::median)
    }

    /// Records a goal.
    pub fn goal(&mut self, goal: impl Into<String>, measured: impl Into<String>, met: bool) {
        self.goals.push(Goal { goal: goal.into(), measured: measured.into(), met });
    }

    fn sections(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.rows {
            if !out.contains(&r.section.as_str()) {
                out.push(&r.section);
            }
        }
        out
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let w = self.rows.iter().map(|r| r.name.len()).max().unwrap_or(10).max(10);
        for section in self.sections() {
            let _ = writeln!(s, "\n== {section}");
            let _ =
                writeln!(s, "{:<w$}  {:>10} {:>10} {:>10}  {:<6} note", "measurement", "median", "min", "max", "unit");
            for r in self.rows.iter().filter(|r| r.section == section) {
                let (min, max) = r.range();
                let _ = writeln!(
                    s,
                    "{:<w$}  {:>10} {:>10} {:>10}  {:<6} {}",
                    r.name,
                    fmt(r.median()),
                    fmt(min),
                    fmt(max),
                    r.unit,
                    r.note
                );
            }
        }
        let _ = writeln!(s, "\n== Goals");
        for g in &self.goals {
            let _ = writeln!(s, "[{}] {} — measured {}", if g.met { "met" } else { "MISSED" }, g.goal, g.measured);
        }
        for k in &self.skipped {
            let _ = writeln!(s, "skipped: {k}");
        }
        s
    }

    /// Markdown for BENCHMARKS.md: machine, date, command, tables and goals.
    pub fn markdown(&self, command: &str) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "## Run of {}\n", date());
        let _ = writeln!(s, "- Machine: {}", machine());
        let _ = writeln!(s, "- Command: `{command}`");
        let _ = writeln!(s, "- Each value is the median of the runs (or samples), with min and max.");
        for note in &self.notes {
            let _ = writeln!(s, "- {note}");
        }
        let _ = writeln!(s);
        for section in self.sections() {
            let _ = writeln!(s, "### {section}\n");
            let _ = writeln!(s, "| measurement | median | min | max | unit | note |");
            let _ = writeln!(s, "|---|---:|---:|---:|---|---|");
            for r in self.rows.iter().filter(|r| r.section == section) {
                let (min, max) = r.range();
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} |",
                    r.name,
                    fmt(r.median()),
                    fmt(min),
                    fmt(max),
                    r.unit,
                    r.note
                );
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "### Goals\n");
        let _ = writeln!(s, "| goal | measured | met |");
        let _ = writeln!(s, "|---|---|---|");
        for g in &self.goals {
            let _ = writeln!(s, "| {} | {} | {} |", g.goal, g.measured, if g.met { "yes" } else { "**no**" });
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(s, "\nNot measured:\n");
            for k in &self.skipped {
                let _ = writeln!(s, "- {k}");
            }
        }
        s
    }
}

/// Cores, CPU model and memory, from /proc.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_string();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
    format!(
        "{cores} cores ({model}), {:.1} GiB memory, load average (1, 5, 15 min) {load} when written",
        mem_kb / 1024.0 / 1024.0
    )
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Prints a progress line to stderr, with the time since the start.
pub fn progress(message: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "[{:>7.1}s] {message}", start.elapsed().as_secs_f64());
}
