//! The core of gitbacked, with no I/O: what the API semantics and the storage behind them share.
//!
//! - Objects: [`ObjectKey`], [`StoredObject`] and the metadata derived for them ([`object`]).
//! - Types: the [`Registry`] of built-in kinds and CRDs, and their OpenAPI [`schema`]s, with which
//!   custom resources are pruned, defaulted and validated (CEL rules included).
//! - The objects kube-apiserver creates for itself ([`bootstrap`]), and the [`defaults`] it gives
//!   built-in objects.
//! - Changes: [`WatchEvent`]s and the [`WatchLog`] that watches resume from ([`watch`]).
//! - Failures: [`StatusError`], a `meta/v1 Status` with a [`Reason`] ([`status`]), and the
//!   [`FieldError`]s of an invalid object ([`field`]).
//! - The contract: [`Storage`], and [`MemoryStorage`], a second backend that keeps objects in memory.
//! - The format of files: documents in YAML and JSON ([`document`]).
//! - Validation: names, labels and the rules of built-in kinds ([`validation`]), label and field
//!   [`selector`]s.
//! - Limits: what a request may carry and the reader's budget ([`limits`]).
//! - Offline checks of a tree of files, as `gitbacked check` runs them ([`check`]).
//! - Readiness: [`Health`] checks the storage reports.
//! - Utilities: an injectable [`Clock`], stable uids ([`uid`]), resource [`quantity`]s.

pub mod bootstrap;
pub mod check;
pub mod clock;
pub mod defaults;
pub mod document;
pub mod field;
pub mod health;
pub mod limits;
pub mod memory;
pub mod object;
pub mod quantity;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod status;
pub mod storage;
pub mod uid;
pub mod validation;
pub mod watch;

pub use clock::{Clock, SystemClock};
pub use field::FieldError;
pub use health::{Health, HealthCheck};
pub use memory::{Limits, MemoryStorage};
pub use object::{Derived, Location, ObjectKey, StoredObject};
pub use registry::{GroupKind, Home, Registry, ResourceType};
pub use status::{ApiResult, Reason, StatusError};
pub use storage::{Mutation, Storage, Write, WriteOutcome};
pub use watch::{EventType, Expired, WatchEvent, WatchEvents, WatchLog};
