//! Statuses in the shapes Feast 0.67's registry client parses: the Feast
//! error JSON as the status message, so the SDK re-raises the class.

use larder_model::feast::FeastKind;
use tonic::Status;

/// The Python server aborts with `FeastError.to_error_detail()` as the status
/// *message* (grpc-message), and the client's interceptor parses
/// `RpcError.details()`, i.e. that message, as JSON to re-raise the class.
pub(crate) fn feast_status(code: tonic::Code, class: &str, message: String) -> Status {
    Status::new(code, larder_model::feast::error_detail(class, &message))
}

/// NOT_FOUND with the exception class the Python client re-raises.
pub fn not_found(kind: FeastKind, name: &str, project: &str) -> Status {
    let (class, what) = match kind {
        FeastKind::Entity => ("EntityNotFoundException", "Entity"),
        FeastKind::DataSource => ("DataSourceObjectNotFoundException", "Data source"),
        FeastKind::FeatureView
        | FeastKind::StreamFeatureView
        | FeastKind::OnDemandFeatureView
        | FeastKind::LabelView => ("FeatureViewNotFoundException", "Feature view"),
        FeastKind::FeatureService => ("FeatureServiceNotFoundException", "Feature service"),
        FeastKind::SavedDataset => ("SavedDatasetNotFound", "Saved dataset"),
        FeastKind::ValidationReference => ("ValidationReferenceNotFound", "Validation reference"),
        FeastKind::Permission => ("PermissionObjectNotFoundException", "Permission"),
        FeastKind::Project => {
            return feast_status(
                tonic::Code::NotFound,
                "ProjectObjectNotFoundException",
                format!("Project {name} does not exist"),
            );
        }
    };
    feast_status(
        tonic::Code::NotFound,
        class,
        format!("{what} {name} does not exist in project {project}"),
    )
}

pub(crate) fn invalid(message: impl Into<String>) -> Status {
    feast_status(tonic::Code::InvalidArgument, "FeastError", message.into())
}

/// A registry error as the gRPC status Feast answers with for it.
pub(crate) fn status_from(e: larder_registry::RegistryError) -> Status {
    match e {
        larder_registry::RegistryError::NotFound { .. } => {
            feast_status(tonic::Code::NotFound, "FeastObjectNotFoundException", e.to_string())
        }
        larder_registry::RegistryError::ViewNameTaken { .. } => feast_status(
            tonic::Code::InvalidArgument,
            "ConflictingFeatureViewNames",
            e.to_string(),
        ),
        other => feast_status(tonic::Code::Internal, "FeastError", other.to_string()),
    }
}
