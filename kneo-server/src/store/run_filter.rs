//! The `WHERE` clause of a run listing, built once for both backends: each backend names its
//! placeholders and how it reads a field out of the run document, this module decides which
//! predicates apply. The page and its `total` use the same clause, so the count cannot drift from
//! the page.

use super::{RunFilter, RunStatus};

/// A value bound to one placeholder of the clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Text(String),
    /// A `created_at` bound in the stored timestamp form (Postgres binds it as a timestamp).
    Timestamp(String),
}

/// How one backend spells the parts of the clause.
pub struct Dialect {
    /// The placeholder for the `n`-th bound value (1-based): `?4`, `$4`.
    pub placeholder: fn(usize) -> String,
    /// True when the run's `error` is set (not absent, not JSON null).
    pub has_error: &'static str,
    /// The run's `output_text`, as text or NULL.
    pub output_text: &'static str,
    /// The run's `error.message`, as text or NULL.
    pub error_message: &'static str,
    /// `contains(haystack, needle)`: true when the lower-cased haystack holds the needle.
    pub contains: fn(&str, &str) -> String,
    /// Lower-cases the search text the way the backend's `lower()` lower-cases the haystack.
    pub fold: fn(&str) -> String,
}

/// `WHERE ...` (or an empty string) and the values it binds, numbered from `first`.
pub fn where_clause(
    status: Option<RunStatus>,
    filter: &RunFilter,
    first: usize,
    dialect: &Dialect,
) -> (String, Vec<Bound>) {
    let mut clauses = Vec::new();
    let mut bound = Vec::new();
    let mut bind = |value: Bound| {
        bound.push(value);
        (dialect.placeholder)(first + bound.len() - 1)
    };
    if let Some(status) = status {
        clauses.push(format!(
            "status = {}",
            bind(Bound::Text(status.as_str().into()))
        ));
    }
    let equal_columns = [
        ("workflow_kind", &filter.workflow_kind),
        ("workflow_name", &filter.workflow_name),
        ("session_id", &filter.session_id),
    ];
    for (column, value) in equal_columns {
        if let Some(value) = value {
            clauses.push(format!("{column} = {}", bind(Bound::Text(value.clone()))));
        }
    }
    match filter.has_error {
        Some(true) => clauses.push(dialect.has_error.to_string()),
        Some(false) => clauses.push(format!("NOT ({})", dialect.has_error)),
        None => {}
    }
    if let Some(after) = &filter.created_after {
        clauses.push(format!(
            "created_at >= {}",
            bind(Bound::Timestamp(after.clone()))
        ));
    }
    if let Some(before) = &filter.created_before {
        clauses.push(format!(
            "created_at <= {}",
            bind(Bound::Timestamp(before.clone()))
        ));
    }
    if let Some(q) = &filter.q {
        let needle = bind(Bound::Text((dialect.fold)(q)));
        clauses.push(format!(
            "({} OR {})",
            (dialect.contains)(dialect.output_text, &needle),
            (dialect.contains)(dialect.error_message, &needle)
        ));
    }
    if clauses.is_empty() {
        (String::new(), bound)
    } else {
        (format!("WHERE {}", clauses.join(" AND ")), bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect() -> Dialect {
        Dialect {
            placeholder: |n| format!("?{n}"),
            has_error: "err IS NOT NULL",
            output_text: "out",
            error_message: "msg",
            contains: |haystack, needle| format!("instr(lower({haystack}), {needle}) > 0"),
            fold: str::to_ascii_lowercase,
        }
    }

    #[test]
    fn no_filter_is_no_clause() {
        let (clause, bound) = where_clause(None, &RunFilter::default(), 4, &dialect());
        assert_eq!(clause, "");
        assert!(bound.is_empty());
    }

    #[test]
    fn filters_are_and_combined_and_numbered_from_first() {
        let filter = RunFilter {
            session_id: Some("s".into()),
            has_error: Some(false),
            created_after: Some("2026-01-01T00:00:00.000000+00:00".into()),
            q: Some("ZeBra".into()),
            ..RunFilter::default()
        };
        let (clause, bound) = where_clause(Some(RunStatus::Completed), &filter, 4, &dialect());
        assert_eq!(
            clause,
            "WHERE status = ?4 AND session_id = ?5 AND NOT (err IS NOT NULL) AND created_at >= ?6 \
             AND (instr(lower(out), ?7) > 0 OR instr(lower(msg), ?7) > 0)"
        );
        assert_eq!(bound.len(), 4);
        assert_eq!(bound[3], Bound::Text("zebra".into()));
    }
}
