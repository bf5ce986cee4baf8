//! Black-box API tests: the real `kneo` binary on loopback, on the embedded store and on a real
//! throwaway Postgres.

mod golden;
