//! The finalizers the API sets itself when an object is deleted with a propagation policy; the
//! garbage collector carries them out.

/// The finalizer of an owner whose dependents are being orphaned (`propagationPolicy: Orphan`).
pub const ORPHAN: &str = "orphan";
/// The finalizer of an owner waiting for its dependents to be deleted (`propagationPolicy: Foreground`).
pub const FOREGROUND: &str = "foregroundDeletion";
