//! Reading manifests from YAML text, files and directories.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{ManifestError, ManifestErrors, Origin};
use crate::manifest::{Document, Kind, Object};

/// A parsed document and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub origin: Origin,
    /// Directory that relative paths in this document resolve against.
    pub base_dir: PathBuf,
    pub object: Object,
}

/// Config files that live beside manifests and are skipped when a directory is read.
const CONFIG_FILE_NAMES: [&str; 2] = ["larder.yaml", "feature_store.yaml"];

/// Parse every document in `text`. `file` names the source in errors and
/// its parent directory anchors relative paths.
pub fn parse_str(text: &str, file: &Path) -> Result<Vec<Loaded>, ManifestErrors> {
    parse_str_with(text, file, false)
}

/// [`parse_str`], optionally skipping documents of other API groups
/// (Secrets, Kustomizations: a GitOps directory holds more than Larder's kinds).
fn parse_str_with(text: &str, file: &Path, only_larder: bool) -> Result<Vec<Loaded>, ManifestErrors> {
    let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (doc, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = Origin::file(file, doc);
        let value = match serde_yaml::Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                errors.push(ManifestError::new(Some(&origin), "", format!("invalid YAML: {e}")));
                // The YAML stream cannot be resynchronised after a syntax error.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        let group = value.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
        if only_larder && !group.starts_with("larder.dev/") {
            continue;
        }
        match parse_value(value, &origin) {
            Ok(object) => out.push(Loaded {
                origin,
                base_dir: base_dir.clone(),
                object,
            }),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// Parse one document already read as a value (the operator's custom
/// resources arrive as JSON), checking apiVersion and kind.
pub fn parse_value(value: serde_yaml::Value, origin: &Origin) -> Result<Object, ManifestError> {
    let err = |field: &str, msg: String| ManifestError::new(Some(origin), field, msg);
    let map = value.as_mapping().ok_or_else(|| {
        err(
            "",
            "a document must be a mapping with apiVersion, kind, metadata and spec".into(),
        )
    })?;
    let api_version = map.get("apiVersion").and_then(|v| v.as_str());
    match api_version {
        Some(crate::API_VERSION) => {}
        Some(other) => {
            return Err(err(
                "apiVersion",
                format!("unsupported apiVersion {other:?}; expected {:?}", crate::API_VERSION),
            ));
        }
        None => return Err(err("apiVersion", format!("missing; expected {:?}", crate::API_VERSION))),
    }
    let kind_str = map
        .get("kind")
        .and_then(|v| v.as_str())
        .ok_or_else(|| err("kind", "missing".into()))?;
    let kind = Kind::parse(kind_str).ok_or_else(|| {
        let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        err(
            "kind",
            format!("unknown kind {kind_str:?}; expected one of {}", known.join(", ")),
        )
    })?;
    Ok(match kind {
        Kind::FeatureStore => Object::FeatureStore(typed(value, origin)?),
        Kind::Entity => Object::Entity(typed(value, origin)?),
        Kind::DataSource => Object::DataSource(typed(value, origin)?),
        Kind::FeatureView => Object::FeatureView(typed(value, origin)?),
        Kind::FeatureService => Object::FeatureService(typed(value, origin)?),
        Kind::Permission => Object::Permission(typed(value, origin)?),
    })
}

fn typed<S: DeserializeOwned>(value: serde_yaml::Value, origin: &Origin) -> Result<Document<S>, ManifestError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        ManifestError::new(Some(origin), field, e.into_inner().to_string())
    })
}

/// Read files and directories (recursively, `*.yaml`/`*.yml` in name order).
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Loaded>, ManifestErrors> {
    load_paths_with(paths, false)
}

/// [`load_paths`] keeping only `larder.dev` documents: what `larder render`
/// reads from a directory that also holds Secrets or a Kustomization.
pub fn load_larder_paths(paths: &[PathBuf]) -> Result<Vec<Loaded>, ManifestErrors> {
    load_paths_with(paths, true)
}

fn load_paths_with(paths: &[PathBuf], only_larder: bool) -> Result<Vec<Loaded>, ManifestErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            if let Err(e) = collect_dir(p, &mut files) {
                errors.push(ManifestError::new(None, "", format!("{}: {e}", p.display())));
            }
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => match parse_str_with(&text, &f, only_larder) {
                Ok(mut docs) => out.append(&mut docs),
                Err(ManifestErrors(mut e)) => errors.append(&mut e),
            },
            Err(e) => errors.push(ManifestError::new(None, "", format!("{}: {e}", f.display()))),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ManifestErrors(errors))
    }
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            collect_dir(&p, out)?;
        } else if (name.ends_with(".yaml") || name.ends_with(".yml")) && !CONFIG_FILE_NAMES.contains(&name) {
            out.push(p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Loaded>, ManifestErrors> {
        parse_str(text, Path::new("dir/x.yaml"))
    }

    #[test]
    fn multi_document() {
        let docs = parse(
            "apiVersion: larder.dev/v1alpha1\nkind: Entity\nmetadata: {name: driver}\nspec: {joinKey: driver_id, valueType: Int64}\n---\n---\napiVersion: larder.dev/v1alpha1\nkind: Entity\nmetadata: {name: customer}\nspec: {valueType: String}\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].origin, Origin::file("dir/x.yaml", 2));
        assert_eq!(docs[0].base_dir, Path::new("dir"));
        assert_eq!(docs[1].object.feast_name(), "customer");
    }

    #[test]
    fn invalid_yaml_has_line_number() {
        let err = parse("apiVersion: larder.dev/v1alpha1\nkind: Entity\nmetadata: {name: [\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("dir/x.yaml (document 0)"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn unknown_field_names_path() {
        let err = parse(
            "apiVersion: larder.dev/v1alpha1\nkind: FeatureView\nmetadata: {name: v}\nspec:\n  source: s\n  features:\n    - {name: a, type: Int64, colour: red}\n",
        )
        .unwrap_err();
        let e = &err.0[0];
        assert_eq!(e.field, "spec.features[0].colour");
        assert!(e.message.contains("unknown field `colour`"), "{}", e.message);
    }

    #[test]
    fn bad_type_names_path() {
        let err = parse(
            "apiVersion: larder.dev/v1alpha1\nkind: FeatureView\nmetadata: {name: v}\nspec:\n  source: s\n  features:\n    - {name: a, type: Int64}\n    - {name: b, type: Floaty}\n",
        )
        .unwrap_err();
        assert_eq!(err.0[0].field, "spec.features[1].type");
        assert!(err.0[0].message.contains("Floaty"));
    }

    #[test]
    fn wrong_api_version_and_kind() {
        let err = parse("apiVersion: v1\nkind: Entity\nmetadata: {name: a}\nspec: {}\n").unwrap_err();
        assert_eq!(err.0[0].field, "apiVersion");
        let err = parse("apiVersion: larder.dev/v1alpha1\nkind: Pod\nmetadata: {name: a}\nspec: {}\n").unwrap_err();
        assert_eq!(err.0[0].field, "kind");
        assert!(err.0[0].message.contains("Pod"));
    }

    #[test]
    fn negative_ttl_is_rejected() {
        let err = parse(
            "apiVersion: larder.dev/v1alpha1\nkind: FeatureView\nmetadata: {name: v}\nspec: {source: s, ttl: -1h, features: []}\n",
        )
        .unwrap_err();
        assert_eq!(err.0[0].field, "spec.ttl");
    }
}
