//! kneo-client: wire types and HTTP client.
