//! `larder render` of a FeatureStore with every workload option, compared
//! with a reviewed snapshot (`tests/snapshots/serving.yaml`). A change to
//! any builder shows up here as a diff to review; set
//! `LARDER_UPDATE_SNAPSHOTS=1` to rewrite the snapshot after reviewing it.

use std::path::Path;

use chrono::TimeZone;

#[test]
fn rendered_objects_match_the_reviewed_snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let docs = larder_model::load::load_paths(&[dir.join("fixtures/serving.yaml")]).unwrap();
    let objects: Vec<larder_model::Object> = docs.into_iter().map(|d| d.object).collect();
    let now = chrono::Utc.with_ymd_and_hms(2026, 3, 29, 0, 30, 0).unwrap();
    let defaults = larder_deploy::Defaults {
        image: "ghcr.io/larder-dev/larder:0.1.0".into(),
    };
    let rendered = larder_deploy::render::render(&objects, "default", &defaults, now).unwrap();
    let snapshot = dir.join("snapshots/serving.yaml");
    if std::env::var_os("LARDER_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snapshot, &rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
    assert!(
        rendered == expected,
        "rendered objects differ from {} (review, then LARDER_UPDATE_SNAPSHOTS=1):\n{}",
        snapshot.display(),
        first_difference(&expected, &rendered)
    );
    // What the snapshot must show, whatever else changes.
    for needle in [
        "kind: HorizontalPodAutoscaler",
        "kind: PodDisruptionBudget",
        "secretName: drivers-tls",
        "- --shard\n",
        "- 3/4\n",
        // 02:30 Berlin on the DST night is skipped: the next run of driver-daily is the 30th.
        "larder.dev/window-end: 2026-03-30T00:30:00Z",
        // The store's hourly schedule in Berlin: 01:00 local = 00:00Z before the change... next after 00:30Z is 01:00Z.
        "larder.dev/window-end: 2026-03-29T01:00:00Z",
    ] {
        assert!(rendered.contains(needle), "missing {needle:?}");
    }
    assert!(!rendered.contains("password"), "no credential in rendered objects");
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}:\n- {x}\n+ {y}", i + 1);
        }
    }
    format!("lengths differ: {} vs {} lines", a.lines().count(), b.lines().count())
}
