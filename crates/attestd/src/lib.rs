//! attestd as a library: the HTTP server, so that integration tests run it in-process.
//!
//! The binary (`src/main.rs`) adds the command line around it.
#![forbid(unsafe_code)]

pub mod server;
