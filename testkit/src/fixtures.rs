//! Spec files the tests run: the two of the golden recording (`specs/hello.yaml`,
//! `specs/approval.yaml`) and a few more that exercise failures and timeouts.

use std::path::Path;

/// One agent on the `dummy` provider (golden 08).
pub const HELLO: &str = "version: v1
agent:
  name: hello
  system_prompt: Say hello.
  model: {provider: dummy, name: demo-model}
  strategy: {type: simple}
";

/// The approval workflow of the golden recording (spec_format.md § 6.1).
pub const APPROVAL: &str = "version: v1
agent:
  name: approval-root
  system_prompt: Root approval agent.
  model: {provider: dummy, name: demo-model}
  strategy: {type: simple}
  runtime_preferences: {preferred_mode: bridge, allowed_modes: [bridge]}
workflow:
  type: sequential
  name: approval-workflow
  steps:
    - {id: draft,   kind: function, ref: draft_report}
    - {id: approve, kind: human,    ref: approval-reviewer}
    - {id: publish, kind: function, ref: publish_report}
components:
  functions:
    draft_report:   {implementation: examples.human_functions.draft_report}
    publish_report: {implementation: examples.human_functions.publish_report}
  humans:
    approval-reviewer:
      description: Please approve or edit the draft report.
      assignee: reviewer@example.com
      timeout_seconds: 86400
      on_timeout: escalate
";

/// A workflow whose second step always fails (`on_error: fail`).
pub const FAILING: &str = "version: v1
agent: {name: failing-root, model: {provider: dummy, name: m}}
workflow:
  type: sequential
  name: failing-workflow
  steps:
    - {id: first, kind: function, ref: echo}
    - {id: boom,  kind: function, ref: fail}
components:
  functions:
    echo: {implementation: kneo.builtin.echo}
    fail: {implementation: kneo.builtin.fail}
";

/// Three steps that each record their invocation (crash tests count them).
pub const COUNTED: &str = "version: v1
agent: {name: counted-root, model: {provider: dummy, name: m}}
workflow:
  type: sequential
  name: counted-workflow
  steps:
    - {id: one,   kind: function, ref: record}
    - {id: two,   kind: function, ref: record}
    - {id: three, kind: function, ref: record}
components:
  functions:
    record: {implementation: kneo.builtin.record_invocation}
";

/// One step that sleeps as many seconds as its input says.
pub const SLEEPY: &str = "version: v1
agent: {name: sleepy-root, model: {provider: dummy, name: m}}
workflow:
  type: sequential
  name: sleepy-workflow
  steps:
    - {id: nap, kind: function, ref: sleep, timeout_seconds: 1}
components:
  functions:
    sleep: {implementation: kneo.builtin.sleep}
";

/// Writes every fixture under `<dir>/specs/`.
pub fn write_specs(dir: &Path) {
    let specs = dir.join("specs");
    std::fs::create_dir_all(&specs).unwrap_or_else(|error| {
        panic!("cannot create the spec fixture directory {specs:?}: {error}")
    });
    for (name, text) in [
        ("hello.yaml", HELLO),
        ("approval.yaml", APPROVAL),
        ("failing.yaml", FAILING),
        ("counted.yaml", COUNTED),
        ("sleepy.yaml", SLEEPY),
    ] {
        let path = specs.join(name);
        std::fs::write(&path, text)
            .unwrap_or_else(|error| panic!("cannot write the spec fixture {path:?}: {error}"));
    }
}

/// Lays out `dir` as the spec root the ext recordings were made in (their INDEX.md
/// preconditions): the recorded `specs/` tree (base specs, `specs/ext/`, `specs/inline/`) and the
/// `ext-catalog` skill bundle at `.agents/skills/ext-catalog`.
pub fn write_golden_ext_specs(dir: &Path) {
    let recorded = crate::golden::ext::specs_dir();
    copy_tree(&recorded, &dir.join("specs"));
    copy_tree(
        &recorded.join("ext/catalog/ext-catalog"),
        &dir.join(".agents/skills/ext-catalog"),
    );
}

/// Copies the directory `from` into `to` (created as needed), files and subdirectories.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {to:?}: {e}"));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {from:?}: {e}"));
    for entry in entries.flatten() {
        let source = entry.path();
        let target = to.join(entry.file_name());
        if source.is_dir() {
            copy_tree(&source, &target);
        } else {
            std::fs::copy(&source, &target)
                .unwrap_or_else(|e| panic!("copy {source:?} to {target:?}: {e}"));
        }
    }
}
