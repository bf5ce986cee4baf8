//! The Readiness screen: the eight checks (state, error kind, runbook section, message), the
//! selected check's detail (full message from `GET /v1/health` when the key allows), and the
//! readiness history strip.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState, Wrap};

use super::{WIDE, panel};
use crate::format;
use crate::strings;
use crate::theme::Theme;
use crate::view::ReadinessView;

pub fn render(frame: &mut Frame<'_>, area: Rect, view: &ReadinessView, theme: Theme) {
    let [note, main] = Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let note_text = format!(" {} · {}", view.source_note, view.strip);
    frame.render_widget(
        Paragraph::new(Span::styled(
            format::truncate(&note_text, note.width as usize),
            theme.dim(),
        )),
        note,
    );
    if let Some(unavailable) = &view.unavailable {
        frame.render_widget(
            Paragraph::new(Span::styled(unavailable.clone(), theme.fail()))
                .block(panel(strings::READINESS_CHECKS, theme))
                .wrap(Wrap { trim: true }),
            main,
        );
        return;
    }
    let (table_area, detail_area) = if area.width >= WIDE {
        let [a, b] = Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
            .areas(main);
        (a, b)
    } else {
        let rows = view.rows.len() as u16 + 3;
        let [a, b] = Layout::vertical([Constraint::Length(rows), Constraint::Min(3)]).areas(main);
        (a, b)
    };
    let header = Row::new(vec![
        Cell::from(""),
        Cell::from(strings::LABEL_CHECK),
        Cell::from(strings::LABEL_STATE),
        Cell::from(strings::LABEL_SECTION),
        Cell::from(strings::LABEL_MESSAGE),
    ])
    .style(theme.dim());
    let rows: Vec<Row<'_>> = view
        .rows
        .iter()
        .map(|row| {
            let (mark, style) = if row.ok {
                ("✓", theme.ok())
            } else {
                ("✗", theme.fail())
            };
            Row::new(vec![
                Cell::from(Span::styled(mark, style)),
                Cell::from(row.name.clone()),
                Cell::from(Span::styled(
                    row.state.clone(),
                    if row.ok { theme.plain() } else { theme.fail() },
                )),
                Cell::from(Span::styled(row.section.clone(), theme.key())),
                Cell::from(row.message.clone()),
            ])
        })
        .collect();
    let title = match view.ready {
        Some(true) => format!("{} · ready", strings::READINESS_CHECKS),
        Some(false) => format!("{} · NOT READY", strings::READINESS_CHECKS),
        None => strings::READINESS_CHECKS.to_string(),
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(1),
            Constraint::Length(18),
            Constraint::Length(26),
            Constraint::Length(6),
            Constraint::Min(10),
        ],
    )
    .header(header)
    .block(panel(&title, theme))
    .row_highlight_style(theme.selected())
    .highlight_symbol("›");
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, table_area, &mut state);

    let lines: Vec<Line<'_>> = view
        .detail
        .iter()
        .map(|(label, value)| {
            Line::from(vec![
                Span::styled(format!("{label:>8} "), theme.dim()),
                Span::raw(value.clone()),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .block(panel(strings::READINESS_DETAIL, theme))
            .wrap(Wrap { trim: false }),
        detail_area,
    );
}
