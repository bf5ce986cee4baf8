//! Plain-text rendering of a [`Report`]: the tree with ✓/!/✗ (· for notes, – for what was not
//! judged), section numbers, and the fix steps of every finding, rendered from the runbook's
//! markdown and wrapped. Used by `kneo-ops triage` and stored in capture bundles.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::{Health, Kind, Report, Verdict, exit};
use crate::runbook;

/// What to include.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Also list the children that are ok (e.g. all eight readiness checks).
    pub show_ok_children: bool,
    /// Print the runbook fix steps under each finding that has a section.
    pub fix_steps: bool,
    /// At most this many lines of fix steps per verdict (after wrapping).
    pub max_fix_lines: usize,
    /// Wrap text at this many columns.
    pub width: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            show_ok_children: false,
            fix_steps: true,
            max_fix_lines: 30,
            width: 100,
        }
    }
}

/// What the exit code means, in words.
fn exit_meaning(report: &Report) -> &'static str {
    match (report.exit_code, report.health) {
        (exit::CANNOT_JUDGE, Health::Unknown) => {
            "cannot judge from here: fix the tool's access first"
        }
        (exit::CANNOT_JUDGE, _) => "partly judged: fix the tool's access first",
        _ => "",
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
    let meaning = exit_meaning(report);
    let _ = writeln!(
        out,
        "Overall: {} (exit {}){}",
        report.health.as_str().to_uppercase(),
        report.exit_code,
        if meaning.is_empty() {
            String::new()
        } else {
            format!(": {meaning}")
        }
    );
    let mut shown_sections = BTreeSet::new();
    for group in report.groups() {
        out.push('\n');
        render_verdict(&mut out, group, 0, options, &mut shown_sections);
    }
    if let Some(start) = &report.start_with {
        let _ = writeln!(out, "\nStart with: {start}");
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
    let prefix = if depth == 0 && verdict.stage > 0 {
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
        verdict.symbol(),
        verdict.title
    );
    let detail_indent = format!("{indent}    ");
    if !verdict.detail.is_empty() {
        for line in wrap(
            &verdict.detail,
            options.width.saturating_sub(detail_indent.len()),
        ) {
            let _ = writeln!(out, "{detail_indent}{line}");
        }
    }
    if options.fix_steps
        && verdict.kind != Kind::Note
        && verdict.is_finding()
        && let Some(section) = &verdict.section
    {
        if shown_sections.insert(section.clone()) {
            render_fix(out, verdict, &detail_indent, options);
        } else {
            let _ = writeln!(
                out,
                "{detail_indent}Fix: see {} above.",
                verdict.section_label().unwrap_or_default()
            );
        }
    }
    for child in &verdict.children {
        let shown =
            child.level != super::Level::Ok || child.kind == Kind::Note || options.show_ok_children;
        if shown {
            render_verdict(out, child, depth + 1, options, shown_sections);
        }
    }
}

fn render_fix(out: &mut String, verdict: &Verdict, indent: &str, options: &RenderOptions) {
    let label = verdict.section_label().unwrap_or_default();
    match &verdict.runbook {
        Some(section) => {
            let _ = writeln!(
                out,
                "{indent}Fix ({label} {}):",
                runbook::plain_inline(&section.title)
            );
            let text = runbook::reflow_markdown(&section.fix_steps());
            let width = options.width.saturating_sub(indent.len() + 2);
            let lines: Vec<String> = text
                .lines()
                .flat_map(|line| {
                    if line.trim().is_empty() {
                        vec![String::new()]
                    } else {
                        wrap_keeping_indent(line, width)
                    }
                })
                .collect();
            for line in lines.iter().take(options.max_fix_lines) {
                if line.is_empty() {
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
        None if runbook::normalize_number(verdict.section.as_deref().unwrap_or_default())
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

/// Words of `text` in lines of at most `width` columns (a longer word gets a line of its own).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(20);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// [`wrap`], with continuation lines indented under the text of a list item (`1. `, `- `).
fn wrap_keeping_indent(line: &str, width: usize) -> Vec<String> {
    let leading = line.len() - line.trim_start().len();
    let body = line.trim_start();
    let marker = body
        .split_once(' ')
        .filter(|(first, _)| {
            *first == "-" || *first == "*" || first.trim_end_matches('.').parse::<u32>().is_ok()
        })
        .map(|(first, _)| first.chars().count() + 1)
        .unwrap_or(0);
    let hang = " ".repeat(leading + marker);
    let wrapped = wrap(body, width.saturating_sub(leading + marker));
    wrapped
        .into_iter()
        .enumerate()
        .map(|(index, text)| {
            if index == 0 {
                format!("{}{text}", " ".repeat(leading))
            } else {
                format!("{hang}{text}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_wraps_at_words_and_list_items_hang() {
        assert_eq!(
            wrap(
                "one two three four five six seven eight nine ten eleven",
                20
            ),
            [
                "one two three four",
                "five six seven eight",
                "nine ten eleven"
            ]
        );
        let item = wrap_keeping_indent(
            "1. `connection_refused`, `timeout`: Postgres is down, or the host is wrong.",
            30,
        );
        assert_eq!(item[0], "1. `connection_refused`,");
        assert!(item[1].starts_with("   "), "{item:?}");
    }
}
