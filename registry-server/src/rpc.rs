//! `feast.registry.RegistryServer`: every RPC of Feast 0.67's remote
//! registry client, built from [`RegistryService`]'s operations.

use larder_auth::Action;
use larder_model::feast::{FeastKind, FeastObject};
use larder_protos::feast::core as fc;
use larder_protos::feast::registry as fr;
use larder_protos::feast::registry::registry_server_server::RegistryServer;
use larder_registry::Registry;
use tonic::{Request, Response, Status};

use crate::RegistryService;
use crate::errors::{feast_status, invalid, not_found, status_from};
use crate::query::{paginate, sort, tags, updated};

macro_rules! unwrap_kind {
    ($obj:expr, $variant:ident) => {
        match $obj {
            FeastObject::$variant(x) => Ok(Response::new(x)),
            _ => Err(Status::internal("registry returned another kind")),
        }
    };
}

macro_rules! only {
    ($v:expr, $variant:ident) => {
        $v.into_iter()
            .filter_map(|o| match o {
                FeastObject::$variant(x) => Some(x),
                _ => None,
            })
            .collect()
    };
}

#[tonic::async_trait]
impl RegistryServer for RegistryService {
    async fn apply_entity(&self, r: Request<fr::ApplyEntityRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.apply(&user, &r.project, r.entity.map(FeastObject::Entity)).await
    }
    async fn get_entity(&self, r: Request<fr::GetEntityRequest>) -> Result<Response<fc::Entity>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(&user, &r.project, FeastKind::Entity, &r.name, r.allow_cache)
                .await?,
            Entity
        )
    }
    async fn list_entities(
        &self,
        r: Request<fr::ListEntitiesRequest>,
    ) -> Result<Response<fr::ListEntitiesResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let (v, p) = self
            .list(
                &user,
                &r.project,
                FeastKind::Entity,
                r.allow_cache,
                &r.tags,
                r.pagination.as_ref(),
                r.sorting.as_ref(),
            )
            .await?;
        Ok(Response::new(fr::ListEntitiesResponse {
            entities: only!(v, Entity),
            pagination: Some(p),
        }))
    }
    async fn delete_entity(&self, r: Request<fr::DeleteEntityRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.delete(&user, &r.project, FeastKind::Entity, &r.name).await
    }

    async fn apply_data_source(&self, r: Request<fr::ApplyDataSourceRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.apply(&user, &r.project, r.data_source.map(FeastObject::DataSource))
            .await
    }
    async fn get_data_source(&self, r: Request<fr::GetDataSourceRequest>) -> Result<Response<fc::DataSource>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(&user, &r.project, FeastKind::DataSource, &r.name, r.allow_cache)
                .await?,
            DataSource
        )
    }
    async fn list_data_sources(
        &self,
        r: Request<fr::ListDataSourcesRequest>,
    ) -> Result<Response<fr::ListDataSourcesResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let (v, p) = self
            .list(
                &user,
                &r.project,
                FeastKind::DataSource,
                r.allow_cache,
                &r.tags,
                r.pagination.as_ref(),
                r.sorting.as_ref(),
            )
            .await?;
        Ok(Response::new(fr::ListDataSourcesResponse {
            data_sources: only!(v, DataSource),
            pagination: Some(p),
        }))
    }
    async fn delete_data_source(&self, r: Request<fr::DeleteDataSourceRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.delete(&user, &r.project, FeastKind::DataSource, &r.name).await
    }

    async fn apply_feature_view(&self, r: Request<fr::ApplyFeatureViewRequest>) -> Result<Response<()>, Status> {
        use fr::apply_feature_view_request::BaseFeatureView as B;
        let (user, r) = self.caller(r).await?;
        let obj = r.base_feature_view.map(|b| match b {
            B::FeatureView(v) => FeastObject::FeatureView(v),
            B::OnDemandFeatureView(v) => FeastObject::OnDemandFeatureView(v),
            B::StreamFeatureView(v) => FeastObject::StreamFeatureView(v),
            B::LabelView(v) => FeastObject::LabelView(v),
        });
        self.apply(&user, &r.project, obj).await
    }
    async fn delete_feature_view(&self, r: Request<fr::DeleteFeatureViewRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        // One name space for all view kinds: delete whichever holds the name.
        for kind in [
            FeastKind::FeatureView,
            FeastKind::StreamFeatureView,
            FeastKind::OnDemandFeatureView,
            FeastKind::LabelView,
        ] {
            if self
                .registry
                .uncached()
                .get(&r.project, kind, &r.name)
                .await
                .map_err(status_from)?
                .is_some()
            {
                return self.delete(&user, &r.project, kind, &r.name).await;
            }
        }
        Err(not_found(FeastKind::FeatureView, &r.name, &r.project))
    }
    async fn get_any_feature_view(
        &self,
        r: Request<fr::GetAnyFeatureViewRequest>,
    ) -> Result<Response<fr::GetAnyFeatureViewResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let src = self.source(r.allow_cache);
        for kind in ANY_VIEW_KINDS {
            if let Some(o) = src.get(&r.project, kind, &r.name).await.map_err(status_from)? {
                self.assert_object(&user, &r.project, &o, &[Action::Describe]).await?;
                if let Some(any) = any_feature_view(o) {
                    return Ok(Response::new(fr::GetAnyFeatureViewResponse {
                        any_feature_view: Some(any),
                    }));
                }
            }
        }
        Err(not_found(FeastKind::FeatureView, &r.name, &r.project))
    }
    async fn list_all_feature_views(
        &self,
        r: Request<fr::ListAllFeatureViewsRequest>,
    ) -> Result<Response<fr::ListAllFeatureViewsResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let mut all = Vec::new();
        for kind in ANY_VIEW_KINDS {
            all.extend(
                self.list(&user, &r.project, kind, r.allow_cache, &r.tags, None, None)
                    .await?
                    .0,
            );
        }
        if let Some(since) = r.updated_since {
            all.retain(|o| updated(o).0 >= since.seconds);
        }
        if !r.entity.is_empty() || !r.feature.is_empty() || !r.data_source.is_empty() {
            all.retain(|o| match o {
                FeastObject::FeatureView(v) => {
                    let s = v.spec.clone().unwrap_or_default();
                    (r.entity.is_empty() || s.entities.contains(&r.entity))
                        && (r.feature.is_empty() || s.features.iter().any(|f| f.name == r.feature))
                        && (r.data_source.is_empty()
                            || s.batch_source.as_ref().is_some_and(|b| b.name == r.data_source)
                            || s.stream_source.as_ref().is_some_and(|b| b.name == r.data_source))
                }
                _ => false,
            });
        }
        if !r.feature_service.is_empty() {
            let svc = self
                .get(
                    &user,
                    &r.project,
                    FeastKind::FeatureService,
                    &r.feature_service,
                    r.allow_cache,
                )
                .await?;
            let names: Vec<String> = match svc {
                FeastObject::FeatureService(s) => s
                    .spec
                    .unwrap_or_default()
                    .features
                    .into_iter()
                    .map(|p| p.feature_view_name)
                    .collect(),
                _ => Vec::new(),
            };
            all.retain(|o| names.iter().any(|n| n == o.name()));
        }
        sort(&mut all, r.sorting.as_ref())?;
        let (page, p) = paginate(all, r.pagination.as_ref());
        let views = page.into_iter().filter_map(any_feature_view).collect();
        Ok(Response::new(fr::ListAllFeatureViewsResponse {
            feature_views: views,
            pagination: Some(p),
        }))
    }
    async fn get_feature_view(
        &self,
        r: Request<fr::GetFeatureViewRequest>,
    ) -> Result<Response<fc::FeatureView>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(&user, &r.project, FeastKind::FeatureView, &r.name, r.allow_cache)
                .await?,
            FeatureView
        )
    }
    async fn list_feature_views(
        &self,
        r: Request<fr::ListFeatureViewsRequest>,
    ) -> Result<Response<fr::ListFeatureViewsResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let (v, p) = self
            .list(
                &user,
                &r.project,
                FeastKind::FeatureView,
                r.allow_cache,
                &r.tags,
                r.pagination.as_ref(),
                r.sorting.as_ref(),
            )
            .await?;
        Ok(Response::new(fr::ListFeatureViewsResponse {
            feature_views: only!(v, FeatureView),
            pagination: Some(p),
        }))
    }
    async fn get_stream_feature_view(
        &self,
        r: Request<fr::GetStreamFeatureViewRequest>,
    ) -> Result<Response<fc::StreamFeatureView>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(&user, &r.project, FeastKind::StreamFeatureView, &r.name, r.allow_cache)
                .await?,
            StreamFeatureView
        )
    }
    async fn list_stream_feature_views(
        &self,
        r: Request<fr::ListStreamFeatureViewsRequest>,
    ) -> Result<Response<fr::ListStreamFeatureViewsResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let (v, p) = self
            .list(
                &user,
                &r.project,
                FeastKind::StreamFeatureView,
                r.allow_cache,
                &r.tags,
                r.pagination.as_ref(),
                r.sorting.as_ref(),
            )
            .await?;
        Ok(Response::new(fr::ListStreamFeatureViewsResponse {
            stream_feature_views: only!(v, StreamFeatureView),
            pagination: Some(p),
        }))
    }
    async fn get_on_demand_feature_view(
        &self,
        r: Request<fr::GetOnDemandFeatureViewRequest>,
    ) -> Result<Response<fc::OnDemandFeatureView>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(
                &user,
                &r.project,
                FeastKind::OnDemandFeatureView,
                &r.name,
                r.allow_cache
            )
            .await?,
            OnDemandFeatureView
        )
    }
    async fn list_on_demand_feature_views(
        &self,
        r: Request<fr::ListOnDemandFeatureViewsRequest>,
    ) -> Result<Response<fr::ListOnDemandFeatureViewsResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let (v, p) = self
            .list(
                &user,
                &r.project,
                FeastKind::OnDemandFeatureView,
                r.allow_cache,
                &r.tags,
                r.pagination.as_ref(),
                r.sorting.as_ref(),
            )
            .await?;
        Ok(Response::new(fr::ListOnDemandFeatureViewsResponse {
            on_demand_feature_views: only!(v, OnDemandFeatureView),
            pagination: Some(p),
        }))
    }
    async fn get_label_view(&self, r: Request<fr::GetLabelViewRequest>) -> Result<Response<fc::LabelView>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(&user, &r.project, FeastKind::LabelView, &r.name, r.allow_cache)
                .await?,
            LabelView
        )
    }
    async fn list_label_views(
        &self,
        r: Request<fr::ListLabelViewsRequest>,
    ) -> Result<Response<fr::ListLabelViewsResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let (v, p) = self
            .list(
                &user,
                &r.project,
                FeastKind::LabelView,
                r.allow_cache,
                &r.tags,
                r.pagination.as_ref(),
                r.sorting.as_ref(),
            )
            .await?;
        Ok(Response::new(fr::ListLabelViewsResponse {
            label_views: only!(v, LabelView),
            pagination: Some(p),
        }))
    }

    async fn apply_feature_service(&self, r: Request<fr::ApplyFeatureServiceRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.apply(&user, &r.project, r.feature_service.map(FeastObject::FeatureService))
            .await
    }
    async fn get_feature_service(
        &self,
        r: Request<fr::GetFeatureServiceRequest>,
    ) -> Result<Response<fc::FeatureService>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(&user, &r.project, FeastKind::FeatureService, &r.name, r.allow_cache)
                .await?,
            FeatureService
        )
    }
    async fn list_feature_services(
        &self,
        r: Request<fr::ListFeatureServicesRequest>,
    ) -> Result<Response<fr::ListFeatureServicesResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        // Filtered before paging: the page is taken from the filtered list.
        let (mut v, _) = self
            .list(
                &user,
                &r.project,
                FeastKind::FeatureService,
                r.allow_cache,
                &r.tags,
                None,
                r.sorting.as_ref(),
            )
            .await?;
        if !r.feature_view.is_empty() {
            v.retain(|o| match o {
                FeastObject::FeatureService(s) => s
                    .spec
                    .as_ref()
                    .is_some_and(|s| s.features.iter().any(|f| f.feature_view_name == r.feature_view)),
                _ => false,
            });
        }
        let (v, p) = paginate(v, r.pagination.as_ref());
        Ok(Response::new(fr::ListFeatureServicesResponse {
            feature_services: only!(v, FeatureService),
            pagination: Some(p),
        }))
    }
    async fn delete_feature_service(
        &self,
        r: Request<fr::DeleteFeatureServiceRequest>,
    ) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.delete(&user, &r.project, FeastKind::FeatureService, &r.name).await
    }

    async fn apply_saved_dataset(&self, r: Request<fr::ApplySavedDatasetRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.apply(&user, &r.project, r.saved_dataset.map(FeastObject::SavedDataset))
            .await
    }
    async fn get_saved_dataset(
        &self,
        r: Request<fr::GetSavedDatasetRequest>,
    ) -> Result<Response<fc::SavedDataset>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(&user, &r.project, FeastKind::SavedDataset, &r.name, r.allow_cache)
                .await?,
            SavedDataset
        )
    }
    async fn list_saved_datasets(
        &self,
        r: Request<fr::ListSavedDatasetsRequest>,
    ) -> Result<Response<fr::ListSavedDatasetsResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let (v, p) = self
            .list(
                &user,
                &r.project,
                FeastKind::SavedDataset,
                r.allow_cache,
                &r.tags,
                r.pagination.as_ref(),
                r.sorting.as_ref(),
            )
            .await?;
        Ok(Response::new(fr::ListSavedDatasetsResponse {
            saved_datasets: only!(v, SavedDataset),
            pagination: Some(p),
        }))
    }
    async fn delete_saved_dataset(&self, r: Request<fr::DeleteSavedDatasetRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.delete(&user, &r.project, FeastKind::SavedDataset, &r.name).await
    }
    async fn create_dataset_from_retrieval(
        &self,
        r: Request<fr::CreateDatasetFromRetrievalRequest>,
    ) -> Result<Response<fr::CreateDatasetFromRetrievalResponse>, Status> {
        self.caller(r).await?;
        Err(Status::unimplemented(
            "dataset jobs need historical retrieval, which Larder's registry server does not run",
        ))
    }
    async fn get_dataset_data(
        &self,
        r: Request<fr::GetDatasetDataRequest>,
    ) -> Result<Response<fr::GetDatasetDataResponse>, Status> {
        self.caller(r).await?;
        Err(Status::unimplemented(
            "dataset data needs an offline store, which Larder's registry server does not read",
        ))
    }
    async fn get_dataset_job_status(
        &self,
        r: Request<fr::GetDatasetJobStatusRequest>,
    ) -> Result<Response<fr::GetDatasetJobStatusResponse>, Status> {
        self.caller(r).await?;
        Err(Status::unimplemented("dataset jobs are not supported"))
    }
    async fn list_dataset_jobs(
        &self,
        r: Request<fr::ListDatasetJobsRequest>,
    ) -> Result<Response<fr::ListDatasetJobsResponse>, Status> {
        self.caller(r).await?;
        Ok(Response::new(fr::ListDatasetJobsResponse::default()))
    }

    async fn apply_validation_reference(
        &self,
        r: Request<fr::ApplyValidationReferenceRequest>,
    ) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.apply(
            &user,
            &r.project,
            r.validation_reference.map(FeastObject::ValidationReference),
        )
        .await
    }
    async fn get_validation_reference(
        &self,
        r: Request<fr::GetValidationReferenceRequest>,
    ) -> Result<Response<fc::ValidationReference>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(
                &user,
                &r.project,
                FeastKind::ValidationReference,
                &r.name,
                r.allow_cache
            )
            .await?,
            ValidationReference
        )
    }
    async fn list_validation_references(
        &self,
        r: Request<fr::ListValidationReferencesRequest>,
    ) -> Result<Response<fr::ListValidationReferencesResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let (v, p) = self
            .list(
                &user,
                &r.project,
                FeastKind::ValidationReference,
                r.allow_cache,
                &r.tags,
                r.pagination.as_ref(),
                r.sorting.as_ref(),
            )
            .await?;
        Ok(Response::new(fr::ListValidationReferencesResponse {
            validation_references: only!(v, ValidationReference),
            pagination: Some(p),
        }))
    }
    async fn delete_validation_reference(
        &self,
        r: Request<fr::DeleteValidationReferenceRequest>,
    ) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.delete(&user, &r.project, FeastKind::ValidationReference, &r.name)
            .await
    }

    async fn apply_permission(&self, r: Request<fr::ApplyPermissionRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.apply(&user, &r.project, r.permission.map(FeastObject::Permission))
            .await
    }
    async fn get_permission(&self, r: Request<fr::GetPermissionRequest>) -> Result<Response<fc::Permission>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(&user, &r.project, FeastKind::Permission, &r.name, r.allow_cache)
                .await?,
            Permission
        )
    }
    async fn list_permissions(
        &self,
        r: Request<fr::ListPermissionsRequest>,
    ) -> Result<Response<fr::ListPermissionsResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let (v, p) = self
            .list(
                &user,
                &r.project,
                FeastKind::Permission,
                r.allow_cache,
                &r.tags,
                r.pagination.as_ref(),
                r.sorting.as_ref(),
            )
            .await?;
        Ok(Response::new(fr::ListPermissionsResponse {
            permissions: only!(v, Permission),
            pagination: Some(p),
        }))
    }
    async fn delete_permission(&self, r: Request<fr::DeletePermissionRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.delete(&user, &r.project, FeastKind::Permission, &r.name).await
    }

    async fn apply_project(&self, r: Request<fr::ApplyProjectRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        let name = r
            .project
            .as_ref()
            .and_then(|p| p.spec.as_ref())
            .map(|s| s.name.clone())
            .unwrap_or_default();
        self.apply(&user, &name, r.project.map(FeastObject::Project)).await
    }
    async fn get_project(&self, r: Request<fr::GetProjectRequest>) -> Result<Response<fc::Project>, Status> {
        let (user, r) = self.caller(r).await?;
        unwrap_kind!(
            self.get(&user, &r.name, FeastKind::Project, &r.name, r.allow_cache)
                .await?,
            Project
        )
    }
    async fn list_projects(
        &self,
        r: Request<fr::ListProjectsRequest>,
    ) -> Result<Response<fr::ListProjectsResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let (v, _) = self
            .list(&user, "", FeastKind::Project, r.allow_cache, &r.tags, None, None)
            .await?;
        let mut v: Vec<FeastObject> = v
            .into_iter()
            .filter(|o| tags(o).get("feast.dev/protected-project").map(String::as_str) != Some("true"))
            .collect();
        sort(&mut v, r.sorting.as_ref())?;
        let (v, p) = paginate(v, r.pagination.as_ref());
        Ok(Response::new(fr::ListProjectsResponse {
            projects: only!(v, Project),
            pagination: Some(p),
        }))
    }
    async fn delete_project(&self, r: Request<fr::DeleteProjectRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.delete(&user, &r.name, FeastKind::Project, &r.name).await
    }

    async fn apply_materialization(&self, r: Request<fr::ApplyMaterializationRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        let name = r
            .feature_view
            .as_ref()
            .and_then(|v| v.spec.as_ref())
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let (Some(start), Some(end)) = (r.start_date, r.end_date) else {
            return Err(invalid("start_date and end_date are required"));
        };
        self.assert(&user, &r.project, FeastKind::FeatureView, &name, &[Action::WriteOnline])
            .await?;
        self.registry
            .apply_materialization(&r.project, &name, start, end)
            .await
            .map_err(|e| match e {
                larder_registry::RegistryError::NotFound { .. } => not_found(FeastKind::FeatureView, &name, &r.project),
                other => status_from(other),
            })?;
        Ok(Response::new(()))
    }
    async fn list_project_metadata(
        &self,
        r: Request<fr::ListProjectMetadataRequest>,
    ) -> Result<Response<fr::ListProjectMetadataResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        self.assert(&user, &r.project, FeastKind::Project, &r.project, &[Action::Describe])
            .await?;
        let md = self
            .source(r.allow_cache)
            .list_project_metadata(&r.project)
            .await
            .map_err(status_from)?;
        Ok(Response::new(fr::ListProjectMetadataResponse { project_metadata: md }))
    }
    async fn update_infra(&self, r: Request<fr::UpdateInfraRequest>) -> Result<Response<()>, Status> {
        let (user, r) = self.caller(r).await?;
        self.assert(
            &user,
            &r.project,
            FeastKind::Project,
            &r.project,
            &[Action::Describe, Action::Update],
        )
        .await?;
        self.registry
            .update_infra(&r.project, r.infra.unwrap_or_default())
            .await
            .map_err(status_from)?;
        Ok(Response::new(()))
    }
    async fn get_infra(&self, r: Request<fr::GetInfraRequest>) -> Result<Response<fc::Infra>, Status> {
        let (user, r) = self.caller(r).await?;
        self.assert(&user, &r.project, FeastKind::Project, &r.project, &[Action::Describe])
            .await?;
        Ok(Response::new(
            self.registry.get_infra(&r.project).await.map_err(status_from)?,
        ))
    }
    /// SQL-backed registries commit per object; nothing is pending.
    async fn commit(&self, r: Request<()>) -> Result<Response<()>, Status> {
        self.caller(r).await?;
        Ok(Response::new(()))
    }
    async fn refresh(&self, r: Request<fr::RefreshRequest>) -> Result<Response<()>, Status> {
        self.caller(r).await?;
        self.registry.refresh().await.map_err(status_from)?;
        Ok(Response::new(()))
    }
    async fn proto(&self, r: Request<()>) -> Result<Response<fc::Registry>, Status> {
        let (user, ()) = self.caller(r).await?;
        let reg = self.registry.snapshot().await.map_err(status_from)?;
        Ok(Response::new(self.keep_registry(&user, reg).await?))
    }
    async fn get_registry_lineage(
        &self,
        r: Request<fr::GetRegistryLineageRequest>,
    ) -> Result<Response<fr::GetRegistryLineageResponse>, Status> {
        self.caller(r).await?;
        Err(Status::unimplemented("registry lineage is not implemented yet"))
    }
    async fn get_object_relationships(
        &self,
        r: Request<fr::GetObjectRelationshipsRequest>,
    ) -> Result<Response<fr::GetObjectRelationshipsResponse>, Status> {
        self.caller(r).await?;
        Err(Status::unimplemented("object relationships are not implemented yet"))
    }
    async fn list_features(
        &self,
        r: Request<fr::ListFeaturesRequest>,
    ) -> Result<Response<fr::ListFeaturesResponse>, Status> {
        let (user, r) = self.caller(r).await?;
        let views = self
            .source(r.allow_cache)
            .list(&r.project, FeastKind::FeatureView)
            .await
            .map_err(status_from)?;
        let views = self.keep(&user, views).await?;
        let mut out = Vec::new();
        for v in views {
            let FeastObject::FeatureView(v) = v else { continue };
            let s = v.spec.unwrap_or_default();
            if !r.feature_view.is_empty() && s.name != r.feature_view {
                continue;
            }
            for f in s.features {
                if !r.name.is_empty() && f.name != r.name {
                    continue;
                }
                out.push(feature_of(&s.name, f));
            }
        }
        let (page, p) = paginate(out, r.pagination.as_ref());
        Ok(Response::new(fr::ListFeaturesResponse {
            features: page,
            pagination: Some(p),
        }))
    }
    async fn get_feature(&self, r: Request<fr::GetFeatureRequest>) -> Result<Response<fr::Feature>, Status> {
        let (user, r) = self.caller(r).await?;
        let v = self
            .get(
                &user,
                &r.project,
                FeastKind::FeatureView,
                &r.feature_view,
                r.allow_cache,
            )
            .await?;
        let FeastObject::FeatureView(v) = v else {
            return Err(Status::internal("registry returned another kind"));
        };
        let s = v.spec.unwrap_or_default();
        let f = s.features.into_iter().find(|f| f.name == r.name).ok_or_else(|| {
            feast_status(
                tonic::Code::NotFound,
                "FeatureNotFoundException",
                format!("Feature {} not found in feature view {}", r.name, r.feature_view),
            )
        })?;
        Ok(Response::new(feature_of(&s.name, f)))
    }
}

/// The view kinds `GetAnyFeatureView` and `ListAllFeatureViews` cover, in
/// Feast's order (the list's order when no sorting is asked for).
const ANY_VIEW_KINDS: [FeastKind; 4] = [
    FeastKind::FeatureView,
    FeastKind::OnDemandFeatureView,
    FeastKind::StreamFeatureView,
    FeastKind::LabelView,
];

/// A view of any kind in `AnyFeatureView`'s oneof; `None` for other objects.
fn any_feature_view(o: FeastObject) -> Option<fr::AnyFeatureView> {
    use fr::any_feature_view::AnyFeatureView as A;
    let any = match o {
        FeastObject::FeatureView(v) => A::FeatureView(v),
        FeastObject::OnDemandFeatureView(v) => A::OnDemandFeatureView(v),
        FeastObject::StreamFeatureView(v) => A::StreamFeatureView(v),
        FeastObject::LabelView(v) => A::LabelView(v),
        _ => return None,
    };
    Some(fr::AnyFeatureView {
        any_feature_view: Some(any),
    })
}

/// A view's feature as `ListFeatures`/`GetFeature` answer it (type as Feast's Python name).
fn feature_of(view: &str, f: fc::FeatureSpecV2) -> fr::Feature {
    fr::Feature {
        r#type: larder_model::types::FeatureType::from_value_type(f.value_type)
            .map(|t| t.to_string())
            .unwrap_or_default(),
        name: f.name,
        feature_view: view.to_string(),
        description: f.description,
        tags: f.tags,
        ..Default::default()
    }
}
