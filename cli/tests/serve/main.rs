//! End-to-end tests of `gitbacked serve`: a real server process on a temp-dir git remote, driven by
//! the real kubectl and the real Python `kubernetes` client, with the results checked both in the
//! clients' output and in the remote repository through the git CLI.

mod access;
mod http;
mod kubectl;
mod protobuf;
mod python;
mod soak;
mod support;
mod tools;
