//! Overlays drawn over the screen: the key help, a confirmation, the action log.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::panel;
use crate::format;
use crate::strings;
use crate::theme::Theme;
use crate::view::Overlay;

pub fn render(frame: &mut Frame<'_>, area: Rect, overlay: &Overlay, theme: Theme) {
    match overlay {
        Overlay::Help(rows) => {
            let label_width = rows
                .iter()
                .map(|(k, _)| k.chars().count())
                .max()
                .unwrap_or(0);
            let lines: Vec<Line<'_>> = rows
                .iter()
                .map(|(keys, help)| {
                    Line::from(vec![
                        Span::styled(format!(" {keys:<label_width$}  "), theme.key()),
                        Span::raw(help.clone()),
                    ])
                })
                .collect();
            let popup = centered(area, 100, lines.len() as u16 + 2);
            frame.render_widget(Clear, popup);
            frame.render_widget(
                Paragraph::new(lines).block(panel(strings::HELP_TITLE, theme)),
                popup,
            );
        }
        Overlay::Confirm(question) => {
            let popup = centered(area, 60, 6);
            let lines = vec![
                Line::styled(question.clone(), theme.bold()),
                Line::raw(""),
                Line::styled(strings::CONFIRM_KEYS, theme.key()),
            ];
            frame.render_widget(Clear, popup);
            frame.render_widget(
                Paragraph::new(lines)
                    .block(panel(strings::CONFIRM_TITLE, theme))
                    .wrap(Wrap { trim: true }),
                popup,
            );
        }
        Overlay::Log(entries) => {
            // Rows are wrapped here, so the box is as tall as what it holds.
            let inner = usize::from(area.width.min(110).saturating_sub(2));
            let lines: Vec<Line<'_>> = if entries.is_empty() {
                vec![Line::styled(strings::LOG_EMPTY, theme.dim())]
            } else {
                entries
                    .iter()
                    .flat_map(|(ok, text)| {
                        let mark = if *ok { "✓ " } else { "✗ " };
                        let style = if *ok { theme.ok() } else { theme.fail() };
                        format::wrap_line(text, inner.saturating_sub(2))
                            .into_iter()
                            .enumerate()
                            .map(move |(index, row)| {
                                let mark = if index == 0 { mark } else { "  " };
                                Line::from(vec![Span::styled(mark, style), Span::raw(row)])
                            })
                    })
                    .collect()
            };
            let popup = centered(area, 110, lines.len() as u16 + 2);
            frame.render_widget(Clear, popup);
            frame.render_widget(
                Paragraph::new(lines).block(panel(strings::LOG_TITLE, theme)),
                popup,
            );
        }
    }
}

/// A box of at most `width`×`height` in the middle of `area`.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}
