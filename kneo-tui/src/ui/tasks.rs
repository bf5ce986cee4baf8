//! The Human tasks screen: pending and escalated tasks, earliest deadline first, with those
//! expiring soon and those overdue marked.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};

use super::{id_width, panel, shown_id};
use crate::format;
use crate::strings;
use crate::theme::Theme;
use crate::view::{TaskState, TasksView};

pub fn render(frame: &mut Frame<'_>, area: Rect, view: &TasksView, theme: Theme) {
    let [summary, table_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3)]).areas(area);
    let text = match &view.note {
        Some(note) => format!(" {} · {note}", view.summary),
        None => format!(" {}", view.summary),
    };
    frame.render_widget(
        Paragraph::new(Span::styled(
            format::truncate(&text, summary.width as usize),
            theme.bold(),
        )),
        summary,
    );
    let id_width = id_width(area);
    let header = Row::new(vec![
        Cell::from(strings::LABEL_STATE),
        Cell::from("deadline"),
        Cell::from("task"),
        Cell::from("run"),
        Cell::from(strings::LABEL_WORKFLOW),
        Cell::from("request"),
    ])
    .style(theme.dim());
    let rows: Vec<Row<'_>> = view
        .rows
        .iter()
        .map(|row| {
            let (label, style) = match row.state {
                TaskState::Pending => (strings::TASK_PENDING, theme.plain()),
                TaskState::Escalated => (strings::TASK_ESCALATED, theme.warn()),
                TaskState::ExpiringSoon => (strings::TASK_SOON, theme.warn()),
                TaskState::Overdue => (strings::TASK_OVERDUE, theme.fail()),
            };
            Row::new(vec![
                Cell::from(Span::styled(label, style)),
                Cell::from(Span::styled(row.expires.clone(), style)),
                Cell::from(shown_id(&row.id, id_width)),
                Cell::from(shown_id(&row.run_id, id_width)),
                Cell::from(row.workflow.clone()),
                Cell::from(row.request.clone()),
            ])
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(9),
            Constraint::Length(10),
            Constraint::Length(id_width as u16),
            Constraint::Length(id_width as u16),
            Constraint::Length(18),
            Constraint::Min(10),
        ],
    )
    .header(header)
    .block(panel(strings::TASKS_TITLE, theme))
    .row_highlight_style(theme.selected())
    .highlight_symbol("›");
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, table_area, &mut state);
}
