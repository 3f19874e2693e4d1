//! The API servers' own request counters (`apiserver_request_total` on
//! their /metrics): per-object writes to larder.dev resources (and their
//! status), lists of them in a namespace, events and Secret reads. On the test environment the CRDs live
//! in a separate apiextensions-apiserver (aggregated), which has its own
//! /metrics; its kubeconfig (`admin-ext.kubeconfig`) sits next to the admin one.
//!
//! The counters are server-wide: other clients add to them too.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

pub struct ApiServers {
    main: Client,
    ext: Option<Client>,
}

pub type Counts = BTreeMap<String, u64>;

impl ApiServers {
    pub async fn new(main: &Client, kubeconfig: &Path) -> ApiServers {
        let ext_path = kubeconfig.with_file_name("admin-ext.kubeconfig");
        let ext = if ext_path.exists() {
            match client_for(&ext_path).await {
                Ok(c) => Some(c),
                Err(e) => {
                    crate::progress(&format!("no apiextensions-apiserver metrics ({e:#})"));
                    None
                }
            }
        } else {
            None
        };
        ApiServers {
            main: main.clone(),
            ext,
        }
    }

    /// Whether the CRDs' server was found (else larder.dev counts come from the main server).
    pub fn has_ext(&self) -> bool {
        self.ext.is_some()
    }

    /// The counters now; `None` when a server's /metrics cannot be read.
    pub async fn scrape(&self) -> Option<Counts> {
        let mut out = Counts::new();
        for c in std::iter::once(&self.main).chain(self.ext.as_ref()) {
            let text = metrics_text(c).await.ok()?;
            for (k, v) in parse(&text) {
                *out.entry(k).or_default() += v;
            }
        }
        Some(out)
    }
}

async fn client_for(path: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(path).with_context(|| format!("read {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let c = Client::try_from(config)?;
    metrics_text(&c).await?;
    Ok(c)
}

async fn metrics_text(c: &Client) -> Result<String> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = tokio::time::timeout(std::time::Duration::from_secs(20), c.request_text(req))
        .await
        .context("GET /metrics: no answer within 20 s")?
        .context("GET /metrics")?;
    Ok(text)
}

/// `VERB resource[/subresource][ code]` → count, for the requests the
/// benchmark looks at (codes other than 2xx are named).
pub fn parse(text: &str) -> Counts {
    let mut out = Counts::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |key: &str| -> &str {
            labels
                .split("\",")
                .filter_map(|kv| kv.split_once("=\""))
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.trim_end_matches('"'))
                .unwrap_or("")
        };
        let (group, resource, sub, verb, scope, code) = (
            label("group"),
            label("resource"),
            label("subresource"),
            label("verb"),
            label("scope"),
            label("code"),
        );
        let wanted = match (group, resource) {
            // Per-object writes, and lists in a namespace (the benchmark's polls).
            ("larder.dev", _) => match verb {
                "LIST" => scope == "namespace",
                "GET" | "WATCH" => false,
                _ => scope == "resource",
            },
            ("events.k8s.io" | "", "events") => scope == "resource" && matches!(verb, "POST" | "PATCH" | "APPLY"),
            ("", "secrets") => verb == "GET" && scope == "resource",
            _ => false,
        };
        if !wanted {
            continue;
        }
        let mut key = format!("{verb} {resource}");
        if !sub.is_empty() {
            key.push('/');
            key.push_str(sub);
        }
        if !code.starts_with('2') {
            key.push_str(&format!(" ({code})"));
        }
        *out.entry(key).or_default() += value as u64;
    }
    out
}

/// `after - before` per key, zeros left out.
pub fn since(after: &Counts, before: &Counts) -> Counts {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v.saturating_sub(before.get(k).copied().unwrap_or(0))))
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_object_writes_events_and_secret_reads() {
        let text = r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="larder.dev",resource="entities",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 12
apiserver_request_total{code="200",component="apiserver",dry_run="",group="larder.dev",resource="entities",scope="resource",subresource="",verb="APPLY",version="v1alpha1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="larder.dev",resource="entities",scope="namespace",subresource="",verb="LIST",version="v1alpha1"} 99
apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 7
apiserver_request_total{code="403",component="apiserver",contentType="application/json",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="GET",version="v1"} 3
"#;
        let c = parse(text);
        assert_eq!(c["APPLY entities/status"], 12);
        assert_eq!(c["APPLY entities"], 5);
        assert_eq!(c["POST events"], 7);
        assert_eq!(c["POST events (403)"], 2);
        assert_eq!(c["GET secrets"], 3);
        assert_eq!(c["LIST entities"], 99);
        assert_eq!(c.len(), 6);
        let mut later = c.clone();
        *later.get_mut("POST events").unwrap() += 4;
        assert_eq!(since(&later, &c), Counts::from([("POST events".to_string(), 4)]));
    }
}
