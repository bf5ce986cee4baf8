//! kneo-ops
