//! Prometheus metrics of the operator: reconciles, errors by kind and
//! reason, reconcile duration, and the registry writes it made (the figure
//! a resync of unchanged objects must keep at zero).

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub reconciles: IntCounterVec,
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    pub registry_writes: IntCounterVec,
    pub leader: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("larder_operator_reconciles_total", "Reconciles run, by kind"),
            &["kind"],
        )
        .expect("static metric definition");
        let errors = IntCounterVec::new(
            Opts::new(
                "larder_operator_reconcile_errors_total",
                "Reconciles that failed, by kind and reason",
            ),
            &["kind", "reason"],
        )
        .expect("static metric definition");
        let duration = HistogramVec::new(
            HistogramOpts::new("larder_operator_reconcile_duration_seconds", "Time per reconcile").buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["kind"],
        )
        .expect("static metric definition");
        let registry_writes = IntCounterVec::new(
            Opts::new(
                "larder_operator_registry_writes_total",
                "Registry objects created, updated or deleted, by kind",
            ),
            &["kind"],
        )
        .expect("static metric definition");
        let leader = IntGauge::new("larder_operator_leader", "1 while this replica holds the leader lease")
            .expect("static metric definition");
        for c in [&reconciles, &errors, &registry_writes] {
            let _ = registry.register(Box::new(c.clone()));
        }
        let _ = registry.register(Box::new(duration.clone()));
        let _ = registry.register(Box::new(leader.clone()));
        Metrics {
            registry,
            reconciles,
            errors,
            duration,
            registry_writes,
            leader,
        }
    }

    /// Total registry writes so far, over every kind.
    pub fn total_registry_writes(&self) -> u64 {
        sum(&self.registry_writes)
    }

    /// Total reconciles so far, over every kind.
    pub fn total_reconciles(&self) -> u64 {
        sum(&self.reconciles)
    }

    /// The Prometheus text format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

fn sum(c: &IntCounterVec) -> u64 {
    use prometheus::core::Collector;
    c.collect()
        .iter()
        .flat_map(|f| {
            f.get_metric()
                .iter()
                .map(|m| m.get_counter().get_value() as u64)
                .collect::<Vec<_>>()
        })
        .sum()
}
