//! The Runs screen: the list (status filter, `/` search) and, once a run is opened, its
//! drill-down: run → trace → checkpoints → audit events, with a breadcrumb of the levels.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, List, ListItem, ListState, Paragraph, Row, Table, TableState, Wrap};

use super::{WIDE, id_width, panel, shown_id};
use crate::app::DrillLevel;
use crate::format;
use crate::strings;
use crate::theme::Theme;
use crate::view::{DrillView, RunsView};

pub fn render(frame: &mut Frame<'_>, area: Rect, view: &RunsView, theme: Theme) {
    match &view.drill {
        Some(drill) if area.width >= WIDE => {
            let [list, detail] =
                Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
                    .areas(area);
            render_list(frame, list, view, theme);
            render_drill(frame, detail, drill, theme);
        }
        Some(drill) => render_drill(frame, area, drill, theme),
        None => render_list(frame, area, view, theme),
    }
}

fn render_list(frame: &mut Frame<'_>, area: Rect, view: &RunsView, theme: Theme) {
    let id_width = if view.drill.is_some() {
        8
    } else {
        id_width(area)
    };
    let header = Row::new(vec![
        Cell::from(strings::LABEL_STATUS),
        Cell::from("run"),
        Cell::from(strings::LABEL_WORKFLOW),
        Cell::from(strings::LABEL_STEP),
        Cell::from(strings::LABEL_UPDATED),
    ])
    .style(theme.dim());
    let rows: Vec<Row<'_>> = view
        .rows
        .iter()
        .map(|row| {
            let status_style = match row.status.as_str() {
                "failed" | "timed_out" | "expired" => theme.fail(),
                "blocked" | "created" | "queued" => theme.warn(),
                "running" => theme.title(),
                "completed" => theme.ok(),
                _ => theme.plain(),
            };
            Row::new(vec![
                Cell::from(Span::styled(row.status.clone(), status_style)),
                Cell::from(shown_id(&row.run_id, id_width)),
                Cell::from(row.workflow.clone()),
                Cell::from(row.step.clone()),
                Cell::from(row.updated.clone()),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(id_width as u16),
            Constraint::Min(12),
            Constraint::Length(12),
            Constraint::Length(8),
        ],
    )
    .header(header)
    .block(panel(&view.title, theme))
    .row_highlight_style(theme.selected())
    .highlight_symbol("›");
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, area, &mut state);
    let empty_note = match &view.error {
        Some(error) => Some((error.as_str(), theme.warn())),
        None => Some((strings::NOTHING_LISTED, theme.dim())),
    };
    if let Some((error, style)) = empty_note.filter(|_| view.rows.is_empty()) {
        let line = Rect {
            x: area.x + 1,
            y: area.y + 2,
            width: area.width.saturating_sub(2),
            height: 1.min(area.height.saturating_sub(3)),
        };
        frame.render_widget(
            Paragraph::new(Span::styled(
                format::truncate(error, line.width as usize),
                style,
            )),
            line,
        );
    }
}

fn render_drill(frame: &mut Frame<'_>, area: Rect, drill: &DrillView, theme: Theme) {
    let summary_height = (drill.summary.len() as u16 + 2).clamp(3, area.height / 2 + 1);
    let [crumbs, summary_area, list_area] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(summary_height),
        Constraint::Min(3),
    ])
    .areas(area);

    let mut spans = vec![Span::styled(
        format!(" {} ", format::truncate(&drill.run_id, 36)),
        theme.bold(),
    )];
    for level in DrillLevel::ALL {
        let style = if level == drill.level {
            theme.tab_active()
        } else {
            theme.dim()
        };
        spans.push(Span::styled("› ", theme.dim()));
        spans.push(Span::styled(format!("{} ", level.title()), style));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), crumbs);

    let lines: Vec<Line<'_>> = drill
        .summary
        .iter()
        .map(|(label, value)| {
            Line::from(vec![
                Span::styled(format!("{label:>12} "), theme.dim()),
                Span::raw(value.clone()),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .block(panel(strings::DRILL_RUN, theme))
            .wrap(Wrap { trim: false }),
        summary_area,
    );

    let title = format!("{} · {}", drill.level.title(), strings::DRILL_HINT);
    let block = panel(&title, theme);
    if let Some(error) = &drill.error {
        frame.render_widget(
            Paragraph::new(Span::styled(error.clone(), theme.warn()))
                .block(block)
                .wrap(Wrap { trim: true }),
            list_area,
        );
        return;
    }
    if drill.level == DrillLevel::Run {
        let hint = Line::styled(
            format!(
                "⏎ {} → {} → {}",
                strings::DRILL_TRACE,
                strings::DRILL_CHECKPOINTS,
                strings::DRILL_AUDIT
            ),
            theme.dim(),
        );
        frame.render_widget(Paragraph::new(hint).block(block), list_area);
        return;
    }
    let items: Vec<ListItem<'_>> = if drill.rows.is_empty() {
        vec![ListItem::new(Line::styled(
            strings::NOTHING_LISTED,
            theme.dim(),
        ))]
    } else {
        drill
            .rows
            .iter()
            .map(|row| ListItem::new(row.clone()))
            .collect()
    };
    let list = List::new(items)
        .block(block)
        .highlight_style(theme.selected())
        .highlight_symbol("›");
    let mut state = ListState::default().with_selected(Some(drill.selected));
    frame.render_stateful_widget(list, list_area, &mut state);
}
