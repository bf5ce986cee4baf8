//! The Events screen: the service's own timeline (starts with version and host, readiness
//! transitions, 5xx bursts, stops) merged with the health changes kneo-tui itself saw.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Row, Table, TableState};

use super::{WIDE, panel};
use crate::strings;
use crate::theme::Theme;
use crate::view::EventsView;

pub fn render(frame: &mut Frame<'_>, area: Rect, view: &EventsView, theme: Theme) {
    let wide = area.width >= WIDE;
    let header = if wide {
        Row::new(vec!["time (UTC)", "age", "event", "what"])
    } else {
        Row::new(vec!["time (UTC)", "event", "what"])
    }
    .style(theme.dim());
    let rows: Vec<Row<'_>> = view
        .rows
        .iter()
        .map(|row| {
            let style = match row.level {
                Some(level) => theme.level(level),
                None => theme.plain(),
            };
            let kind_style = if row.local { theme.dim() } else { theme.bold() };
            let mut cells = vec![Cell::from(row.time.clone())];
            if wide {
                cells.push(Cell::from(Span::styled(row.age.clone(), theme.dim())));
            }
            cells.push(Cell::from(Span::styled(row.kind.clone(), kind_style)));
            cells.push(Cell::from(Span::styled(row.summary.clone(), style)));
            Row::new(cells)
        })
        .collect();
    let widths: Vec<Constraint> = if wide {
        vec![
            Constraint::Length(14),
            Constraint::Length(10),
            Constraint::Length(18),
            Constraint::Min(10),
        ]
    } else {
        vec![
            Constraint::Length(14),
            Constraint::Length(17),
            Constraint::Min(10),
        ]
    };
    let title = match &view.note {
        Some(note) => format!("{} · {note}", strings::EVENTS_TITLE),
        None => strings::EVENTS_TITLE.to_string(),
    };
    let table = Table::new(rows, widths)
        .header(header)
        .block(panel(&title, theme))
        .row_highlight_style(theme.selected())
        .highlight_symbol("›");
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, area, &mut state);
}
