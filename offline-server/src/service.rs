//! The Arrow Flight service Feast's remote offline store talks to.
//!
//! Feast 0.67's client sends reads (`get_historical_features`) over one
//! `DoExchange` stream: the command in the descriptor, the entity frame as
//! the uploaded batches, the training set streamed back; writes
//! (`offline_write_batch`, `validate_data_source`) over `DoPut`. The older
//! three-call flow (`DoPut` of the frame, `GetFlightInfo`, `DoGet` with the
//! ticket) is served too, holding at most [`MAX_PENDING`] uploaded frames
//! until their `DoGet`.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use arrow::record_batch::RecordBatch;
use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest,
    HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use futures_util::{StreamExt, TryStreamExt};
use larder_auth::{Action as AuthAction, AuthError, PermissionSet, Resource, ResourceType, User};
use larder_model::feast::{FeastKind, FeastObject};
use larder_registry::cache::CachedRegistry;
use tonic::{Request, Response, Status, Streaming};

use crate::command::Command;

/// Uploaded entity frames kept for the three-call flow (oldest dropped first).
pub const MAX_PENDING: usize = 16;

/// Largest entity frame accepted, in rows.
pub const MAX_ENTITY_ROWS: usize = 50_000_000;

/// What the service serves from.
pub struct OfflineService {
    registry: Arc<CachedRegistry>,
    /// The project of writes and source lookups (Feast's server uses its
    /// configured project for them; reads name theirs).
    project: Option<String>,
    /// The offline store's PostgreSQL URL, for PostgreSQL sources.
    postgres_url: Option<String>,
    auth: Arc<larder_auth::Auth>,
    permissions: larder_auth::ProjectPermissions,
    /// Frames uploaded by `DoPut` for a later `DoGet`, by descriptor command.
    pending: Mutex<Vec<(Vec<u8>, RecordBatch)>>,
}

type Stream<T> = Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send + 'static>>;

fn flight_status(e: FlightError) -> Status {
    match e {
        FlightError::Tonic(s) => *s,
        other => Status::invalid_argument(format!("cannot read the uploaded Arrow data: {other}")),
    }
}

fn auth_status(e: AuthError) -> Status {
    match e {
        AuthError::Unauthenticated(m) if m.starts_with("missing") => {
            Status::unauthenticated("Missing authentication token")
        }
        AuthError::Unauthenticated(m) => Status::unauthenticated(format!("Invalid or expired access token ({m})")),
        AuthError::Denied(d) => Status::permission_denied(format!("Permission error:\n{}", d.0)),
        AuthError::Unavailable(m) => Status::unavailable(m),
        other => Status::internal(other.to_string()),
    }
}

/// Engine and resolution errors: the caller's fault (unknown views or
/// features, a bad frame) is `INVALID_ARGUMENT`/`NOT_FOUND`, sources that
/// cannot be read are `UNAVAILABLE`/`INTERNAL`.
fn historical_status(e: larder_historical::HistoricalError) -> Status {
    use larder_historical::HistoricalError as H;
    use larder_offline::OfflineError as O;
    use larder_serving::ServeError as S;
    let message = e.to_string();
    match e {
        H::Resolve(S::FeatureViewNotFound { .. } | S::FeatureServiceNotFound { .. }) => Status::not_found(message),
        H::Resolve(_) => Status::invalid_argument(message),
        H::Offline(O::EntityFrame { .. } | O::InvalidRequest { .. }) => Status::invalid_argument(message),
        H::Offline(O::Postgres { .. } | O::Io { .. }) => Status::unavailable(message),
        H::Offline(_) | H::File { .. } => Status::internal(message),
    }
}

impl OfflineService {
    pub fn new(
        registry: Arc<CachedRegistry>,
        project: Option<String>,
        postgres_url: Option<String>,
        auth: Arc<larder_auth::Auth>,
    ) -> Self {
        OfflineService {
            registry,
            project,
            postgres_url,
            auth,
            permissions: larder_auth::ProjectPermissions::default(),
            pending: Mutex::new(Vec::new()),
        }
    }

    async fn caller<T>(&self, r: &Request<T>) -> Result<Arc<User>, Status> {
        let header = r
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("invalid"));
        self.auth.authenticate(header).await.map_err(|e| {
            tracing::info!(reason = %e, "offline call refused");
            auth_status(e)
        })
    }

    async fn permission_set(&self, project: &str) -> Result<Arc<PermissionSet>, Status> {
        if !self.auth.uses_permissions() {
            return Ok(Arc::default());
        }
        let snap = self
            .registry
            .snapshot_cached()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        self.permissions
            .get(project, snap.generation(), || snap.permissions(project))
            .map_err(|e| auth_status(e.into()))
    }

    /// Refuses unless `user` may do `action` on every named view (Feast's
    /// `assert_permissions(feature_view, READ_OFFLINE / WRITE_OFFLINE)`).
    async fn authorize(&self, user: &User, project: &str, views: &[String], action: AuthAction) -> Result<(), Status> {
        if !self.auth.is_enabled() {
            return Ok(());
        }
        let set = self.permission_set(project).await?;
        let resources: Vec<Resource<'_>> = views
            .iter()
            .map(|v| Resource::new(ResourceType::FeatureView, v))
            .collect();
        self.auth
            .check(user, &set, &resources, &[action])
            .await
            .map_err(auth_status)
    }

    /// The training set for a `get_historical_features` command.
    async fn historical(&self, user: &User, command: Command, entities: RecordBatch) -> Result<RecordBatch, Status> {
        let Command::GetHistoricalFeatures {
            project,
            feature_view_names,
            name_aliases,
            feature_refs,
            full_feature_names,
        } = command
        else {
            return Err(Status::invalid_argument("not a read command"));
        };
        self.authorize(user, &project, &feature_view_names, AuthAction::ReadOffline)
            .await?;
        let snap = self
            .registry
            .snapshot_cached()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let request = larder_historical::resolve_views(
            &snap,
            &project,
            &feature_view_names,
            &name_aliases,
            &feature_refs,
            full_feature_names,
            self.postgres_url.as_deref(),
        )
        .map_err(historical_status)?;
        let started = std::time::Instant::now();
        let rows = entities.num_rows();
        let result = tokio::task::spawn_blocking(move || {
            larder_offline::historical::get_historical_features(&entities, &request, &mut |_| {})
        })
        .await
        .map_err(|e| Status::internal(format!("the retrieval stopped unexpectedly: {e}")))?
        .map_err(|e| historical_status(e.into()))?;
        tracing::info!(
            project = %project,
            views = feature_view_names.len(),
            rows,
            millis = started.elapsed().as_millis() as u64,
            "historical features served"
        );
        Ok(result.batch)
    }

    fn project(&self) -> Result<&str, Status> {
        self.project.as_deref().ok_or_else(|| {
            Status::failed_precondition("the offline server has no project configured (larder.yaml `project`)")
        })
    }

    /// A data source or a view's batch source of the server's project, readable by Larder.
    async fn source(&self, kind: FeastKind, name: &str) -> Result<larder_offline::SourceSpec, Status> {
        let project = self.project()?;
        let snap = self
            .registry
            .snapshot_cached()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let proto = match snap.get(project, kind, name) {
            Some(FeastObject::DataSource(ds)) => ds,
            Some(FeastObject::FeatureView(v)) => v.spec.and_then(|s| s.batch_source).unwrap_or_default(),
            _ => {
                let what = if kind == FeastKind::DataSource {
                    "Data source"
                } else {
                    "Feature view"
                };
                return Err(Status::not_found(format!(
                    "{what} {name} does not exist in project {project}"
                )));
            }
        };
        larder_offline::SourceSpec::from_feast(&proto, self.postgres_url.as_deref())
            .map_err(|e| Status::failed_precondition(e.to_string()))
    }

    /// `offline_write_batch`: the uploaded rows appended to the view's batch source.
    async fn write(&self, user: &User, view: &str, table: RecordBatch) -> Result<(), Status> {
        let project = self.project()?.to_string();
        self.authorize(user, &project, &[view.to_string()], AuthAction::WriteOffline)
            .await?;
        let source = self.source(FeastKind::FeatureView, view).await?;
        let rows = table.num_rows();
        larder_offline::write_batch(&source, table).await.map_err(|e| match e {
            larder_offline::OfflineError::Postgres { .. } | larder_offline::OfflineError::Io { .. } => {
                Status::unavailable(e.to_string())
            }
            other => Status::invalid_argument(other.to_string()),
        })?;
        tracing::info!(view, rows, "rows written to the offline store");
        Ok(())
    }

    /// Refuses unless `user` may READ_OFFLINE the data source (Feast's check
    /// before describing or pulling a source).
    async fn authorize_source(&self, user: &User, data_source: &str) -> Result<(), Status> {
        if !self.auth.is_enabled() {
            return Ok(());
        }
        let project = self.project()?.to_string();
        let set = self.permission_set(&project).await?;
        self.auth
            .check(
                user,
                &set,
                &[Resource::new(ResourceType::DataSource, data_source)],
                &[AuthAction::ReadOffline],
            )
            .await
            .map_err(auth_status)
    }

    /// A data source's rows in a window (Feast's materialization through a remote offline store).
    async fn pull(&self, user: &User, command: Command) -> Result<RecordBatch, Status> {
        let Command::Pull {
            latest,
            data_source_name,
            columns,
            start_ns,
            end_ns,
        } = command
        else {
            return Err(Status::invalid_argument("not a pull command"));
        };
        self.authorize_source(user, &data_source_name).await?;
        let source = self.source(FeastKind::DataSource, &data_source_name).await?;
        tokio::task::spawn_blocking(move || {
            larder_offline::pull::pull_parquet(&source, &columns, start_ns, end_ns, latest)
        })
        .await
        .map_err(|e| Status::internal(format!("the pull stopped unexpectedly: {e}")))?
        .map_err(|e| match e {
            larder_offline::OfflineError::Io { .. } => Status::unavailable(e.to_string()),
            other => Status::invalid_argument(other.to_string()),
        })
    }

    /// Column names and types of a data source, as Feast's table of `name`/`type`.
    async fn table_columns(&self, user: &User, data_source: &str) -> Result<RecordBatch, Status> {
        self.authorize_source(user, data_source).await?;
        let source = self.source(FeastKind::DataSource, data_source).await?;
        let schema = larder_offline::write::parquet_source_schema(&source)
            .map_err(|e| Status::failed_precondition(e.to_string()))?
            .ok_or_else(|| Status::failed_precondition(format!("data source {data_source} has no file yet")))?;
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let types: Vec<String> = schema.fields().iter().map(|f| f.data_type().to_string()).collect();
        RecordBatch::try_from_iter([
            (
                "name",
                Arc::new(arrow::array::StringArray::from(names)) as arrow::array::ArrayRef,
            ),
            (
                "type",
                Arc::new(arrow::array::StringArray::from(types)) as arrow::array::ArrayRef,
            ),
        ])
        .map_err(|e| Status::internal(e.to_string()))
    }

    fn remember(&self, key: Vec<u8>, frame: RecordBatch) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|(k, _)| k != &key);
        if pending.len() >= MAX_PENDING {
            pending.remove(0);
        }
        pending.push((key, frame));
    }

    fn take(&self, key: &[u8]) -> Option<RecordBatch> {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let i = pending.iter().position(|(k, _)| k == key)?;
        Some(pending.remove(i).1)
    }

    fn is_pending(&self, key: &[u8]) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|(k, _)| k == key)
    }
}

/// The descriptor and every record batch of an upload, concatenated.
async fn read_upload(stream: Streaming<FlightData>) -> Result<(Vec<u8>, RecordBatch), Status> {
    // The descriptor may come alone, in a message without an IPC header
    // (pyarrow's writers send it so): keep it, and decode the rest.
    let descriptor: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
    let seen = descriptor.clone();
    let messages = stream
        .map_err(|s| FlightError::Tonic(Box::new(s)))
        .try_filter_map(move |fd| {
            if let Some(d) = &fd.flight_descriptor {
                let mut slot = seen.lock().unwrap_or_else(PoisonError::into_inner);
                if slot.is_none() {
                    *slot = Some(d.cmd.to_vec());
                }
            }
            let keep = !fd.data_header.is_empty();
            async move { Ok(keep.then_some(fd)) }
        });
    let mut decoder = FlightDataDecoder::new(messages);
    let mut schema = None;
    let mut batches = Vec::new();
    let mut rows = 0usize;
    while let Some(item) = decoder.next().await {
        let item = item.map_err(flight_status)?;
        match item.payload {
            DecodedPayload::Schema(s) => schema = Some(s),
            DecodedPayload::RecordBatch(b) => {
                rows += b.num_rows();
                if rows > MAX_ENTITY_ROWS {
                    return Err(Status::resource_exhausted(format!(
                        "the uploaded table has more than {MAX_ENTITY_ROWS} rows"
                    )));
                }
                batches.push(b);
            }
            DecodedPayload::None => {}
        }
    }
    let command = descriptor
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or_else(|| Status::invalid_argument("the upload carries no Flight descriptor with a command"))?;
    let schema = schema
        .or_else(|| batches.first().map(|b| b.schema()))
        .ok_or_else(|| Status::invalid_argument("the upload carries no Arrow schema"))?;
    let table = arrow::compute::concat_batches(&schema, &batches)
        .map_err(|e| Status::invalid_argument(format!("cannot read the uploaded Arrow data: {e}")))?;
    Ok((command, table))
}

/// Feast's placeholder upload when a call has no table: one `key` column.
fn is_placeholder(table: &RecordBatch) -> bool {
    table.num_columns() == 1 && table.schema().field(0).name() == "key"
}

fn stream_batch(batch: RecordBatch) -> Stream<FlightData> {
    let schema = batch.schema();
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(schema)
        .build(futures_util::stream::once(async move { Ok(batch) }))
        .map_err(flight_status);
    Box::pin(encoded)
}

fn parse(cmd: &[u8]) -> Result<Command, Status> {
    Command::parse(cmd).map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl FlightService for OfflineService {
    type HandshakeStream = Stream<HandshakeResponse>;
    type ListFlightsStream = Stream<FlightInfo>;
    type DoGetStream = Stream<FlightData>;
    type DoPutStream = Stream<PutResult>;
    type DoExchangeStream = Stream<FlightData>;
    type DoActionStream = Stream<arrow_flight::Result>;
    type ListActionsStream = Stream<ActionType>;

    async fn handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(
            "handshake: authenticate with an Authorization header",
        ))
    }

    async fn list_flights(&self, request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        self.caller(&request).await?;
        let infos: Vec<Result<FlightInfo, Status>> = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, _)| Ok(flight_info(k)))
            .collect();
        Ok(Response::new(Box::pin(futures_util::stream::iter(infos))))
    }

    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request).await?;
        let cmd = request.into_inner().cmd.to_vec();
        if !self.is_pending(&cmd) {
            return Err(Status::not_found("Flight not found."));
        }
        Ok(Response::new(flight_info(&cmd)))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("poll_flight_info"))
    }

    async fn get_schema(&self, _request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        Err(Status::unimplemented("get_schema"))
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let user = self.caller(&request).await?;
        let cmd = request.into_inner().ticket.to_vec();
        let command = parse(&cmd)?;
        let frame = self
            .take(&cmd)
            .ok_or_else(|| Status::not_found("no uploaded entity frame for this ticket (DoPut it first)"))?;
        let batch = self.historical(&user, command, frame).await?;
        Ok(Response::new(stream_batch(batch)))
    }

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        let user = self.caller(&request).await?;
        let (cmd, table) = read_upload(request.into_inner()).await?;
        match parse(&cmd)? {
            Command::GetHistoricalFeatures { .. } => self.remember(cmd, table),
            Command::ValidateDataSource => {}
            Command::OfflineWriteBatch { feature_view_name, .. } => {
                self.write(&user, &feature_view_name, table).await?
            }
            Command::TableColumns { .. } | Command::Pull { .. } => {
                return Err(Status::invalid_argument(
                    "reads other than get_historical_features use DoExchange",
                ));
            }
        }
        Ok(Response::new(Box::pin(futures_util::stream::empty())))
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let user = self.caller(&request).await?;
        let (cmd, table) = read_upload(request.into_inner()).await?;
        let command = parse(&cmd)?;
        if let Command::TableColumns { data_source_name } = &command {
            let batch = self.table_columns(&user, data_source_name).await?;
            return Ok(Response::new(stream_batch(batch)));
        }
        if matches!(command, Command::Pull { .. }) {
            let batch = self.pull(&user, command).await?;
            return Ok(Response::new(stream_batch(batch)));
        }
        if !matches!(command, Command::GetHistoricalFeatures { .. }) {
            return Err(Status::invalid_argument(
                "DoExchange serves reads; writes go through DoPut",
            ));
        }
        if is_placeholder(&table) {
            return Err(Status::invalid_argument(
                "get_historical_features needs an entity frame (the upload is Feast's empty placeholder)",
            ));
        }
        let batch = self.historical(&user, command, table).await?;
        Ok(Response::new(stream_batch(batch)))
    }

    async fn do_action(&self, _request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        Err(Status::unimplemented("do_action: no actions are served"))
    }

    async fn list_actions(&self, _request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        Ok(Response::new(Box::pin(futures_util::stream::empty())))
    }
}

/// A flight whose one endpoint's ticket is the command itself (the client
/// calls `DoGet` on the same connection).
fn flight_info(cmd: &[u8]) -> FlightInfo {
    FlightInfo {
        schema: Default::default(),
        flight_descriptor: Some(FlightDescriptor::new_cmd(cmd.to_vec())),
        endpoint: vec![FlightEndpoint {
            ticket: Some(Ticket {
                ticket: cmd.to_vec().into(),
            }),
            ..Default::default()
        }],
        total_records: -1,
        total_bytes: -1,
        ordered: false,
        app_metadata: Default::default(),
    }
}
