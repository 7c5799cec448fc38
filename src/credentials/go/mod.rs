//! The parts of Go's standard library whose behaviour the kubelet inherits.
//!
//! The kubelet reads pull secrets with `encoding/json` and `encoding/base64`, parses registry
//! keys with `net/url` and matches their host labels with `path/filepath.Match`. Where Go
//! accepts, rejects or decodes differently from the usual Rust crates, the difference decides
//! which credentials a pod gets, so each submodule follows the Go package it is named after,
//! reduced to what the kubelet calls. The kubelet's own rules built on them live in
//! `dockerconfig` and `keyring`.

pub mod base64;
pub mod filepath;
pub mod json;
pub mod url;
pub mod utf8;
