//! The Triage screen: the verdict tree (failing branches open) and, beside it, the selected
//! verdict with its runbook section's fix steps: wrapped at the pane's width, scrolled by row,
//! and with its `§` references to pick and open when the pane has the keys.

use kneo_triage::runbook;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph};

use super::{WIDE, panel};
use crate::app::PaneFacts;
use crate::format;
use crate::strings;
use crate::theme::Theme;
use crate::view::{TreeRow, TriageView};

pub fn render(frame: &mut Frame<'_>, area: Rect, view: &TriageView, theme: Theme) -> PaneFacts {
    // The "Start with" line wraps onto a second row rather than lose its section.
    let headline_rows = format::wrap_line(&format!(" {}", view.headline), area.width as usize);
    let height = u16::try_from(headline_rows.len().clamp(1, 2)).unwrap_or(1);
    let [headline, panes] =
        Layout::vertical([Constraint::Length(height), Constraint::Min(3)]).areas(area);
    let style = theme.level(match view.health {
        kneo_triage::triage::Health::Healthy => kneo_triage::triage::Level::Ok,
        kneo_triage::triage::Health::Degraded => kneo_triage::triage::Level::Warn,
        kneo_triage::triage::Health::Down
        | kneo_triage::triage::Health::Hung
        | kneo_triage::triage::Health::Unknown => kneo_triage::triage::Level::Fail,
    });
    let rows: Vec<Line<'_>> = headline_rows
        .iter()
        .take(2)
        .enumerate()
        .map(|(index, row)| {
            let row = if index == 1 && headline_rows.len() > 2 {
                format::truncate(&headline_rows[1..].join(" "), headline.width as usize)
            } else {
                row.clone()
            };
            Line::styled(row, style)
        })
        .collect();
    frame.render_widget(Paragraph::new(rows), headline);
    let split = if area.width >= WIDE {
        [Constraint::Percentage(45), Constraint::Percentage(55)]
    } else {
        [Constraint::Percentage(52), Constraint::Percentage(48)]
    };
    let [tree_area, detail_area] = Layout::horizontal(split).areas(panes);
    render_tree(frame, tree_area, view, theme);
    render_detail(frame, detail_area, view, theme)
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
    let symbol = row.symbol;
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

/// One row of the pane before styling: its text and how it is drawn.
enum RowStyle {
    Title,
    Plain,
    Heading,
    Dim,
}

/// The pane's text as rows of the pane's width, and the `§` references in it (number, row).
/// Rows of the pane with their style.
type Rows = Vec<(String, RowStyle)>;
/// `§` references: section number and the row it first appears on.
type References = Vec<(String, u16)>;

fn pane_rows(view: &TriageView, width: usize) -> (Rows, References) {
    let detail = &view.detail;
    let mut logical: Vec<(String, RowStyle)> = Vec::new();
    logical.push((
        format!("{} {}", detail.symbol, detail.title),
        RowStyle::Title,
    ));
    if !detail.detail.is_empty() {
        logical.push((detail.detail.clone(), RowStyle::Plain));
    }
    logical.push((String::new(), RowStyle::Plain));
    if !detail.opened.is_empty() {
        logical.push((
            strings::opened_trail(detail.section.as_deref(), &detail.opened),
            RowStyle::Dim,
        ));
    }
    if let Some(heading) = &detail.runbook_heading {
        logical.push((heading.clone(), RowStyle::Heading));
    } else if let Some(section) = &detail.section {
        logical.push((section.clone(), RowStyle::Heading));
    }
    for line in detail.runbook_text.lines() {
        logical.push((line.to_string(), RowStyle::Plain));
    }
    let mut rows = Vec::new();
    for (line, style) in logical {
        for (index, row) in format::wrap_line(&line, width).into_iter().enumerate() {
            let style = match (&style, index) {
                (RowStyle::Title, 0) => RowStyle::Title,
                (RowStyle::Title, _) => RowStyle::Plain,
                (RowStyle::Heading, _) => RowStyle::Heading,
                (RowStyle::Dim, _) => RowStyle::Dim,
                (RowStyle::Plain, _) => RowStyle::Plain,
            };
            rows.push((row, style));
        }
    }
    let mut references: Vec<(String, u16)> = Vec::new();
    // The title row names the verdict's own section: references start below it.
    for (index, (row, _)) in rows.iter().enumerate().skip(1) {
        for number in section_marks(row) {
            if runbook::section(&number).is_some()
                && !references.iter().any(|(known, _)| *known == number)
                && detail.opened.last() != Some(&number)
            {
                references.push((number, u16::try_from(index).unwrap_or(u16::MAX)));
            }
        }
    }
    (rows, references)
}

/// The section numbers of the `§ N.M` marks in a row.
fn section_marks(row: &str) -> Vec<String> {
    row.match_indices("§ ")
        .filter_map(|(at, mark)| {
            let rest = &row[at + mark.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            runbook::normalize_number(&rest[..end])
        })
        .collect()
}

/// The row with the picked reference's mark shown reversed.
fn row_line(row: &str, style: &RowStyle, picked: Option<&str>, theme: Theme) -> Line<'static> {
    let base = match style {
        RowStyle::Title => theme.bold(),
        RowStyle::Heading => theme.title(),
        RowStyle::Dim => theme.dim(),
        RowStyle::Plain => theme.plain(),
    };
    if let Some(number) = picked {
        let mark = format!("§ {number}");
        if let Some(at) = row.find(&mark) {
            let after = &row[at + mark.len()..];
            // `§ 2.2` must not light up inside `§ 2.21`.
            if !after.starts_with(|c: char| c.is_ascii_digit()) {
                return Line::from(vec![
                    Span::styled(row[..at].to_string(), base),
                    Span::styled(mark, theme.selected()),
                    Span::styled(after.to_string(), base),
                ]);
            }
        }
    }
    Line::styled(row.to_string(), base)
}

fn render_detail(frame: &mut Frame<'_>, area: Rect, view: &TriageView, theme: Theme) -> PaneFacts {
    let detail = &view.detail;
    let inner_width = area.width.saturating_sub(2) as usize;
    let height = area.height.saturating_sub(2);
    let (rows, references) = pane_rows(view, inner_width);
    let total = u16::try_from(rows.len()).unwrap_or(u16::MAX);
    let scroll = detail.scroll.min(total.saturating_sub(height));
    let picked = detail
        .focused
        .then(|| references.get(detail.reference).map(|(n, _)| n.as_str()))
        .flatten();
    let picked_row = detail
        .focused
        .then(|| references.get(detail.reference).map(|(_, row)| *row))
        .flatten();
    let lines: Vec<Line<'_>> = rows
        .iter()
        .enumerate()
        .skip(usize::from(scroll))
        .take(usize::from(height))
        .map(|(index, (row, style))| {
            let here = picked_row == u16::try_from(index).ok();
            row_line(row, style, if here { picked } else { None }, theme)
        })
        .collect();
    // Focused, the title also says how to leave: the short name leaves room at 80 columns.
    let mut title = if detail.focused {
        strings::TRIAGE_DETAIL_FOCUSED
    } else {
        strings::TRIAGE_DETAIL
    }
    .to_string();
    if total > height {
        let last = (scroll + height).min(total);
        title.push(' ');
        title.push_str(&strings::pane_position(scroll + 1, last, total));
    }
    if detail.focused {
        title.push_str(" · ");
        title.push_str(strings::PANE_FOCUSED);
    }
    let block = panel(&title, theme);
    let block = if detail.focused {
        block.border_style(theme.title())
    } else {
        block
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
    PaneFacts {
        lines: total,
        height,
        references: references.iter().map(|(n, _)| n.clone()).collect(),
        reference_lines: references.iter().map(|(_, row)| *row).collect(),
    }
}
