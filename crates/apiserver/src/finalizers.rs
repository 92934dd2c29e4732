//! The finalizers the API sets itself when an object is deleted: with a propagation policy (the
//! garbage collector carries them out), and on every CustomResourceDefinition (the CRD finalizer
//! deletes its custom resources first).

/// The finalizer of an owner whose dependents are being orphaned (`propagationPolicy: Orphan`).
pub const ORPHAN: &str = "orphan";
/// The finalizer of an owner waiting for its dependents to be deleted (`propagationPolicy: Foreground`).
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of a CustomResourceDefinition whose custom resources are being deleted.
pub const CUSTOM_RESOURCE_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";
