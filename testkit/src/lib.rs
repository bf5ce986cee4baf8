//! Test harness shared by the kneo crates: throwaway PostgreSQL, workspace binaries, golden files.
//!
//! Everything here is meant for tests only. Functions panic with a message that names what
//! failed and how to fix it, because a test harness that returns errors just moves the
//! `unwrap` into every test.
//!
//! - [`postgres`]: a real PostgreSQL cluster from the machine's own server binaries
//!   (no Docker), one per test process via [`postgres::shared_cluster`], one database per test.
//! - [`certificates`]: throwaway CA, server and client certificates (openssl) for TLS tests.
//! - [`bins`]: paths to the workspace's built binaries, for black-box tests.
//! - [`golden`]: the recorded request/response pairs of kneo-serv 1.2.0.
//! - [`shape`]: compares a real JSON response with a golden one by structure, not by value.
//! - [`server`]: a real `kneo service serve` process; [`fixtures`]: the spec files tests run.
//! - [`http`]: the HTTP client tests talk to a server with (status, headers and body together).
//! - [`process`]: watches a process the code under test started, by pid.
//! - [`workspace`]: finds the workspace root that the other modules resolve paths from.

pub mod bins;
pub mod certificates;
pub mod fixtures;
pub mod golden;
pub mod http;
pub mod postgres;
pub mod process;
pub mod server;
pub mod shape;
pub mod workspace;
