//! Byte-for-byte checks against the reference encodings recorded from
//! Feast 0.67 (python-protobuf `SerializeToString`) in the Larder
//! compatibility fact sheet (`shared/feast-compat.md` §1 "Reference
//! encodings", the packed `PermissionSpec.types` example in §1, and the Redis
//! timestamp values in §6.3).
//!
//! Every check encodes a message built in Rust and compares it with the
//! literal hex from the fact sheet, then decodes that hex, compares the decoded
//! message with the one built in Rust and re-encodes it to the same bytes.

use std::collections::BTreeMap;
use std::fmt::Debug;

use larder_protos::feast::core::{
    self, DataSource, Entity, EntityMeta, EntitySpecV2, FeatureSpecV2, FeatureView, FeatureViewMeta, FeatureViewSpec,
    FeatureViewState, MaterializationInterval, PermissionSpec, Project, ProjectMeta, ProjectSpec, data_source,
    permission_spec,
};
use larder_protos::feast::types::{FloatList, Null, Value, value, value_type};
use larder_protos::prost::Message;
use larder_protos::prost_types::{Duration, FileDescriptorSet, Timestamp};

/// Encodes `msg`, checks it against `expected_hex`, then decodes
/// `expected_hex`, checks the decoded message equals `msg` and re-encodes it.
#[track_caller]
fn assert_encoding<M>(msg: &M, expected_hex: &str)
where
    M: Message + Default + PartialEq + Debug,
{
    let encoded = msg.encode_to_vec();
    assert_eq!(
        hex::encode(&encoded),
        expected_hex,
        "encoding of {msg:?} differs from the Feast reference"
    );
    assert_eq!(msg.encoded_len(), encoded.len());

    let reference = hex::decode(expected_hex).expect("reference hex must be valid");
    let decoded = M::decode(reference.as_slice()).expect("reference bytes must decode");
    assert_eq!(&decoded, msg, "decoded reference differs from the built message");
    assert_eq!(
        hex::encode(decoded.encode_to_vec()),
        expected_hex,
        "re-encoding the decoded reference changed its bytes"
    );
}

fn ts(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

fn val(v: value::Val) -> Value {
    Value { val: Some(v) }
}

#[test]
fn entity_reference_encoding() {
    let entity = Entity {
        spec: Some(EntitySpecV2 {
            name: "driver".into(),
            value_type: value_type::Enum::Int64 as i32,
            join_key: "driver_id".into(),
            project: "demo".into(),
            ..Default::default()
        }),
        meta: Some(EntityMeta {
            created_timestamp: Some(ts(1_700_000_000)),
            last_updated_timestamp: None,
        }),
    };
    assert_encoding(
        &entity,
        "0a1b0a06647269766572100422096472697665725f69644a0464656d6f12080a060880e2cfaa06",
    );
}

#[test]
fn project_reference_encoding() {
    let project = Project {
        spec: Some(ProjectSpec {
            name: "demo".into(),
            ..Default::default()
        }),
        meta: Some(ProjectMeta {
            created_timestamp: Some(ts(1_700_000_000)),
            last_updated_timestamp: Some(ts(1_700_000_000)),
        }),
    };
    assert_encoding(&project, "0a060a0464656d6f12100a060880e2cfaa0612060880e2cfaa06");
}

#[test]
fn data_source_reference_encoding() {
    let source = DataSource {
        r#type: data_source::SourceType::BatchFile as i32,
        timestamp_field: "ts".into(),
        options: Some(data_source::Options::FileOptions(data_source::FileOptions {
            uri: "/tmp/x.parquet".into(),
            ..Default::default()
        })),
        name: "src".into(),
        project: "demo".into(),
        ..Default::default()
    };
    assert_encoding(
        &source,
        "08011a0274735a10120e2f746d702f782e70617271756574a20103737263aa010464656d6f",
    );
}

#[test]
fn value_int64_reference_encoding() {
    assert_encoding(&val(value::Val::Int64Val(10)), "200a");
}

#[test]
fn value_float_reference_encoding() {
    assert_encoding(&val(value::Val::FloatVal(0.5)), "350000003f");
}

#[test]
fn value_double_reference_encoding() {
    assert_encoding(&val(value::Val::DoubleVal(0.9)), "29cdccccccccccec3f");
}

#[test]
fn value_string_reference_encoding() {
    assert_encoding(&val(value::Val::StringVal("hi".into())), "12026869");
}

#[test]
fn value_bool_reference_encoding() {
    assert_encoding(&val(value::Val::BoolVal(true)), "3801");
}

#[test]
fn value_int32_reference_encoding() {
    assert_encoding(&val(value::Val::Int32Val(-1)), "18ffffffffffffffffff01");
}

#[test]
fn value_unix_timestamp_reference_encoding() {
    assert_encoding(&val(value::Val::UnixTimestampVal(1_704_106_800)), "40b0b6caac06");
}

#[test]
fn value_float_list_reference_encoding() {
    assert_encoding(
        &val(value::Val::FloatListVal(FloatList { val: vec![1.0, 2.0] })),
        "82010a0a080000803f00000040",
    );
}

#[test]
fn value_null_reference_encoding() {
    assert_encoding(&val(value::Val::NullVal(Null::Null as i32)), "980100");
}

#[test]
fn value_unset_reference_encoding() {
    assert_encoding(&Value { val: None }, "");
}

/// Fact sheet §1.1: a oneof member holding its default value is still emitted.
#[test]
fn value_oneof_default_is_emitted() {
    assert_encoding(&val(value::Val::Int64Val(0)), "2000");
    assert_encoding(&val(value::Val::StringVal(String::new())), "1200");
}

/// Fact sheet §6.3: the Redis `_ts:<fv>` field holds a serialized
/// `google.protobuf.Timestamp`; 2024-01-01T11:00:00Z.
#[test]
fn redis_timestamp_reference_encoding() {
    assert_encoding(&ts(1_704_106_800), "08b0b6caac06");
}

/// Fact sheet §6.3: the same instant with nanos 500000000.
#[test]
fn redis_timestamp_with_nanos_reference_encoding() {
    assert_encoding(
        &Timestamp {
            seconds: 1_704_106_800,
            nanos: 500_000_000,
        },
        "08b0b6caac061080cab5ee01",
    );
}

/// Fact sheet §1: proto3 repeated enums are packed;
/// `PermissionSpec.types = [FEATURE_VIEW, ENTITY]` encodes as `1a 02 00 04`.
#[test]
fn permission_spec_types_are_packed() {
    let spec = PermissionSpec {
        types: vec![
            permission_spec::Type::FeatureView as i32,
            permission_spec::Type::Entity as i32,
        ],
        ..Default::default()
    };
    assert_encoding(&spec, "1a020004");
}

#[test]
fn feature_view_round_trip() {
    let file_source = DataSource {
        r#type: data_source::SourceType::BatchFile as i32,
        name: "driver_stats_source".into(),
        timestamp_field: "event_timestamp".into(),
        created_timestamp_column: "created".into(),
        data_source_class_type: "feast.infra.offline_stores.file_source.FileSource".into(),
        options: Some(data_source::Options::FileOptions(data_source::FileOptions {
            uri: "data/driver_stats.parquet".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let push_source = DataSource {
        r#type: data_source::SourceType::PushSource as i32,
        name: "driver_stats_push".into(),
        timestamp_field: "event_timestamp".into(),
        batch_source: Some(Box::new(file_source.clone())),
        ..Default::default()
    };
    let feature = |name: &str, t: value_type::Enum| FeatureSpecV2 {
        name: name.into(),
        value_type: t as i32,
        ..Default::default()
    };
    let fv = FeatureView {
        spec: Some(FeatureViewSpec {
            name: "driver_hourly_stats".into(),
            project: "demo".into(),
            entities: vec!["driver".into()],
            features: vec![
                feature("conv_rate", value_type::Enum::Float),
                feature("acc_rate", value_type::Enum::Float),
                feature("avg_daily_trips", value_type::Enum::Int64),
            ],
            tags: BTreeMap::from([("team".to_string(), "driver_performance".to_string())]),
            ttl: Some(Duration {
                seconds: 86_400,
                nanos: 0,
            }),
            batch_source: Some(file_source),
            online: true,
            stream_source: Some(push_source),
            description: "hourly driver stats".into(),
            owner: "ml@example.com".into(),
            entity_columns: vec![feature("driver_id", value_type::Enum::Int64)],
            offline: false,
            mode: String::new(),
            version: "latest".into(),
            ..Default::default()
        }),
        meta: Some(FeatureViewMeta {
            created_timestamp: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 123_456_000,
            }),
            last_updated_timestamp: Some(ts(1_700_000_100)),
            materialization_intervals: vec![
                MaterializationInterval {
                    start_time: Some(ts(1_704_067_200)),
                    end_time: Some(ts(1_704_106_800)),
                },
                MaterializationInterval {
                    start_time: Some(ts(1_704_106_800)),
                    end_time: Some(ts(1_704_153_600)),
                },
            ],
            current_version_number: 0,
            version_id: String::new(),
            state: FeatureViewState::AvailableOnline as i32,
        }),
    };

    let bytes = fv.encode_to_vec();
    let decoded = FeatureView::decode(bytes.as_slice()).expect("feature view must decode");
    assert_eq!(decoded, fv);
    assert_eq!(decoded.encode_to_vec().len(), bytes.len());

    let meta = decoded.meta.as_ref().expect("meta");
    assert_eq!(meta.materialization_intervals.len(), 2);
    assert_eq!(meta.materialization_intervals[1].end_time, Some(ts(1_704_153_600)));
    assert_eq!(meta.state(), FeatureViewState::AvailableOnline);
    let spec = decoded.spec.as_ref().expect("spec");
    assert_eq!(spec.features[2].value_type(), value_type::Enum::Int64);
    let push = spec.stream_source.as_ref().expect("stream source");
    assert_eq!(push.r#type(), data_source::SourceType::PushSource);
    assert_eq!(
        push.batch_source.as_ref().map(|b| b.name.as_str()),
        Some("driver_stats_source")
    );
    assert!(push.options.is_none());
    assert_eq!(spec.version, "latest");

    // Field-number spot checks on the raw bytes: FeatureView.spec is field 1
    // (tag 0x0a) and FeatureViewMeta.materialization_intervals is field 3.
    assert_eq!(bytes[0], 0x0a);
    let meta_bytes = meta.encode_to_vec();
    let interval_bytes = meta.materialization_intervals[0].encode_to_vec();
    let mut needle = vec![0x1a, interval_bytes.len() as u8];
    needle.extend_from_slice(&interval_bytes);
    assert!(
        meta_bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
        "materialization_intervals must be encoded as field 3"
    );
}

/// The descriptor set is complete enough for reflection: every file written
/// from the fact sheet, the registry service with every RPC of §2.1 and the
/// package-less `GrpcFeatureServer`.
#[test]
fn file_descriptor_set_contents() {
    let fds = FileDescriptorSet::decode(larder_protos::FILE_DESCRIPTOR_SET).expect("FILE_DESCRIPTOR_SET must decode");
    let file = |name: &str| {
        fds.file
            .iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("{name} missing from FILE_DESCRIPTOR_SET"))
    };

    for name in [
        "feast/types/Value.proto",
        "feast/types/EntityKey.proto",
        "feast/types/Field.proto",
        "feast/core/Aggregation.proto",
        "feast/core/DataFormat.proto",
        "feast/core/DataSource.proto",
        "feast/core/DatastoreTable.proto",
        "feast/core/Entity.proto",
        "feast/core/Feature.proto",
        "feast/core/FeatureService.proto",
        "feast/core/FeatureTable.proto",
        "feast/core/FeatureViewProjection.proto",
        "feast/core/FeatureViewVersion.proto",
        "feast/core/FeatureView.proto",
        "feast/core/InfraObject.proto",
        "feast/core/LabelView.proto",
        "feast/core/OnDemandFeatureView.proto",
        "feast/core/Permission.proto",
        "feast/core/Policy.proto",
        "feast/core/Project.proto",
        "feast/core/Registry.proto",
        "feast/core/SavedDataset.proto",
        "feast/core/SqliteTable.proto",
        "feast/core/Store.proto",
        "feast/core/StreamFeatureView.proto",
        "feast/core/Transformation.proto",
        "feast/core/ValidationProfile.proto",
        "feast/registry/RegistryServer.proto",
        "feast/serving/ServingService.proto",
        "feast/serving/GrpcServer.proto",
        "feast/storage/Redis.proto",
        "google/protobuf/timestamp.proto",
    ] {
        let f = file(name);
        assert_eq!(f.syntax(), "proto3", "{name} must be proto3");
    }

    let registry = file("feast/registry/RegistryServer.proto");
    assert_eq!(registry.package(), "feast.registry");
    let service = registry
        .service
        .iter()
        .find(|s| s.name() == "RegistryServer")
        .expect("service RegistryServer");
    let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
    let expected = [
        "ApplyEntity",
        "GetEntity",
        "ListEntities",
        "DeleteEntity",
        "ApplyDataSource",
        "GetDataSource",
        "ListDataSources",
        "DeleteDataSource",
        "ApplyFeatureView",
        "DeleteFeatureView",
        "GetAnyFeatureView",
        "ListAllFeatureViews",
        "GetFeatureView",
        "ListFeatureViews",
        "GetStreamFeatureView",
        "ListStreamFeatureViews",
        "GetOnDemandFeatureView",
        "ListOnDemandFeatureViews",
        "GetLabelView",
        "ListLabelViews",
        "ApplyFeatureService",
        "GetFeatureService",
        "ListFeatureServices",
        "DeleteFeatureService",
        "ApplySavedDataset",
        "GetSavedDataset",
        "ListSavedDatasets",
        "DeleteSavedDataset",
        "CreateDatasetFromRetrieval",
        "GetDatasetData",
        "GetDatasetJobStatus",
        "ListDatasetJobs",
        "ApplyValidationReference",
        "GetValidationReference",
        "ListValidationReferences",
        "DeleteValidationReference",
        "ApplyPermission",
        "GetPermission",
        "ListPermissions",
        "DeletePermission",
        "ApplyProject",
        "GetProject",
        "ListProjects",
        "DeleteProject",
        "ApplyMaterialization",
        "ListProjectMetadata",
        "UpdateInfra",
        "GetInfra",
        "Commit",
        "Refresh",
        "Proto",
        "GetRegistryLineage",
        "GetObjectRelationships",
        "ListFeatures",
        "GetFeature",
    ];
    assert_eq!(methods, expected);
    let method = |name: &str| service.method.iter().find(|m| m.name() == name).expect("method");
    assert_eq!(method("GetEntity").output_type(), ".feast.core.Entity");
    assert_eq!(method("Commit").input_type(), ".google.protobuf.Empty");
    assert_eq!(method("Proto").output_type(), ".feast.core.Registry");
    assert_eq!(method("GetFeature").output_type(), ".feast.registry.Feature");

    let grpc_server = file("feast/serving/GrpcServer.proto");
    assert_eq!(grpc_server.package(), "", "GrpcServer.proto has no package");
    let fs = &grpc_server.service[0];
    assert_eq!(fs.name(), "GrpcFeatureServer");
    let names: Vec<&str> = fs.method.iter().map(|m| m.name()).collect();
    assert_eq!(names, ["Push", "WriteToOnlineStore", "GetOnlineFeatures"]);

    let serving = file("feast/serving/ServingService.proto");
    assert_eq!(serving.package(), "feast.serving");
    let names: Vec<&str> = serving.service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(serving.service[0].name(), "ServingService");
    assert_eq!(names, ["GetFeastServingInfo", "GetOnlineFeatures"]);
}

/// Spot checks of field numbers and labels from the fact sheet tables (these
/// expected bytes are derived by hand from §1/§2, not recorded from Feast).
#[test]
fn misc_field_numbers() {
    use larder_protos::feast::registry::{ApplyFeatureViewRequest, apply_feature_view_request};
    use larder_protos::feast::serving::{FieldStatus, get_online_features_response};

    // ApplyFeatureViewRequest.project = 4, commit = 5.
    let req = ApplyFeatureViewRequest {
        base_feature_view: None,
        project: "p".into(),
        commit: true,
    };
    assert_encoding(&req, "2201702801");
    let _ = apply_feature_view_request::BaseFeatureView::FeatureView(FeatureView::default());

    // FeatureVector.statuses is a packed repeated enum (field 2).
    let fv = get_online_features_response::FeatureVector {
        statuses: vec![FieldStatus::Present as i32, FieldStatus::NotFound as i32],
        ..Default::default()
    };
    assert_encoding(&fv, "12020103");

    // FeatureViewProjection.version_tag is proto3 `optional`: 0 is emitted.
    let proj = core::FeatureViewProjection {
        version_tag: Some(0),
        ..Default::default()
    };
    assert_encoding(&proj, "5000");
}
