//! The Queue screen: counts and worker count, the backlog sparkline over the last polls, and
//! every queued, running, blocked and failed run with its age, stuck ones first with the reason.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap};

use super::{WIDE, id_width, panel, shown_id};
use crate::strings;
use crate::theme::Theme;
use crate::view::QueueView;

pub fn render(frame: &mut Frame<'_>, area: Rect, view: &QueueView, theme: Theme) {
    let spark_height = if area.height >= 30 { 6 } else { 4 };
    let [counts_area, spark_area, table_area] = Layout::vertical([
        Constraint::Length(if area.width >= WIDE { 1 } else { 2 }),
        Constraint::Length(spark_height),
        Constraint::Min(3),
    ])
    .areas(area);

    let counts_style = if view.workers_zero {
        theme.warn()
    } else {
        theme.bold()
    };
    frame.render_widget(
        Paragraph::new(Span::styled(format!(" {}", view.counts), counts_style))
            .wrap(Wrap { trim: true }),
        counts_area,
    );

    let spark_block = panel(
        &format!("{} · {}", strings::LABEL_BACKLOG, view.backlog_caption),
        theme,
    );
    let inner = spark_block.inner(spark_area);
    frame.render_widget(spark_block, spark_area);
    // The newest samples on the right, one bar per poll.
    let shown = inner.width as usize;
    let data: Vec<u64> = view
        .backlog
        .iter()
        .skip(view.backlog.len().saturating_sub(shown))
        .copied()
        .collect();
    frame.render_widget(
        Sparkline::default()
            .data(&data)
            .max(data.iter().copied().max().unwrap_or(0).max(4))
            .style(theme.warn()),
        inner,
    );

    let id_width = id_width(area);
    let header = Row::new(vec![
        Cell::from(strings::LABEL_STATUS),
        Cell::from("run"),
        Cell::from("age"),
        Cell::from(""),
        Cell::from("§"),
        Cell::from("why / what"),
    ])
    .style(theme.dim());
    let rows: Vec<Row<'_>> = view
        .rows
        .iter()
        .map(|row| {
            let stuck = if row.stuck {
                Span::styled(strings::STUCK, theme.fail())
            } else {
                Span::raw("")
            };
            Row::new(vec![
                Cell::from(row.kind.label()),
                Cell::from(shown_id(&row.run_id, id_width)),
                Cell::from(row.age.clone()),
                Cell::from(stuck),
                Cell::from(Span::styled(
                    row.section.clone().unwrap_or_default(),
                    theme.key(),
                )),
                Cell::from(Span::styled(
                    row.reason.clone(),
                    if row.stuck {
                        theme.fail()
                    } else {
                        theme.plain()
                    },
                )),
            ])
        })
        .collect();
    let title = match &view.note {
        Some(note) => format!("{} · {note}", strings::QUEUE_RUNS),
        None => format!("{} · {}", strings::QUEUE_RUNS, view.rows.len()),
    };
    let mut lines_if_empty = Vec::new();
    if view.rows.is_empty() {
        lines_if_empty.push(Line::styled(strings::NOTHING_LISTED, theme.dim()));
    }
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(id_width as u16),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(5),
            Constraint::Min(10),
        ],
    )
    .header(header)
    .block(panel(&title, theme))
    .row_highlight_style(theme.selected())
    .highlight_symbol("›");
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, table_area, &mut state);
    if !lines_if_empty.is_empty() {
        let inner = Rect {
            x: table_area.x + 1,
            y: table_area.y + 2,
            width: table_area.width.saturating_sub(2),
            height: 1.min(table_area.height.saturating_sub(3)),
        };
        frame.render_widget(Paragraph::new(lines_if_empty), inner);
    }
}
