//! Plain-text rendering of a [`Report`]: the tree with ✓/!/✗, section numbers, and the fix steps
//! of every verdict that is not ok. Used by `kneo-ops triage` and stored in capture bundles.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{Level, Report, Verdict};

/// What to include.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Also list the children that are ok (e.g. all eight readiness checks).
    pub show_ok_children: bool,
    /// Print the runbook fix steps under each non-ok verdict that has a section.
    pub fix_steps: bool,
    /// At most this many lines of fix steps per verdict.
    pub max_fix_lines: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            show_ok_children: false,
            fix_steps: true,
            max_fix_lines: 24,
        }
    }
}

/// The report as text, one line per verdict, indented by depth.
pub fn render_text(report: &Report, options: &RenderOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kneo-ops triage of {} at {}",
        report.target,
        report.observed_at.format("%Y-%m-%d %H:%M:%SZ")
    );
    let _ = writeln!(
        out,
        "Overall: {} (exit {})",
        report.health.as_str().to_uppercase(),
        report.exit_code()
    );
    let mut shown_sections = BTreeSet::new();
    for stage in &report.stages {
        out.push('\n');
        render_verdict(&mut out, stage, 0, options, &mut shown_sections);
    }
    let findings = report.findings();
    if !findings.is_empty() {
        let _ = writeln!(
            out,
            "\nStart with: {}{}",
            findings[0].title,
            findings[0]
                .section_label()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        );
    }
    out
}

/// `shown_sections` keeps a section's fix steps from being printed twice in one report.
fn render_verdict(
    out: &mut String,
    verdict: &Verdict,
    depth: usize,
    options: &RenderOptions,
    shown_sections: &mut BTreeSet<String>,
) {
    let indent = "    ".repeat(depth);
    let prefix = if depth == 0 {
        format!("{} ", verdict.stage)
    } else {
        String::new()
    };
    let section = verdict
        .section_label()
        .map(|s| format!("  [{s}]"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "{indent}{} {prefix}{}{section}",
        verdict.level.symbol(),
        verdict.title
    );
    if !verdict.detail.is_empty() {
        let _ = writeln!(out, "{indent}    {}", verdict.detail);
    }
    let is_leaf_finding = verdict.level != Level::Ok
        && verdict
            .children
            .iter()
            .all(|child| child.level == Level::Ok);
    if options.fix_steps
        && is_leaf_finding
        && let Some(section) = &verdict.section
    {
        if shown_sections.insert(section.clone()) {
            render_fix(out, verdict, &format!("{indent}    "), options);
        } else {
            let _ = writeln!(
                out,
                "{indent}    Fix: see {} above.",
                verdict.section_label().unwrap_or_default()
            );
        }
    }
    for child in &verdict.children {
        if child.level != Level::Ok || options.show_ok_children {
            render_verdict(out, child, depth + 1, options, shown_sections);
        }
    }
}

fn render_fix(out: &mut String, verdict: &Verdict, indent: &str, options: &RenderOptions) {
    let label = verdict.section_label().unwrap_or_default();
    match &verdict.runbook {
        Some(section) => {
            let _ = writeln!(out, "{indent}Fix ({label} {}):", section.title);
            let steps = section.fix_steps();
            let lines: Vec<&str> = steps.lines().collect();
            for line in lines.iter().take(options.max_fix_lines) {
                if line.trim().is_empty() {
                    out.push('\n');
                } else {
                    let _ = writeln!(out, "{indent}  {line}");
                }
            }
            if lines.len() > options.max_fix_lines {
                let _ = writeln!(
                    out,
                    "{indent}  … {} more line(s) in docs/troubleshooting.md {label}",
                    lines.len() - options.max_fix_lines
                );
            }
        }
        None if crate::runbook::normalize_number(
            verdict.section.as_deref().unwrap_or_default(),
        )
        .is_some() =>
        {
            let _ = writeln!(
                out,
                "{indent}See docs/troubleshooting.md {label} (the runbook text is not embedded in this build)."
            );
        }
        None => {}
    }
}
