//! Whole-set behaviour: validation of references and names, conversion to
//! the protobufs Feast writes, and the way back.

use std::path::Path;

use larder_model::feast::FeastObject;
use larder_model::load::parse_str;
use larder_model::validate::validate;
use larder_model::{convert, reverse};
use larder_protos::feast::core::data_source::{Options, SourceType};

const GOOD: &str = r#"
apiVersion: larder.dev/v1alpha1
kind: FeatureStore
metadata: {name: driver-stats}
spec: {project: driver_stats, description: Drivers, tags: {team: drivers}}
---
apiVersion: larder.dev/v1alpha1
kind: Entity
metadata: {name: driver}
spec: {joinKey: driver_id, valueType: Int64, description: A driver, tags: {team: drivers}}
---
apiVersion: larder.dev/v1alpha1
kind: DataSource
metadata: {name: driver-stats-source}
spec:
  name: driver_stats_source
  timestampField: event_timestamp
  createdTimestampColumn: created
  file: {path: ../data/driver_stats.parquet}
---
apiVersion: larder.dev/v1alpha1
kind: DataSource
metadata: {name: driver-stats-push}
spec:
  name: driver_stats_push
  push: {batchSource: driver-stats-source}
---
apiVersion: larder.dev/v1alpha1
kind: FeatureView
metadata: {name: driver-hourly-stats}
spec:
  name: driver_hourly_stats
  entities: [driver]
  source: driver-stats-push
  ttl: 1d
  tags: {team: drivers}
  features:
    - {name: conv_rate, type: Float32}
    - {name: acc_rate, type: Float64}
    - {name: avg_daily_trips, type: Int64}
    - {name: city, type: String}
---
apiVersion: larder.dev/v1alpha1
kind: FeatureService
metadata: {name: driver-activity}
spec:
  name: driver_activity
  features:
    - view: driver-hourly-stats
      features: [conv_rate, avg_daily_trips]
---
apiVersion: larder.dev/v1alpha1
kind: Permission
metadata: {name: feature-readers}
spec:
  types: [FeatureView, FeatureService]
  namePatterns: [".*"]
  actions: [READ_ONLINE, describe]
  policy: {roles: [feature-reader]}
"#;

fn catalog(text: &str) -> Result<larder_model::validate::Catalog, String> {
    let docs = parse_str(text, Path::new("/repo/manifests/all.yaml")).map_err(|e| e.to_string())?;
    validate(docs).map_err(|e| e.to_string())
}

#[test]
fn converts_like_the_python_sdk() {
    let c = catalog(GOOD).unwrap();
    let objs = convert::to_feast(&c, "driver_stats");
    let kinds: Vec<_> = objs.iter().map(|o| (o.kind().as_str(), o.name().to_string())).collect();
    assert_eq!(
        kinds,
        vec![
            ("Project", "driver_stats".to_string()),
            ("DataSource", "driver_stats_source".to_string()),
            ("DataSource", "driver_stats_push".to_string()),
            ("Entity", "driver".to_string()),
            ("FeatureView", "driver_hourly_stats".to_string()),
            ("FeatureService", "driver_activity".to_string()),
            ("Permission", "feature-readers".to_string()),
        ]
    );
    let FeastObject::DataSource(file) = &objs[1] else {
        panic!()
    };
    assert_eq!(file.r#type, SourceType::BatchFile as i32);
    let Some(Options::FileOptions(fo)) = &file.options else {
        panic!()
    };
    assert_eq!(
        fo.uri, "/repo/data/driver_stats.parquet",
        "relative paths resolve against the manifest"
    );
    assert!(fo.file_format.is_none());
    let FeastObject::DataSource(push) = &objs[2] else {
        panic!()
    };
    assert_eq!(push.r#type, SourceType::PushSource as i32);
    assert!(push.options.is_none(), "Python leaves push_options unset");
    assert_eq!(push.timestamp_field, "event_timestamp");
    assert_eq!(push.batch_source.as_ref().unwrap().name, "driver_stats_source");

    let FeastObject::FeatureView(fv) = &objs[4] else {
        panic!()
    };
    let s = fv.spec.as_ref().unwrap();
    assert_eq!(s.entities, vec!["driver"]);
    assert_eq!(s.entity_columns[0].name, "driver_id");
    assert_eq!(s.entity_columns[0].value_type, 4);
    assert_eq!(s.ttl.unwrap().seconds, 86_400);
    assert!(s.online);
    assert_eq!(s.version, "latest");
    assert_eq!(s.batch_source.as_ref().unwrap().name, "driver_stats_source");
    assert_eq!(s.stream_source.as_ref().unwrap().name, "driver_stats_push");
    let types: Vec<i32> = s.features.iter().map(|f| f.value_type).collect();
    assert_eq!(types, vec![6, 5, 4, 2]);

    let FeastObject::FeatureService(fs) = &objs[5] else {
        panic!()
    };
    let p = &fs.spec.as_ref().unwrap().features[0];
    assert_eq!(p.feature_view_name, "driver_hourly_stats");
    let cols: Vec<&str> = p.feature_columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, vec!["conv_rate", "avg_daily_trips"]);
    assert_eq!(p.view_type, "featureView");

    let FeastObject::Permission(perm) = &objs[6] else {
        panic!()
    };
    let ps = perm.spec.as_ref().unwrap();
    assert_eq!(ps.types, vec![0, 5]);
    assert_eq!(ps.actions, vec![4, 1]);
    assert!(
        ps.policy.as_ref().unwrap().policy_type.is_some(),
        "Feast cannot read an empty policy"
    );
}

#[test]
fn round_trips_through_manifests() {
    let c = catalog(GOOD).unwrap();
    let objs = convert::to_feast(&c, "driver_stats");
    // Reverse every object, re-validate the reversed set, convert again: same protobufs.
    let yaml: Vec<String> = objs
        .iter()
        .map(|o| serde_yaml::to_string(&reverse::to_manifest(o).unwrap().to_value()).unwrap())
        .collect();
    let text = yaml.join("---\n");
    let again = convert::to_feast(&catalog(&text).unwrap(), "driver_stats");
    let defs = |v: &[FeastObject]| v.iter().map(FeastObject::definition).collect::<Vec<_>>();
    assert_eq!(defs(&again), defs(&objs));
}

fn expect_error(text: &str, needle: &str) {
    let err = catalog(text).expect_err("must be rejected");
    assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
}

#[test]
fn dangling_references_are_named() {
    let t = GOOD.replace("entities: [driver]", "entities: [rider]");
    expect_error(&t, "spec.entities[0]: no Entity named \"rider\"");
    let t = GOOD.replace("source: driver-stats-push", "source: nope");
    expect_error(&t, "spec.source: no DataSource named \"nope\"");
    let t = GOOD.replace("features: [conv_rate, avg_daily_trips]", "features: [conv_rate, speed]");
    expect_error(&t, "has no feature \"speed\"");
    let t = GOOD.replace("- view: driver-hourly-stats", "- view: other");
    expect_error(&t, "no FeatureView named \"other\"");
    let t = GOOD.replace("batchSource: driver-stats-source", "batchSource: gone");
    expect_error(&t, "spec.push.batchSource");
}

#[test]
fn names_that_could_reach_sql_are_rejected() {
    for bad in ["drop table x", "a;b", "../x"] {
        let t = GOOD.replace("name: driver_hourly_stats", &format!("name: \"{bad}\""));
        expect_error(&t, "spec.name");
        let t = GOOD.replace("name: conv_rate, type", &format!("name: \"{bad}\", type"));
        expect_error(&t, "spec.features[0].name");
    }
    let long = "a".repeat(300);
    expect_error(
        &GOOD.replace("name: driver_hourly_stats", &format!("name: {long}")),
        "at most 128",
    );
    expect_error(
        &GOOD.replace("metadata: {name: driver}", "metadata: {name: Driver_X}"),
        "metadata.name",
    );
}

#[test]
fn duplicates_and_types() {
    let dup = format!(
        "{GOOD}---\napiVersion: larder.dev/v1alpha1\nkind: Entity\nmetadata: {{name: driver}}\nspec: {{valueType: Int64}}\n"
    );
    expect_error(&dup, "duplicate Entity \"driver\"");
    expect_error(
        &GOOD.replace("type: Float64", "type: Float128"),
        "unknown feature type \"Float128\"",
    );
    expect_error(&GOOD.replace("ttl: 1d", "ttl: -3h"), "spec.ttl");
    expect_error(
        &GOOD.replace("valueType: Int64", "valueType: Float32"),
        "cannot be a join key type",
    );
    expect_error(
        &GOOD.replace("policy: {roles: [feature-reader]}", "policy: {}"),
        "set exactly one of roles",
    );
    expect_error(&GOOD.replace("READ_ONLINE", "FLY"), "unknown action");
    expect_error(
        &GOOD.replace("{name: city, type: String}", "{name: conv_rate, type: String}"),
        "duplicate feature",
    );
}
