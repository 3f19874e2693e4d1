//! Summary statistics and plain-text tables.

use serde::Deserialize;

/// Latency summary in microseconds. Percentiles are nearest-rank, the rule
/// the Python script uses too (so p99 of 50 samples is the maximum).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
}

pub fn summarize(mut samples_us: Vec<f64>) -> Stats {
    assert!(!samples_us.is_empty(), "no samples");
    samples_us.sort_by(f64::total_cmp);
    let n = samples_us.len();
    Stats {
        n,
        mean: samples_us.iter().sum::<f64>() / n as f64,
        p50: percentile(&samples_us, 50.0),
        p99: percentile(&samples_us, 99.0),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

pub use larder_testkit::table::{Align, Table};

/// Seconds with millisecond resolution.
pub fn secs(s: f64) -> String {
    format!("{s:.3}")
}

/// A rate, objects per second.
pub fn rate(n: usize, s: f64) -> String {
    if s > 0.0 {
        format!("{:.0}", n as f64 / s)
    } else {
        "-".into()
    }
}

/// Microseconds: one decimal below 1,000, whole numbers above.
pub fn micros(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// Feast / Larder as "12.3x" (how many times longer Feast takes).
pub fn ratio(larder: f64, feast: f64) -> String {
    if larder <= 0.0 {
        return "-".into();
    }
    let r = feast / larder;
    if r >= 100.0 {
        format!("{r:.0}x")
    } else if r >= 0.1 {
        format!("{r:.2}x")
    } else {
        format!("{r:.4}x")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = summarize((1..=100).map(f64::from).collect());
        assert_eq!((s.n, s.p50, s.p99), (100, 50.0, 99.0));
        assert_eq!(s.mean, 50.5);
        let s = summarize((1..=50).map(f64::from).collect());
        assert_eq!((s.p50, s.p99), (25.0, 50.0));
        let s = summarize(vec![7.0]);
        assert_eq!((s.p50, s.p99), (7.0, 7.0));
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(&[("backend", Align::Left), ("s", Align::Right)]);
        t.row(vec!["postgres".into(), "1.5".into()]);
        t.row(vec!["file".into(), "12.25".into()]);
        assert_eq!(
            t.render(),
            "backend       s\n---------------\npostgres    1.5\nfile      12.25\n"
        );
    }

    #[test]
    fn ratio_is_feast_over_larder() {
        assert_eq!(ratio(2.0, 5.0), "2.50x");
        assert_eq!(ratio(1.0, 250.0), "250x");
        assert_eq!(ratio(100.0, 1.0), "0.0100x");
        assert_eq!(ratio(0.0, 1.0), "-");
    }
}
