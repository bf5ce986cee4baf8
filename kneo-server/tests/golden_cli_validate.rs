//! Issue 15's acceptance line for the spec language: for every spec of the extended recordings'
//! `cli_validate/` (190 specs, each run through kneo-serv 1.2's `kneo spec validate --json`),
//! the real `kneo spec validate --json` gives the same `valid` and the same error codes.
//!
//! A spec may differ only when it is one of [`ON_PURPOSE`], each listed with its recording in
//! docs/service_api.md ("Where kneo differs on purpose"); the test fails when such a spec stops
//! differing (so the list stays true) or when the docs lose it. Specs of a workflow type this
//! build does not execute yet must be refused with `E_WORKFLOW_TYPE_UNSUPPORTED` until its runner
//! exists ([`kneo_server::engine::plan::executed_by_this_build`]); then they are compared like
//! the rest.

// A test target: a failed unwrap fails the test with its message, which is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use kneo_server::engine::plan::executed_by_this_build;
use kneo_server::spec::model::{SpecEnum, WorkflowType};
use serde_json::Value;

/// How many specs the recordings hold (INDEX.md, D-cli); a partial copy must not pass.
const RECORDED_SPECS: usize = 190;

/// Specs where kneo's verdict differs from kneo-serv 1.2's on purpose: (cli_validate name,
/// recording number named in the docs, why).
const ON_PURPOSE: &[(&str, &str, &str)] = &[
    (
        "inline_gr_function_unknown_ref",
        "237",
        "a function guardrail whose ref names no component is refused at validation (kneo-serv validates it and every run answers 404)",
    ),
    (
        "inline_mem_unknown_policy",
        "312",
        "an unknown memory policy is refused at validation (kneo-serv validates it and every run answers 400)",
    ),
    (
        "inline_runtime_native_dummy",
        "329",
        "native mode with a provider that has no native runtime is refused at validation (kneo-serv validates it and every run answers 500)",
    ),
    (
        "inline_runtime_adapter_no_factory",
        "333",
        "adapter mode without an adapter factory or a fallback is refused at validation (kneo-serv: every run answers 500)",
    ),
    (
        "inline_shorthand_model_string_native",
        "354",
        "a string model under native mode is refused at validation (kneo-serv: every run answers 500)",
    ),
    (
        "inline_skills_outside_root_validate",
        "348",
        "a skill source outside the spec root is refused at validation (kneo-serv validates it and the run answers 422)",
    ),
    (
        "inline_skills_source_outside_root",
        "343",
        "a skill source outside the spec root is refused at validation; the run answers 422 spec_path_confined as kneo-serv's does",
    ),
    (
        "inline_skills_source_missing",
        "345",
        "a skill source that does not exist is refused at validation; the run answers 400 invalid_request as kneo-serv's does",
    ),
    (
        "inline_tools_rs_vocabulary_rejected",
        "384",
        "kneo keeps its own permission spellings (network, allow) beside kneo-serv's, with an I_SPEC_KNEO_EXTENSION note",
    ),
];

/// What one validator said: `valid` and the error codes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    valid: bool,
    errors: BTreeSet<String>,
}

fn verdict_of(report: &Value) -> Verdict {
    Verdict {
        valid: report["valid"].as_bool().unwrap_or(false),
        errors: report["diagnostics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|diagnostic| diagnostic["severity"] == "error")
            .filter_map(|diagnostic| diagnostic["code"].as_str().map(str::to_owned))
            .collect(),
    }
}

fn kneo_validate(dir: &Path, spec: &str) -> Value {
    let output = Command::new(kneo_testkit::bins::bin_path("kneo"))
        .args(["spec", "validate", spec, "--json"])
        .current_dir(dir)
        .env_remove("KNEO_SERV_SPEC_ROOT")
        .output()
        .expect("run kneo spec validate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| {
        panic!(
            "{spec}: not JSON ({error}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The workflow type a spec file declares, if it is one this build does not execute yet.
fn unexecuted_type(dir: &Path, spec: &str) -> Option<WorkflowType> {
    let text = std::fs::read_to_string(dir.join(spec)).ok()?;
    let document: Value = serde_json::from_str(&text).ok()?;
    let workflow_type = WorkflowType::from_name(document["workflow"]["type"].as_str()?)?;
    (!executed_by_this_build(workflow_type)).then_some(workflow_type)
}

/// The "Where kneo differs on purpose" section of docs/service_api.md.
fn on_purpose_section() -> String {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/service_api.md");
    let text = std::fs::read_to_string(&docs).expect("read docs/service_api.md");
    let start = text
        .find("## Where kneo differs on purpose")
        .expect("docs/service_api.md has a 'Where kneo differs on purpose' section");
    let rest = &text[start + 3..];
    let end = rest.find("\n## ").map_or(rest.len(), |end| end);
    rest[..end].to_string()
}

/// The recording numbers of the section's table (its second column, comma-separated).
fn listed_recordings(section: &str) -> BTreeSet<&str> {
    section
        .lines()
        .filter_map(|line| line.strip_prefix('|'))
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|cell| cell.split(','))
        .map(str::trim)
        .collect()
}

#[test]
fn kneo_validates_every_recorded_spec_as_kneo_serv_does() {
    let dir = kneo_testkit::golden::ext_dir();
    let listing = std::fs::read_dir(dir.join("cli_validate")).unwrap_or_else(|error| {
        panic!(
            "cannot read {:?}: {error}; set {} to the kneo-serv-1.2.0-ext recordings",
            dir.join("cli_validate"),
            kneo_testkit::golden::GOLDEN_EXT_DIR_ENV
        )
    });
    let mut files: Vec<_> = listing
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= RECORDED_SPECS,
        "only {} of the {RECORDED_SPECS} recorded specs are in {dir:?}: refusing to pass on a partial copy",
        files.len()
    );

    let docs = on_purpose_section();
    let mut agree = 0;
    let mut on_purpose = Vec::new();
    let mut pending = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        let name = file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .unwrap_or_default()
            .to_owned();
        let recording: Value =
            serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("JSON");
        let spec = recording["spec"].as_str().expect("spec path");
        // kneo-serv printed plain text instead of JSON for a version it cannot read.
        let expected = match recording.get("stdout_json") {
            Some(report) => verdict_of(report),
            None => Verdict {
                valid: false,
                errors: BTreeSet::from(["E_SPEC_VERSION".to_owned()]),
            },
        };
        let got = verdict_of(&kneo_validate(&dir, spec));
        let listed = ON_PURPOSE.iter().find(|(known, _, _)| *known == name);
        if let Some(workflow_type) = unexecuted_type(&dir, spec) {
            if got == expected {
                agree += 1;
            } else if got.errors == BTreeSet::from(["E_WORKFLOW_TYPE_UNSUPPORTED".to_owned()])
                && expected.valid
            {
                pending.push(format!("{name} ({workflow_type})"));
            } else {
                problems.push(format!("{name}: {workflow_type} is not executed yet, so kneo must say only E_WORKFLOW_TYPE_UNSUPPORTED; kneo-serv {expected:?}, kneo {got:?}"));
            }
            continue;
        }
        match (got == expected, listed) {
            (true, None) => agree += 1,
            (true, Some(_)) => problems.push(format!(
                "{name} no longer differs from kneo-serv: remove it from ON_PURPOSE and the docs"
            )),
            (false, None) => problems.push(format!(
                "{name} ({spec}): kneo-serv {expected:?}, kneo {got:?}"
            )),
            (false, Some((_, number, why))) => {
                if !listed_recordings(&docs).contains(*number) {
                    problems.push(format!(
                        "{name} differs on purpose ({why}) but docs/service_api.md does not list recording {number}"
                    ));
                }
                on_purpose.push(name.clone());
            }
        }
    }
    println!(
        "{} recorded specs: {agree} agree, {} differ on purpose ({}), {} wait for their workflow runner ({})",
        files.len(),
        on_purpose.len(),
        on_purpose.join(", "),
        pending.len(),
        pending.join(", ")
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(agree + on_purpose.len() + pending.len(), files.len());
}
