//! The Kubernetes API server of gitbacked: what kube-apiserver does, over any
//! [`Storage`](gitbacked_core::Storage).
//!
//! - [`api`]: the semantics (get, list, watch, create, update, patch, apply, delete, strategic
//!   merge, field ownership, tables, discovery, OpenAPI), as [`Api`].
//! - [`http`]: the axum [`Router`](axum::Router) mapping Kubernetes REST paths onto the [`Api`],
//!   with health, metrics and the git hosts' webhook ([`http::router`]).
//! - [`finalizers`]: the finalizers the API itself sets (orphan and foreground deletion, CRD cleanup).
//! - [`crd_finalizer`]: deletes the custom resources of a CRD being deleted, then the CRD.
//! - [`namespace_finalizer`]: deletes the objects of a Namespace being deleted, then the Namespace.

pub mod api;
mod controller;
pub mod crd_finalizer;
pub mod finalizers;
pub mod http;
pub mod namespace_finalizer;

pub use api::Api;
pub use http::{Endpoints, router};
