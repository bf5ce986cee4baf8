//! Helpers shared by the black-box test binaries of this package. Their HTTP client is
//! [`kneo_testkit::http::Api`], shared with the other crates' tests; the golden replay harness
//! is [`replay`].

pub mod replay;

/// The `(run_id, step_id)` of each line of an invocation log written by the
/// `kneo.builtin.record_invocation` function (`run_id step_id attempt`), in order. `log` names
/// the file in a failure.
pub fn parse_invocations(log: &std::path::Path, text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| {
            let mut fields = line.split_whitespace();
            match (fields.next(), fields.next()) {
                (Some(run_id), Some(step_id)) => (run_id.to_string(), step_id.to_string()),
                _ => panic!("malformed invocation log line in {log:?}: {line:?}"),
            }
        })
        .collect()
}
