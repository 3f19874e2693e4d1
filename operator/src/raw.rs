//! The six kinds as watched: untyped objects (`DynamicObject`) behind a
//! static Rust type per kind. Untyped, so a resource whose spec does not
//! parse never fails the list/watch of the others (it is parsed, and
//! reported, by its own reconcile); statically typed, so the controllers
//! can share one reflector per kind.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use kube::api::{DynamicObject, ObjectMeta};
use kube::core::NamespaceResourceScope;
use larder_model::Kind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A kind known at compile time.
pub trait KindMarker: Clone + std::fmt::Debug + Send + Sync + 'static {
    const KIND: Kind;
    const PLURAL: &'static str;
}

macro_rules! markers {
    ($($marker:ident => $kind:ident, $plural:literal;)*) => {$(
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $marker;
        impl KindMarker for $marker {
            const KIND: Kind = Kind::$kind;
            const PLURAL: &'static str = $plural;
        }
    )*};
}

markers! {
    FeatureStoreKind => FeatureStore, "featurestores";
    EntityKind => Entity, "entities";
    DataSourceKind => DataSource, "datasources";
    FeatureViewKind => FeatureView, "featureviews";
    FeatureServiceKind => FeatureService, "featureservices";
    PermissionKind => Permission, "permissions";
}

/// One watched resource of kind `M`, kept untyped.
#[derive(Debug, Clone)]
pub struct Raw<M> {
    pub obj: DynamicObject,
    _kind: PhantomData<M>,
}

impl<'de, M> Deserialize<'de> for Raw<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Raw {
            obj: DynamicObject::deserialize(d)?,
            _kind: PhantomData,
        })
    }
}

impl<M> Serialize for Raw<M> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.obj.serialize(s)
    }
}

impl<M: KindMarker> kube::Resource for Raw<M> {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        M::KIND.as_str().into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "larder.dev".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1alpha1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        M::PLURAL.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.obj.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.obj.metadata
    }
}

/// A cached resource of any kind.
pub trait HasObject: Send + Sync {
    fn obj(&self) -> &DynamicObject;
}

impl<M: Send + Sync> HasObject for Raw<M> {
    fn obj(&self) -> &DynamicObject {
        &self.obj
    }
}

pub type Cached = Arc<dyn HasObject>;
