//! The fields every spec-taking request shares (`spec` or `spec_path`, `environment`, `overlays`,
//! `overrides`), and the `skills` overlay of a run, read strictly into
//! [`crate::platform::layering`] terms.

use serde_json::{Value, json};

use super::error::{ApiError, ValidationIssue};
use super::input::ObjectReader;
use crate::config::Limits;
use crate::platform::layering::SkillsOverlay;
use crate::platform::specs::{SpecRequest, SpecSource};

/// The longest environment name kneo-serv accepts.
pub const MAX_ENVIRONMENT_CHARS: usize = 128;

/// The shared fields as read, before the rule that a spec must be given is applied.
pub struct SpecFields {
    pub spec: Option<Value>,
    pub spec_path: Option<String>,
    pub environment: Option<String>,
    pub overlays: Vec<String>,
    pub overrides: serde_json::Map<String, Value>,
}

impl SpecFields {
    /// Reads the shared fields; a path with `..` or `~` is a native 422 (like kneo-serv's model
    /// validator) before anything touches the file system.
    pub fn read(reader: &mut ObjectReader, limits: &Limits) -> SpecFields {
        let spec = reader
            .optional_object("spec", Some(limits.max_inline_spec_bytes))
            .map(Value::Object);
        let spec_path = reader.optional_string("spec_path", Some(limits.max_path_chars));
        if let Some(path) = &spec_path
            && let Some(problem) = path_shape_problem(path)
        {
            reader.push_issue(value_error("spec_path", problem, json!(path)));
        }
        let environment = reader.optional_string("environment", Some(limits.max_path_chars));
        let overlays = reader.optional_string_list("overlays").unwrap_or_default();
        if let Some(problem) = overlays.iter().find_map(|path| path_shape_problem(path)) {
            reader.push_issue(value_error("overlays", problem, json!(overlays)));
        }
        let overrides = reader
            .optional_object("overrides", Some(limits.max_overrides_bytes))
            .unwrap_or_default();
        SpecFields {
            spec,
            spec_path,
            environment,
            overlays,
            overrides,
        }
    }

    /// The request, or `400 invalid_request` with `missing` when neither `spec` nor `spec_path`
    /// was given (the routes word that message differently).
    pub fn into_request(self, missing: &str) -> Result<SpecRequest, ApiError> {
        let source = match (self.spec, self.spec_path) {
            (Some(spec), None) => SpecSource::Inline(spec),
            (None, Some(path)) => SpecSource::Path(path),
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid_request(
                    "Give either `spec` or `spec_path`, not both.",
                ));
            }
            (None, None) => return Err(ApiError::invalid_request(missing)),
        };
        Ok(SpecRequest {
            source,
            environment: self.environment,
            overlays: self.overlays,
            overrides: self.overrides,
        })
    }
}

/// Why a caller's path may not even be looked up: kneo-serv's wording, which names `spec_path`
/// for overlays too.
fn path_shape_problem(path: &str) -> Option<&'static str> {
    if path.starts_with('~') {
        return Some("spec_path must not use '~' home-directory expansion.");
    }
    path.split(['/', '\\'])
        .any(|segment| segment == "..")
        .then_some("spec_path must not contain parent-directory ('..') segments.")
}

fn value_error(field: &str, problem: &str, input: Value) -> ValidationIssue {
    ValidationIssue {
        kind: "value_error",
        loc: vec![json!("body"), json!(field)],
        msg: format!("Value error, {problem}"),
        input: Some(input),
        ctx: Some(json!({"error": {}})),
    }
}

/// The `skills` field of a run: `{add: [names], disable: [names]}`, nothing else.
pub fn read_skills_overlay(reader: &mut ObjectReader) -> Option<SkillsOverlay> {
    let value = reader.optional_value("skills")?;
    let Value::Object(fields) = value else {
        reader.push_issue(ValidationIssue {
            kind: "model_type",
            loc: vec![json!("body"), json!("skills")],
            msg: "Input should be a valid dictionary or instance of SkillsOverlay".into(),
            input: Some(value),
            ctx: Some(json!({"class_name": "SkillsOverlay"})),
        });
        return None;
    };
    let mut overlay = SkillsOverlay::default();
    let mut valid = true;
    for (key, value) in fields {
        let loc = vec![json!("body"), json!("skills"), json!(key)];
        let target = match key.as_str() {
            "add" => &mut overlay.add,
            "disable" => &mut overlay.disable,
            _ => {
                reader.push_issue(ValidationIssue {
                    kind: "extra_forbidden",
                    loc,
                    msg: "Extra inputs are not permitted".into(),
                    input: Some(value),
                    ctx: None,
                });
                valid = false;
                continue;
            }
        };
        match value {
            Value::Null => {}
            Value::Array(items) => {
                for (index, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(name) => target.push(name),
                        other => {
                            let mut loc = loc.clone();
                            loc.push(json!(index));
                            reader.push_issue(ValidationIssue {
                                kind: "string_type",
                                loc,
                                msg: "Input should be a valid string".into(),
                                input: Some(other),
                                ctx: None,
                            });
                            valid = false;
                        }
                    }
                }
            }
            other => {
                reader.push_issue(ValidationIssue {
                    kind: "list_type",
                    loc,
                    msg: "Input should be a valid list".into(),
                    input: Some(other),
                    ctx: None,
                });
                valid = false;
            }
        }
    }
    valid.then_some(overlay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_home_paths_are_refused_by_shape() {
        assert!(path_shape_problem("specs/../../etc/passwd").is_some());
        assert!(path_shape_problem("../x.yaml").is_some());
        assert!(path_shape_problem("~/x.yaml").is_some());
        assert!(path_shape_problem("specs/a..b.yaml").is_none());
        assert!(path_shape_problem("/etc/hostname").is_none());
    }

    #[test]
    fn a_skills_overlay_takes_add_and_disable_only() {
        let mut reader = ObjectReader::new(
            serde_json::from_value(json!({"skills": {"add": ["a"], "disable": ["b"]}}))
                .expect("object"),
        );
        let overlay = read_skills_overlay(&mut reader).expect("overlay");
        assert_eq!(overlay.add, ["a"]);
        assert_eq!(overlay.disable, ["b"]);
        assert!(reader.finish().is_ok());

        let mut reader = ObjectReader::new(
            serde_json::from_value(json!({"skills": {"enable": ["a"]}})).expect("object"),
        );
        assert!(read_skills_overlay(&mut reader).is_none());
        assert_eq!(reader.finish().err().map(|e| e.code()), Some("validation"));
    }
}
