//! The runbook, embedded at build time: `docs/troubleshooting.md` (numbered `§ N` / `§ N.M`
//! sections) and `docs/incident_response.md` (`## Title` sections, looked up by slug).
//!
//! The text is compiled in, so triage can show the fix steps offline (over SSH, on a host with no
//! docs). When a file was missing at build time its text is empty and every lookup answers `None`.

use std::sync::LazyLock;

use serde::Serialize;

/// `docs/troubleshooting.md` as it was when this binary was built.
pub const TROUBLESHOOTING_MD: &str = include_str!(concat!(env!("OUT_DIR"), "/troubleshooting.md"));
/// `docs/incident_response.md` as it was when this binary was built.
pub const INCIDENT_RESPONSE_MD: &str =
    include_str!(concat!(env!("OUT_DIR"), "/incident_response.md"));

/// A numbered section of the troubleshooting guide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// `2` or `2.2` (no `§`).
    pub number: String,
    pub title: String,
    /// Everything up to the next heading of the same or a higher level (a `§ N` body includes
    /// its `§ N.M` subsections), trimmed.
    pub body: String,
}

impl Section {
    /// The fix steps: the part of the body from its `Fix` label to the next label. A section
    /// without one (a chapter such as `§ 2`) gives its introduction and the list of its
    /// subsections instead.
    pub fn fix_steps(&self) -> String {
        if let Some(fix) = extract_fix(&self.intro()) {
            return fix;
        }
        let subsections = self.subsection_titles();
        if subsections.is_empty() {
            return self.body.clone();
        }
        let mut text = self.intro();
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str("Read the entry that matches:\n");
        for (number, title) in subsections {
            text.push_str(&format!("- § {number} {title}\n"));
        }
        text.trim_end().to_string()
    }

    /// The body up to its first heading.
    pub fn intro(&self) -> String {
        let lines: Vec<&str> = self.body.lines().collect();
        let end = headings(&lines)
            .first()
            .map(|heading| heading.line_index)
            .unwrap_or(lines.len());
        lines[..end].join("\n").trim().to_string()
    }

    /// `(number, title)` of the numbered sections inside this one.
    pub fn subsection_titles(&self) -> Vec<(String, String)> {
        parse_troubleshooting(&self.body)
            .into_iter()
            .map(|section| (section.number, section.title))
            .collect()
    }
}

/// A `## Title` section of the incident-response page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentSection {
    /// GitHub-style anchor of the title, e.g. `readyz-failure-matrix`.
    pub slug: String,
    pub title: String,
    pub body: String,
}

static TROUBLESHOOTING: LazyLock<Vec<Section>> =
    LazyLock::new(|| parse_troubleshooting(TROUBLESHOOTING_MD));
static INCIDENT_RESPONSE: LazyLock<Vec<IncidentSection>> =
    LazyLock::new(|| parse_incident_response(INCIDENT_RESPONSE_MD));

/// Whether the troubleshooting guide was found at build time.
pub fn is_embedded() -> bool {
    !TROUBLESHOOTING_MD.trim().is_empty()
}

/// The troubleshooting section `number` (`"2.2"`, `"§ 2.2"` and `"§2.2"` all work).
pub fn section(number: &str) -> Option<Section> {
    find_section(&TROUBLESHOOTING, number).cloned()
}

/// Every troubleshooting section, in document order.
pub fn sections() -> &'static [Section] {
    &TROUBLESHOOTING
}

/// The incident-response section whose slug (or title) is `slug`.
pub fn incident_section(slug: &str) -> Option<IncidentSection> {
    let wanted = slugify(slug);
    INCIDENT_RESPONSE
        .iter()
        .find(|section| section.slug == wanted)
        .cloned()
}

/// Every incident-response section, in document order.
pub fn incident_sections() -> &'static [IncidentSection] {
    &INCIDENT_RESPONSE
}

/// Finds section `number` in parsed sections.
pub fn find_section<'a>(sections: &'a [Section], number: &str) -> Option<&'a Section> {
    let wanted = normalize_number(number)?;
    sections.iter().find(|section| section.number == wanted)
}

/// `"§ 2.2"` → `"2.2"`; `None` for references that are not section numbers (`"extending"`).
pub fn normalize_number(reference: &str) -> Option<String> {
    let text = reference
        .trim()
        .trim_start_matches('§')
        .trim()
        .trim_end_matches('.');
    let valid = !text.is_empty()
        && text
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()));
    valid.then(|| text.to_string())
}

/// A heading line outside code fences: its level (number of `#`) and text.
struct Heading<'a> {
    line_index: usize,
    level: usize,
    text: &'a str,
}

fn headings<'a>(lines: &[&'a str]) -> Vec<Heading<'a>> {
    let mut found = Vec::new();
    let mut in_fence = false;
    for (line_index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence || !line.starts_with('#') {
            continue;
        }
        let level = line.chars().take_while(|c| *c == '#').count();
        let rest = &line[level..];
        if level > 6 || !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
            continue;
        }
        found.push(Heading {
            line_index,
            level,
            text: rest.trim().trim_end_matches('#').trim(),
        });
    }
    found
}

/// The body of heading `index`: the lines up to the next heading of the same or a higher level.
fn body_of(lines: &[&str], all: &[Heading<'_>], index: usize) -> String {
    let heading = &all[index];
    let end = all[index + 1..]
        .iter()
        .find(|next| next.level <= heading.level)
        .map(|next| next.line_index)
        .unwrap_or(lines.len());
    lines[heading.line_index + 1..end]
        .join("\n")
        .trim()
        .to_string()
}

/// `§ 2.2 Title` (also `§2.2. Title`, `§ 2.2 — Title`) → (`2.2`, `Title`).
fn numbered_heading(text: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix('§')?.trim_start();
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let number = normalize_number(&rest[..number_end])?;
    let title = rest[number_end..]
        .trim()
        .trim_start_matches(['—', '–', '-', ':'])
        .trim()
        .to_string();
    Some((number, title))
}

/// Parses the troubleshooting guide's numbered sections.
pub fn parse_troubleshooting(text: &str) -> Vec<Section> {
    let lines: Vec<&str> = text.lines().collect();
    let all = headings(&lines);
    all.iter()
        .enumerate()
        .filter_map(|(index, heading)| {
            let (number, title) = numbered_heading(heading.text)?;
            Some(Section {
                number,
                title,
                body: body_of(&lines, &all, index),
            })
        })
        .collect()
}

/// Parses the incident-response page's `## Title` sections.
pub fn parse_incident_response(text: &str) -> Vec<IncidentSection> {
    let lines: Vec<&str> = text.lines().collect();
    let all = headings(&lines);
    all.iter()
        .enumerate()
        .filter(|(_, heading)| heading.level == 2)
        .map(|(index, heading)| IncidentSection {
            slug: slugify(heading.text),
            title: heading.text.to_string(),
            body: body_of(&lines, &all, index),
        })
        .collect()
}

/// GitHub-style anchor: lower case, punctuation dropped, spaces to `-`.
pub fn slugify(title: &str) -> String {
    title
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Labels that open a new part of an entry (the part after `Fix` ends at one of them).
const LABELS: [&str; 12] = [
    "symptom",
    "cause",
    "diagnose",
    "confirm",
    "check",
    "refs",
    "references",
    "related",
    "background",
    "see also",
    "why",
    "verify",
];

/// The text of a line without list markers, emphasis and heading marks, lower-cased.
fn label_text(line: &str) -> String {
    line.trim_start()
        .trim_start_matches(['-', '*', '#', '>', ' '])
        .trim_start_matches(['*', '_'])
        .to_lowercase()
}

/// Whether `text` (see [`label_text`]) opens with `label` used as a label: `Fix:`, `**Fix**:`,
/// `**Fix.**`, `Fix —`, `Fix (short term):`, or a heading that is just the label. `Check the firewall` is
/// a sentence, not a label.
fn starts_label(text: &str, label: &str) -> bool {
    let Some(rest) = text.strip_prefix(label) else {
        return false;
    };
    let after_emphasis = rest.trim_start_matches(['*', '_']);
    rest.trim().is_empty()
        || after_emphasis.starts_with([':', '.'])
        || after_emphasis.trim_start().starts_with(['—', '–'])
        || (rest.starts_with(" (") && rest.contains("):"))
}

fn extract_fix(body: &str) -> Option<String> {
    let lines: Vec<&str> = body.lines().collect();
    let start = lines.iter().position(|line| {
        let text = label_text(line);
        starts_label(&text, "fix")
            || starts_label(&text, "fixes")
            || starts_label(&text, "resolution")
            || starts_label(&text, "remedy")
    })?;
    let end = lines[start + 1..]
        .iter()
        .position(|line| {
            let text = label_text(line);
            let heading = line.trim_start().starts_with('#');
            heading || LABELS.iter().any(|label| starts_label(&text, label))
        })
        .map(|offset| start + 1 + offset)
        .unwrap_or(lines.len());
    let text = lines[start..end].join("\n").trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// One line of markdown without its emphasis markers (`**Fix.**` → `Fix.`); code spans keep
/// their backticks, which read as code in a terminal too.
pub fn plain_inline(text: &str) -> String {
    text.replace("**", "")
}

/// Markdown made readable as plain text: soft-wrapped lines of a paragraph or list item are joined
/// (the reader wraps them again at its own width), `**` emphasis markers are dropped, and fenced
/// code is kept line by line, indented. Both tools show the runbook through this.
pub fn reflow_markdown(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut in_code = false;
    let mut joinable = false;
    for raw in text.lines() {
        let trimmed = raw.trim();
        if trimmed.starts_with("```") {
            in_code = !in_code;
            joinable = false;
            continue;
        }
        if in_code {
            out.push(format!("  {}", raw.trim_end()));
            continue;
        }
        let line = trimmed.replace("**", "");
        let starts_block = line.is_empty()
            || line.starts_with("- ")
            || line.starts_with("* ")
            || line.starts_with('#')
            || line.starts_with('|')
            || line.starts_with('>')
            || line
                .split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        match out.last_mut() {
            Some(last) if joinable && !starts_block => {
                last.push(' ');
                last.push_str(&line);
            }
            _ => out.push(line.clone()),
        }
        joinable = !line.is_empty();
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = "# Troubleshooting\n\nIntro text.\n\n\
## § 1 Service won't start or won't accept traffic\n\nGeneral advice.\n\n\
### § 1.1 `RuntimeError: no API keys`\n\n**Symptom:** the process exits.\n\n**Fix:** set `KNEO_SERV_API_KEYS`.\nThen restart.\n\n**Refs:** environment.md\n\n\
### §1.2. `/readyz` returns 503\n\n```sh\n## § 9 not a heading inside a fence\ncurl /readyz\n```\n\nRead the checks.\n\n\
## § 2 — Persistence and store failures\n\n### § 2.2 Store refuses connections\n\n- Diagnose: `psql`\n- Fix: correct the DSN.\n  Check the firewall too.\n\n\
## What to capture before opening a bug\n\nUnnumbered.\n";

    #[test]
    fn numbered_headings_become_sections_with_bodies() {
        let sections = parse_troubleshooting(FIXTURE);
        let numbers: Vec<_> = sections.iter().map(|s| s.number.as_str()).collect();
        assert_eq!(
            numbers,
            ["1", "1.1", "1.2", "2", "2.2"],
            "a `## § 9` inside a code fence is not a heading"
        );
        let one = find_section(&sections, "§ 1").expect("§ 1");
        assert_eq!(one.title, "Service won't start or won't accept traffic");
        assert!(
            one.body.contains("§ 1.1") && one.body.contains("curl /readyz"),
            "§ 1 includes its subsections"
        );
        assert!(!one.body.contains("Persistence"), "§ 1 ends at § 2");
        let readyz = find_section(&sections, "1.2").expect("§ 1.2");
        assert_eq!(readyz.title, "`/readyz` returns 503");
        assert!(
            readyz.body.ends_with("Read the checks."),
            "{:?}",
            readyz.body
        );
        assert_eq!(
            find_section(&sections, "2").map(|s| s.title.as_str()),
            Some("Persistence and store failures")
        );
        let last = find_section(&sections, "2.2").expect("§ 2.2");
        assert!(
            !last.body.contains("Unnumbered"),
            "a section ends at any heading of a higher level"
        );
    }

    #[test]
    fn fix_steps_run_from_the_fix_label_to_the_next_label() {
        let sections = parse_troubleshooting(FIXTURE);
        let fix = find_section(&sections, "1.1").expect("§ 1.1").fix_steps();
        assert_eq!(fix, "**Fix:** set `KNEO_SERV_API_KEYS`.\nThen restart.");
        let list_fix = find_section(&sections, "2.2").expect("§ 2.2").fix_steps();
        assert_eq!(
            list_fix,
            "- Fix: correct the DSN.\n  Check the firewall too."
        );
        let no_label = find_section(&sections, "1.2").expect("§ 1.2");
        assert_eq!(
            no_label.fix_steps(),
            no_label.body,
            "without a Fix label the whole body is the fix"
        );
        let chapter = find_section(&sections, "1").expect("§ 1").fix_steps();
        assert_eq!(
            chapter,
            "General advice.\n\nRead the entry that matches:\n- § 1.1 `RuntimeError: no API keys`\n- § 1.2 `/readyz` returns 503"
        );
        let dotted = Section {
            number: "9".into(),
            title: "t".into(),
            body: "**Symptom.** bad.\n\n**Fix.**\n1. Do it.\n\n**Confirm.** x".into(),
        };
        assert_eq!(
            dotted.fix_steps(),
            "**Fix.**\n1. Do it.",
            "`**Fix.**` is a label too"
        );
    }

    #[test]
    fn references_normalize_to_numbers() {
        assert_eq!(normalize_number("§ 2.2").as_deref(), Some("2.2"));
        assert_eq!(normalize_number("§2.").as_deref(), Some("2"));
        assert_eq!(normalize_number("extending"), None);
        assert_eq!(normalize_number("2..1"), None);
        assert_eq!(normalize_number(""), None);
    }

    #[test]
    fn incident_sections_are_found_by_slug() {
        let text = "# Incident response\n\n## Triage tree\n\nStage 1.\n\n### Stage detail\n\nMore.\n\n## /readyz failure matrix\n\n| a | b |\n\n## When to roll back\n\nOnly after a deploy.\n";
        let sections = parse_incident_response(text);
        let slugs: Vec<_> = sections.iter().map(|s| s.slug.as_str()).collect();
        assert_eq!(
            slugs,
            ["triage-tree", "readyz-failure-matrix", "when-to-roll-back"]
        );
        assert!(
            sections[0].body.contains("More."),
            "level-3 headings stay in their section"
        );
        assert_eq!(
            slugify("What to capture before escalating"),
            "what-to-capture-before-escalating"
        );
        assert_eq!(slugify("/readyz failure matrix"), "readyz-failure-matrix");
    }

    #[test]
    fn markdown_paragraphs_are_joined_and_code_kept() {
        let text = "**Fix.** It depends:\n1. `a`: down. Fix\n   it now.\n2. `b`: other.\n\n```sh\ncurl -s x\n```\nlast";
        assert_eq!(
            reflow_markdown(text),
            "Fix. It depends:\n1. `a`: down. Fix it now.\n2. `b`: other.\n\n  curl -s x\nlast"
        );
    }

    /// The section numbers triage points at; each must exist in the real guide.
    const SECTIONS_TRIAGE_USES: [&str; 29] = [
        "1", "1.2", "1.3", "1.5", "2", "2.2", "2.3", "2.4", "2.7", "2.8", "3.2", "4.1", "4.2",
        "4.3", "5.1", "5.3", "5.4", "5.5", "5.6", "5.7", "6.1", "6.3", "6.4", "8.1", "8.2", "8.3",
        "8.4", "8.5", "1.1",
    ];

    #[test]
    fn the_embedded_guide_has_every_section_triage_names() {
        if !is_embedded() {
            eprintln!(
                "docs/troubleshooting.md was not present at build time; only the fixture tests ran"
            );
            return;
        }
        for number in SECTIONS_TRIAGE_USES {
            let section = section(number)
                .unwrap_or_else(|| panic!("docs/troubleshooting.md has no § {number}"));
            assert!(!section.title.is_empty(), "§ {number} has no title");
            assert!(!section.body.is_empty(), "§ {number} has no body");
        }
        assert!(
            section("8.1").is_some(),
            "§ 8.1 is named by the symptom table"
        );
        let fix = section("1.1").expect("§ 1.1").fix_steps();
        assert!(
            fix.starts_with("**Fix.**"),
            "the guide's `**Fix.**` blocks are found: {fix}"
        );
    }

    #[test]
    fn the_embedded_incident_page_has_its_sections() {
        if INCIDENT_RESPONSE_MD.trim().is_empty() {
            eprintln!(
                "docs/incident_response.md was not present at build time; only the fixture tests ran"
            );
            return;
        }
        assert!(
            !incident_sections().is_empty(),
            "docs/incident_response.md has no `## ` sections"
        );
        for section in incident_sections() {
            assert_eq!(incident_section(&section.slug).as_ref(), Some(section));
        }
    }
}
