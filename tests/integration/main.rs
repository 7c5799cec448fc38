//! Every integration suite, one module per capability, in one test binary with the shared
//! harness (`tests/common`).
//!
//! One binary instead of one per suite: the harness is compiled and linked once, and it is
//! checked like any other code. Were each suite its own crate, each would use a different part
//! of the harness and warn about the rest; here an item no suite uses is dead code, and goes.
//!
//! Run one suite with `cargo test --test integration e2e_webhook::`.

#[path = "../common/mod.rs"]
mod common;

mod address_policy;
mod apiserver_selftest;
mod e2e_platforms;
mod e2e_pull_secrets;
mod e2e_webhook;
mod explain_cli;
mod explain_cluster;
mod harness_selftest;
mod keyring_conformance;
mod node_credentials;
mod nodes_watch;
mod platform_conformance;
mod platforms;
mod pull_secrets;
mod reasons;
mod reference_conformance;
mod registry_client;
mod registry_quirks;
mod server_tls;
mod webhook_http;
