//! The Tenantry client, generated at build time from `openapi/openapi.json` by
//! progenitor (see `build.rs`).
#![allow(
    missing_docs,
    unused,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    reason = "generated code"
)]

include!(concat!(env!("OUT_DIR"), "/codegen.rs"));
