//! Integration tests: real git (bare remotes in temp dirs, the git CLI as a person), kube-rs
//! against the in-process client.

mod admission;
mod apply;
mod builtins;
mod citizenship;
mod core;
mod example;
mod faults;
mod gc;
mod http;
mod leases;
mod push;
mod remotes;
mod repo;
mod safety;
mod semantics;
mod signing;
mod snapshots;
mod support;
mod watch;
mod webhooks;
