//! The JSON commands Feast's remote offline store client sends in a Flight
//! descriptor (`feast/infra/offline_stores/remote.py`), parsed field by
//! field: a missing or mistyped field is an error naming it. Pure.

use serde_json::{Map, Value};

/// A command Larder serves.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `get_historical_features`: the entity frame is the uploaded table.
    GetHistoricalFeatures {
        project: String,
        feature_view_names: Vec<String>,
        /// One per view: its feature service projection's alias, if any.
        name_aliases: Vec<Option<String>>,
        feature_refs: Vec<String>,
        full_feature_names: bool,
    },
    /// `offline_write_batch`: append the uploaded table to a view's batch source.
    OfflineWriteBatch {
        feature_view_name: String,
        name_alias: Option<String>,
    },
    /// `validate_data_source`: Feast's `feast apply` asks before registering a source.
    ValidateDataSource,
    /// `pull_latest_from_table_or_query` (`latest`) or
    /// `pull_all_from_table_or_query`: a data source's rows in a window,
    /// columns named as in the source (Feast's materialization).
    Pull {
        latest: bool,
        data_source_name: String,
        columns: larder_offline::pull::PullColumns,
        start_ns: i64,
        end_ns: i64,
    },
    /// `get_table_column_names_and_types_from_data_source`: what
    /// `write_to_offline_store` checks a DataFrame against.
    TableColumns { data_source_name: String },
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("the Flight descriptor's command is not a JSON object: {0}")]
    NotJson(String),
    #[error("{api}: missing field {field:?}")]
    Missing { api: String, field: &'static str },
    #[error("{api}: field {field:?} must be {expected}")]
    WrongType {
        api: String,
        field: &'static str,
        expected: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "api {0:?} is not served by Larder's offline server (served: get_historical_features, pull_latest_from_table_or_query, pull_all_from_table_or_query, offline_write_batch, validate_data_source, get_table_column_names_and_types_from_data_source)"
    )]
    Unsupported(String),
}

struct Fields<'a> {
    api: &'a str,
    map: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn get(&self, field: &'static str) -> Result<&Value, CommandError> {
        self.map.get(field).ok_or_else(|| CommandError::Missing {
            api: self.api.to_string(),
            field,
        })
    }

    fn wrong(&self, field: &'static str, expected: &'static str) -> CommandError {
        CommandError::WrongType {
            api: self.api.to_string(),
            field,
            expected,
        }
    }

    fn string(&self, field: &'static str) -> Result<String, CommandError> {
        self.get(field)?
            .as_str()
            .map(String::from)
            .ok_or_else(|| self.wrong(field, "a string"))
    }

    fn strings(&self, field: &'static str) -> Result<Vec<String>, CommandError> {
        let items = self
            .get(field)?
            .as_array()
            .ok_or_else(|| self.wrong(field, "a list of strings"))?;
        items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| self.wrong(field, "a list of strings"))
            })
            .collect()
    }

    fn optional_strings(&self, field: &'static str) -> Result<Vec<Option<String>>, CommandError> {
        let items = self
            .get(field)?
            .as_array()
            .ok_or_else(|| self.wrong(field, "a list of strings or nulls"))?;
        items
            .iter()
            .map(|v| match v {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s.clone())),
                _ => Err(self.wrong(field, "a list of strings or nulls")),
            })
            .collect()
    }

    fn boolean(&self, field: &'static str, default: bool) -> Result<bool, CommandError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.wrong(field, "true or false")),
        }
    }
}

impl Command {
    /// The command of a descriptor (`FlightDescriptor.cmd`).
    pub fn parse(bytes: &[u8]) -> Result<Command, CommandError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| CommandError::NotJson(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(CommandError::NotJson("not an object".into()));
        };
        let api = match map.get("api") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(CommandError::WrongType {
                    api: "command".into(),
                    field: "api",
                    expected: "a string",
                });
            }
            None => {
                return Err(CommandError::Missing {
                    api: "command".into(),
                    field: "api",
                });
            }
        };
        let f = Fields { api: &api, map: &map };
        match api.as_str() {
            "get_historical_features" => {
                if map.get("entity_df_sql").is_some_and(|v| !v.is_null()) {
                    return Err(CommandError::Invalid(
                        "get_historical_features: an entity frame given as SQL (entity_df_sql) is not supported; send a DataFrame"
                            .into(),
                    ));
                }
                for field in ["start_date", "end_date"] {
                    if map.get(field).is_some_and(|v| !v.is_null()) {
                        return Err(CommandError::Invalid(format!(
                            "get_historical_features: {field} (retrieval without an entity frame) is not supported; send a DataFrame"
                        )));
                    }
                }
                let feature_view_names = f.strings("feature_view_names")?;
                let name_aliases = f.optional_strings("name_aliases")?;
                if name_aliases.len() != feature_view_names.len() {
                    return Err(CommandError::Invalid(format!(
                        "get_historical_features: {} feature_view_names but {} name_aliases",
                        feature_view_names.len(),
                        name_aliases.len()
                    )));
                }
                Ok(Command::GetHistoricalFeatures {
                    project: f.string("project")?,
                    feature_view_names,
                    name_aliases,
                    feature_refs: f.strings("feature_refs")?,
                    full_feature_names: f.boolean("full_feature_names", false)?,
                })
            }
            "offline_write_batch" => {
                let names = f.strings("feature_view_names")?;
                let aliases = f.optional_strings("name_aliases")?;
                let [name] = names.as_slice() else {
                    return Err(CommandError::Invalid(format!(
                        "offline_write_batch: exactly one feature view expected, got {}",
                        names.len()
                    )));
                };
                Ok(Command::OfflineWriteBatch {
                    feature_view_name: name.clone(),
                    name_alias: aliases.into_iter().next().flatten(),
                })
            }
            "validate_data_source" => Ok(Command::ValidateDataSource),
            "pull_latest_from_table_or_query" | "pull_all_from_table_or_query" => {
                let created = match map.get("created_timestamp_column") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(c)) if c.is_empty() => None,
                    Some(Value::String(c)) => Some(c.clone()),
                    Some(_) => return Err(f.wrong("created_timestamp_column", "a string or null")),
                };
                let time = |field: &'static str| -> Result<i64, CommandError> {
                    let text = f.string(field)?;
                    larder_model::instant::parse_utc(&text)
                        .and_then(|t| t.timestamp_nanos_opt())
                        .ok_or_else(|| f.wrong(field, "an ISO 8601 time between the years 1677 and 2262"))
                };
                Ok(Command::Pull {
                    latest: api == "pull_latest_from_table_or_query",
                    data_source_name: f.string("data_source_name")?,
                    columns: larder_offline::pull::PullColumns {
                        join_keys: f.strings("join_key_columns")?,
                        features: f.strings("feature_name_columns")?,
                        timestamp: f.string("timestamp_field")?,
                        created,
                    },
                    start_ns: time("start_date")?,
                    end_ns: time("end_date")?,
                })
            }
            "get_table_column_names_and_types_from_data_source" => {
                // The DataSource proto in protobuf's JSON form; its name is all Larder needs.
                let proto = f.string("data_source_proto")?;
                let value: Value = serde_json::from_str(&proto).map_err(|e| {
                    CommandError::Invalid(format!("{api}: data_source_proto is not a DataSource in JSON: {e}"))
                })?;
                let name = value
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| CommandError::Invalid(format!("{api}: data_source_proto has no name")))?;
                Ok(Command::TableColumns {
                    data_source_name: name.to_string(),
                })
            }
            other => Err(CommandError::Unsupported(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn historical_command_as_feast_sends_it() {
        let c = Command::parse(
            br#"{"command_id": "x", "api": "get_historical_features", "feature_view_names": ["a", "b"],
                "feature_refs": ["a:f", "s:g"], "project": "p", "full_feature_names": true, "name_aliases": [null, "s"]}"#,
        )
        .unwrap();
        assert_eq!(
            c,
            Command::GetHistoricalFeatures {
                project: "p".into(),
                feature_view_names: vec!["a".into(), "b".into()],
                name_aliases: vec![None, Some("s".into())],
                feature_refs: vec!["a:f".into(), "s:g".into()],
                full_feature_names: true,
            }
        );
    }

    #[test]
    fn pull_commands_as_feast_sends_them() {
        let c = Command::parse(
            br#"{"api": "pull_latest_from_table_or_query", "data_source_name": "s", "join_key_columns": ["k"],
                "feature_name_columns": ["f"], "timestamp_field": "ts", "created_timestamp_column": "",
                "start_date": "2024-01-01T00:00:00+00:00", "end_date": "2024-01-02T00:00:00"}"#,
        )
        .unwrap();
        let Command::Pull {
            latest,
            columns,
            start_ns,
            end_ns,
            ..
        } = c
        else {
            panic!("{c:?}")
        };
        assert!(latest);
        assert_eq!(columns.created, None);
        assert_eq!(end_ns - start_ns, 86_400_000_000_000);
        let err = Command::parse(br#"{"api": "pull_all_from_table_or_query", "data_source_name": "s", "join_key_columns": [], "feature_name_columns": [], "timestamp_field": "ts", "start_date": "yesterday", "end_date": "2024-01-02"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("start_date"), "{err}");
    }

    #[test]
    fn bad_commands_name_the_field() {
        let err = |s: &str| Command::parse(s.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            err(r#"{"api": "get_historical_features", "feature_view_names": [], "name_aliases": [], "project": "p"}"#),
            "get_historical_features: missing field \"feature_refs\""
        );
        assert!(err(r#"{"api": "get_historical_features", "feature_view_names": "a"}"#).contains("a list of strings"));
        assert!(err(r#"{"command_id": "x"}"#).contains("missing field \"api\""));
        assert!(err("not json").contains("not a JSON object"));
        assert!(err(r#"{"api": "persist"}"#).contains("not served"));
        assert!(err(r#"{"api": "get_historical_features", "entity_df_sql": "SELECT 1"}"#).contains("entity_df_sql"));
        assert!(
            err(r#"{"api": "offline_write_batch", "feature_view_names": ["a", "b"], "name_aliases": [null, null]}"#)
                .contains("exactly one")
        );
    }
}
