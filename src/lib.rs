//! gitbacked: the Kubernetes API served from a git repository.

pub mod git;
pub mod layout;
pub mod registry;
pub mod store;
