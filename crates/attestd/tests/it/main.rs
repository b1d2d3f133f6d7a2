//! The integration tests that need no process of their own, in one binary: one link and one
//! copy of the harness instead of one per file (a third of the test build's time went to
//! those). The tests that time the server or kill it (connections, serve_process,
//! crash_recovery) stay binaries of their own, run alone.

#[path = "../apple/mod.rs"]
mod apple;
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod admin_filters;
mod android;
mod android_revocation;
mod api_flow;
mod api_rejections;
mod cli_android;
mod cli_safetynet;
mod cli_vectors;
mod concurrency;
mod danger_roots;
mod database_files;
mod device_check;
mod http_answers;
mod lifecycle;
mod linking;
mod openapi_contract;
mod policy_modes;
mod rate_limits;
mod readiness;
mod receipt_refresh;
mod risk_factors;
mod secrets_at_rest;
mod signing_keys;
mod simulate_cli;
mod webhooks;
