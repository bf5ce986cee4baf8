//! kneo-serv 1.2 deployments: backup, verify, restore and import into kneo-server, on stores
//! built from fixtures recorded from the real kneo-serv 1.2.0 (`tests/fixtures/kneo-serv-1.2/`):
//! its SQLite file with its continuation files, and a `pg_dump` of its Postgres database loaded
//! into a real Postgres cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixtures;
mod import;
mod round_trip;
