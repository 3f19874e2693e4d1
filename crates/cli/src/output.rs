//! Printing objects: tables for people, YAML/JSON manifests for tools.

use anyhow::{Result, bail};
use larder_model::feast::{FeastKind, FeastObject};
use larder_model::reverse::to_manifest;
use larder_protos::feast::core::data_source::Options;

use crate::Format;

fn manifest_value(obj: &FeastObject) -> Result<serde_json::Value> {
    Ok(to_manifest(obj)?.to_value())
}

pub fn print_one(obj: &FeastObject, format: Format) -> Result<()> {
    let v = manifest_value(obj)?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Format::Yaml | Format::Table => print!("{}", serde_yaml::to_string(&v)?),
    }
    Ok(())
}

pub fn print_list(kind: FeastKind, objects: &[FeastObject], format: Format) -> Result<()> {
    match format {
        Format::Json | Format::Yaml => {
            let mut values = Vec::new();
            for o in objects {
                match manifest_value(o) {
                    Ok(v) => values.push(v),
                    Err(e) => eprintln!("warning: {e}"),
                }
            }
            if format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&values)?);
            } else {
                for v in values {
                    print!("---\n{}", serde_yaml::to_string(&v)?);
                }
            }
        }
        Format::Table => {
            let rows: Vec<Vec<String>> = objects.iter().map(row).collect();
            let header = header(kind);
            if header.is_empty() {
                bail!("no table layout for {kind}");
            }
            print_table(&header, &rows);
        }
    }
    Ok(())
}

fn header(kind: FeastKind) -> Vec<&'static str> {
    match kind {
        FeastKind::Project => vec!["NAME", "DESCRIPTION"],
        FeastKind::Entity => vec!["NAME", "JOIN KEY", "TYPE", "DESCRIPTION"],
        FeastKind::DataSource => vec!["NAME", "TYPE", "LOCATION"],
        FeastKind::FeatureView => vec!["NAME", "ENTITIES", "FEATURES", "TTL", "ONLINE"],
        FeastKind::FeatureService => vec!["NAME", "VIEWS"],
        FeastKind::Permission => vec!["NAME", "TYPES", "ACTIONS"],
        _ => vec!["NAME"],
    }
}

fn row(o: &FeastObject) -> Vec<String> {
    let name = o.name().to_string();
    match o {
        FeastObject::Project(p) => vec![name, p.spec.as_ref().map(|s| s.description.clone()).unwrap_or_default()],
        FeastObject::Entity(e) => {
            let s = e.spec.clone().unwrap_or_default();
            let t = larder_model::types::FeatureType::from_value_type(s.value_type)
                .map(|t| t.to_string())
                .unwrap_or_else(|| format!("{}", s.value_type));
            vec![name, s.join_key, t, s.description]
        }
        FeastObject::DataSource(d) => {
            let loc = match &d.options {
                Some(Options::FileOptions(f)) => f.uri.clone(),
                _ => d
                    .batch_source
                    .as_ref()
                    .map(|b| format!("batch: {}", b.name))
                    .unwrap_or_default(),
            };
            let t = larder_protos::feast::core::data_source::SourceType::try_from(d.r#type)
                .map(|t| t.as_str_name().to_string())
                .unwrap_or_else(|_| d.r#type.to_string());
            vec![name, t, loc]
        }
        FeastObject::FeatureView(v) => {
            let s = v.spec.clone().unwrap_or_default();
            let ttl = s.ttl.map(|d| format!("{}s", d.seconds)).unwrap_or_else(|| "0".into());
            vec![
                name,
                s.entities.join(","),
                s.features.len().to_string(),
                ttl,
                s.online.to_string(),
            ]
        }
        FeastObject::FeatureService(f) => {
            let s = f.spec.clone().unwrap_or_default();
            let views: Vec<String> = s.features.iter().map(|p| p.feature_view_name.clone()).collect();
            vec![name, views.join(",")]
        }
        FeastObject::Permission(p) => {
            let s = p.spec.clone().unwrap_or_default();
            let types: Vec<String> = s
                .types
                .iter()
                .map(|t| larder_model::permissions::type_name(*t))
                .collect();
            let actions: Vec<String> = s
                .actions
                .iter()
                .map(|a| larder_model::permissions::action_name(*a))
                .collect();
            vec![name, types.join(","), actions.join(",")]
        }
        _ => vec![name],
    }
}

/// Print rows whose first row is the header.
pub fn print_rows(rows: &[Vec<String>]) {
    if let Some((header, body)) = rows.split_first() {
        let h: Vec<&str> = header.iter().map(String::as_str).collect();
        print_table(&h, body);
    }
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}
