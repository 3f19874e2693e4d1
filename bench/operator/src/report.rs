//! Plain-text tables (as bench/registry prints them) and number formats.

pub use larder_testkit::table::{Align, Table};

/// Seconds with millisecond resolution.
pub fn secs(s: f64) -> String {
    format!("{s:.3}")
}

/// Seconds with one decimal.
pub fn secs1(s: f64) -> String {
    format!("{s:.1}")
}

/// A rate: how many per second.
pub fn rate(n: usize, s: f64) -> String {
    if s > 0.0 {
        format!("{:.0}/s", n as f64 / s)
    } else {
        "-".into()
    }
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1024.0 / 1024.0)
}

/// Nearest-rank percentile of sorted samples (p99 of 50 samples is the maximum).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// `key n, key n` of a map, or `none`.
pub fn counts<V: std::fmt::Display>(m: &std::collections::BTreeMap<String, V>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
}

/// Feast / Larder as "12.3x" (how many times longer Feast takes).
pub fn ratio(larder: f64, feast: f64) -> String {
    if larder <= 0.0 {
        return "-".into();
    }
    let r = feast / larder;
    if r >= 100.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.2}x")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!((percentile(&s, 50.0), percentile(&s, 99.0)), (50.0, 99.0));
        assert_eq!(percentile(&[], 50.0), 0.0);
    }

    #[test]
    fn ratio_is_feast_over_larder() {
        assert_eq!(ratio(2.0, 5.0), "2.50x");
        assert_eq!(ratio(1.0, 250.0), "250x");
        assert_eq!(ratio(0.0, 1.0), "-");
    }
}
