//! The Triage screen: the verdict tree (failing branches open) and, beside it, the selected
//! verdict with its runbook section's fix steps.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Wrap};

use super::{WIDE, panel};
use crate::format;
use crate::strings;
use crate::theme::Theme;
use crate::view::{TreeRow, TriageView};

pub fn render(frame: &mut Frame<'_>, area: Rect, view: &TriageView, theme: Theme) {
    let [headline, panes] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let style = theme.level(match view.health {
        kneo_triage::triage::Health::Healthy => kneo_triage::triage::Level::Ok,
        kneo_triage::triage::Health::Degraded => kneo_triage::triage::Level::Warn,
        kneo_triage::triage::Health::Down
        | kneo_triage::triage::Health::Hung
        | kneo_triage::triage::Health::Unknown => kneo_triage::triage::Level::Fail,
    });
    frame.render_widget(
        Paragraph::new(Span::styled(
            format::truncate(&format!(" {}", view.headline), headline.width as usize),
            style,
        )),
        headline,
    );
    let split = if area.width >= WIDE {
        [Constraint::Percentage(45), Constraint::Percentage(55)]
    } else {
        [Constraint::Percentage(52), Constraint::Percentage(48)]
    };
    let [tree_area, detail_area] = Layout::horizontal(split).areas(panes);
    render_tree(frame, tree_area, view, theme);
    render_detail(frame, detail_area, view, theme);
}

fn render_tree(frame: &mut Frame<'_>, area: Rect, view: &TriageView, theme: Theme) {
    // Borders, and the column the selection marker takes.
    let inner_width = area.width.saturating_sub(3) as usize;
    let items: Vec<ListItem<'_>> = view
        .rows
        .iter()
        .map(|row| ListItem::new(tree_line(row, inner_width, theme)))
        .collect();
    let list = List::new(items)
        .block(panel(strings::TRIAGE_TREE, theme))
        .highlight_style(theme.selected())
        .highlight_symbol("›");
    let mut state = ListState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(list, area, &mut state);
}

/// `  ▾ ✗ title … § 2.2`: the section always shows; the title gives way.
fn tree_line(row: &TreeRow, width: usize, theme: Theme) -> Line<'static> {
    let indent = "  ".repeat(row.depth);
    let marker = match row.expanded {
        Some(true) => "▾ ",
        Some(false) => "▸ ",
        None => "  ",
    };
    let symbol = row.level.symbol();
    let section = row
        .section
        .as_ref()
        .map(|s| format!(" {s}"))
        .unwrap_or_default();
    let collapsed = match row.expanded {
        Some(false) => format!(" ({})", row.children),
        _ => String::new(),
    };
    let used = indent.chars().count() + 2 + 2 + section.chars().count() + collapsed.chars().count();
    let title = format::truncate(&row.title, width.saturating_sub(used));
    let mut spans = vec![
        Span::raw(indent),
        Span::styled(marker, theme.dim()),
        Span::styled(format!("{symbol} "), theme.level(row.level)),
        Span::raw(title),
    ];
    if !collapsed.is_empty() {
        spans.push(Span::styled(collapsed, theme.dim()));
    }
    if !section.is_empty() {
        spans.push(Span::styled(section, theme.key()));
    }
    Line::from(spans)
}

fn render_detail(frame: &mut Frame<'_>, area: Rect, view: &TriageView, theme: Theme) {
    let detail = &view.detail;
    let mut lines: Vec<Line<'_>> = Vec::new();
    lines.push(Line::from(vec![
        Span::styled(
            format!("{} ", detail.level.symbol()),
            theme.level(detail.level),
        ),
        Span::styled(detail.title.clone(), theme.bold()),
    ]));
    if !detail.detail.is_empty() {
        lines.push(Line::raw(detail.detail.clone()));
    }
    lines.push(Line::raw(""));
    if let Some(heading) = &detail.runbook_heading {
        lines.push(Line::styled(heading.clone(), theme.title()));
    } else if let Some(section) = &detail.section {
        lines.push(Line::styled(section.clone(), theme.title()));
    }
    for line in detail.runbook_text.lines() {
        lines.push(Line::raw(line.to_string()));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(panel(strings::TRIAGE_DETAIL, theme))
            .wrap(Wrap { trim: false }),
        area,
    );
}
