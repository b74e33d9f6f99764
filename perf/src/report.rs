//! Results: the figures of one run, the median of a workload's runs (picked by events/s), the
//! human table and the JSON objects printed or saved.

use std::fmt::Write as _;

use serde::Serialize;

/// The figures every run and every median reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figures {
    /// Events the sink counted.
    pub events: u64,
    /// From process spawn until the sink counted every event.
    pub seconds: f64,
    pub events_per_sec: f64,
    /// Input file bytes / seconds, in MB (10^6 bytes) per second.
    pub mb_per_sec: f64,
    /// User + system CPU seconds of the whole process.
    pub cpu_seconds: f64,
    pub events_per_cpu_sec: f64,
    /// VmHWM in MiB.
    pub peak_rss_mib: f64,
}

impl Figures {
    pub fn new(
        events: u64,
        input_bytes: u64,
        seconds: f64,
        cpu_seconds: f64,
        peak_rss_mib: f64,
    ) -> Self {
        Figures {
            events,
            seconds,
            events_per_sec: ratio(events as f64, seconds),
            mb_per_sec: ratio(input_bytes as f64 / 1e6, seconds),
            cpu_seconds,
            events_per_cpu_sec: ratio(events as f64, cpu_seconds),
            peak_rss_mib,
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// One successful run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    /// 1-based run number.
    pub run: u32,
    #[serde(flatten)]
    pub figures: Figures,
    pub exit_code: i32,
}

/// One failed run (kept going past with `--keep-going`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FailedRun {
    pub run: u32,
    pub error: String,
}

/// A workload's result: the median run's figures and every run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadReport {
    pub workload: String,
    /// Successful runs the median was taken over.
    pub runs: usize,
    /// The median run's figures; absent when every run failed.
    #[serde(flatten)]
    pub median: Option<Figures>,
    pub all_runs: Vec<RunReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_runs: Vec<FailedRun>,
}

impl WorkloadReport {
    pub fn new(workload: &str, all_runs: Vec<RunReport>, failed_runs: Vec<FailedRun>) -> Self {
        let rates: Vec<f64> = all_runs.iter().map(|r| r.figures.events_per_sec).collect();
        let median = median_index(&rates).map(|i| all_runs[i].figures.clone());
        WorkloadReport {
            workload: workload.to_string(),
            runs: all_runs.len(),
            median,
            all_runs,
            failed_runs,
        }
    }
}

/// Index of the median of `values`: the middle one of an odd count, the lower of the two middle
/// ones of an even count (so the figures reported all come from one real run). `None` if empty.
pub fn median_index(values: &[f64]) -> Option<usize> {
    if values.is_empty() {
        return None;
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    Some(order[(values.len() - 1) / 2])
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The human table: one row per run and one per median.
pub fn render_table(reports: &[WorkloadReport]) -> String {
    let header = [
        "workload",
        "run",
        "events",
        "seconds",
        "events/s",
        "MB/s",
        "CPU s",
        "events/CPU-s",
        "peak RSS MiB",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    let row = |w: &str, run: String, f: &Figures| -> [String; 9] {
        [
            w.to_string(),
            run,
            thousands(f.events as f64),
            format!("{:.3}", f.seconds),
            thousands(f.events_per_sec),
            format!("{:.1}", f.mb_per_sec),
            format!("{:.2}", f.cpu_seconds),
            thousands(f.events_per_cpu_sec),
            format!("{:.1}", f.peak_rss_mib),
        ]
    };
    for r in reports {
        for run in &r.all_runs {
            rows.push(row(&r.workload, format!("#{}", run.run), &run.figures));
        }
        for failed in &r.failed_runs {
            let mut cells: [String; 9] = Default::default();
            cells[0] = r.workload.clone();
            cells[1] = format!("#{}", failed.run);
            cells[2] = "FAILED".to_string();
            rows.push(cells);
        }
        match &r.median {
            Some(m) => rows.push(row(&r.workload, format!("median/{}", r.runs), m)),
            None => {
                let mut cells: [String; 9] = Default::default();
                cells[0] = r.workload.clone();
                cells[1] = "median".to_string();
                cells[2] = "no successful run".to_string();
                rows.push(cells);
            }
        }
    }
    let mut widths = header.map(str::len);
    for cells in &rows {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            // The first two columns are text; the figures are right-aligned.
            let _ = if i < 2 {
                write!(out, "{c:<w$}")
            } else {
                write!(out, "{c:>w$}")
            };
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    };
    line(&mut out, &header);
    for cells in &rows {
        let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(n: u32, seconds: f64) -> RunReport {
        RunReport {
            run: n,
            figures: Figures::new(1_000_000, 271_000_000, seconds, 2.0, 40.0),
            exit_code: 0,
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median_index(&[]), None);
        assert_eq!(median_index(&[5.0]), Some(0));
        assert_eq!(median_index(&[3.0, 1.0, 2.0]), Some(2));
        assert_eq!(median_index(&[10.0, 30.0, 20.0]), Some(2));
        assert_eq!(median_index(&[4.0, 1.0, 3.0, 2.0]), Some(3));
        assert_eq!(median_index(&[2.0, 2.0, 1.0]), Some(0));
    }

    #[test]
    fn workload_median_is_picked_by_events_per_sec() {
        let r = WorkloadReport::new("W1", vec![run(1, 1.0), run(2, 4.0), run(3, 2.0)], vec![]);
        let m = r.median.as_ref().unwrap();
        assert_eq!(m.seconds, 2.0);
        assert_eq!(m.events_per_sec, 500_000.0);
        assert_eq!(m.mb_per_sec, 135.5);
        assert_eq!(m.events_per_cpu_sec, 500_000.0);
        assert_eq!(r.runs, 3);
    }

    #[test]
    fn json_fields() {
        let r = WorkloadReport::new("W2", vec![run(1, 1.0)], vec![]);
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "workload",
            "runs",
            "events",
            "seconds",
            "events_per_sec",
            "mb_per_sec",
            "cpu_seconds",
            "events_per_cpu_sec",
            "peak_rss_mib",
            "all_runs",
        ] {
            assert!(v.get(key).is_some(), "missing {key} in {v}");
        }
        assert!(v.get("failed_runs").is_none());
        assert_eq!(v["all_runs"][0]["run"], 1);
        assert_eq!(v["all_runs"][0]["events_per_sec"], 1_000_000.0);

        let failed = WorkloadReport::new(
            "W3",
            vec![],
            vec![FailedRun {
                run: 1,
                error: "boom".into(),
            }],
        );
        let v = serde_json::to_value(&failed).unwrap();
        assert_eq!(v["runs"], 0);
        assert!(v.get("events_per_sec").is_none());
        assert_eq!(v["failed_runs"][0]["error"], "boom");
    }

    #[test]
    fn table_and_thousands() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_199_154.0), "1,199,154");
        let t = render_table(&[WorkloadReport::new(
            "W1",
            vec![run(1, 1.0), run(2, 2.0)],
            vec![],
        )]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        assert!(lines[0].starts_with("workload"));
        assert!(
            lines[3].starts_with("W1")
                && lines[3].contains("median/2")
                && lines[3].contains("500,000"),
            "{t}"
        );
    }
}
