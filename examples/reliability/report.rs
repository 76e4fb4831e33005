//! Tables and percentiles for the suite's output (Markdown, pasted into RELIABILITY.md).

pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// p50 / p99 / max of microsecond samples, as one cell.
pub fn spread(samples: &mut [u64]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort_unstable();
    format!(
        "p50 {} / p99 {} / max {} (n={})",
        ms(percentile(samples, 0.5)),
        ms(percentile(samples, 0.99)),
        ms(*samples.last().unwrap()),
        samples.len()
    )
}

/// One scenario's table: rows of (check, result, verdict).
pub struct Table {
    pub title: String,
    pub rows: Vec<(String, String, bool)>,
}

impl Table {
    pub fn new(title: &str) -> Table {
        Table {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, check: &str, result: impl Into<String>, ok: bool) {
        self.rows.push((check.into(), result.into(), ok));
    }

    /// An informational row (a number to report, not a pass/fail).
    pub fn info(&mut self, check: &str, result: impl Into<String>) {
        self.row(check, result, true);
    }

    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| r.2)
    }

    pub fn print(&self) {
        println!("\n### {}\n", self.title);
        println!("| check | result | ok |");
        println!("|---|---|---|");
        for (c, r, ok) in &self.rows {
            println!("| {c} | {r} | {} |", if *ok { "yes" } else { "**NO**" });
        }
    }
}

pub fn kb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}
