//! Rendering: [`render`] draws a [`ViewModel`] into a frame and does nothing else (no state, no
//! clock, no I/O), so the same view model always gives the same screen. One module per screen;
//! this one draws the frame around them: the tab header, the status bar, the footer line and the
//! overlays (help, confirmation, action log).
//!
//! Layout: header (1 row) · screen · status bar (1 row) · footer (1 row). Screens switch from
//! stacked panes to side-by-side ones at [`WIDE`] columns, so 80×24 stays readable and a large
//! terminal shows more at once.

mod events;
mod overlay;
mod queue;
mod readiness;
mod runs;
mod tasks;
mod triage;

#[cfg(test)]
mod tests;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use crate::app::Screen;
use crate::format;
use crate::strings;
use crate::theme::Theme;
use crate::view::{Body, FooterKind, ViewModel};

/// From this width on, screens put their panes side by side and show full run ids.
pub const WIDE: u16 = 120;

/// What a frame found out that the state needs back (only rendering knows wrapped rows).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderFacts {
    /// The verdict pane of the Triage screen, when it was drawn.
    pub pane: Option<crate::app::PaneFacts>,
}

/// Draws the whole frame.
pub fn render(frame: &mut Frame<'_>, view: &ViewModel) -> RenderFacts {
    let mut facts = RenderFacts::default();
    let theme = Theme { color: view.color };
    let area = frame.area();
    let [header, body, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    render_header(frame, header, view, theme);
    let body = match &view.stale {
        Some(stale) => {
            let [banner, rest] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(2)]).areas(body);
            frame.render_widget(
                Paragraph::new(Span::styled(
                    format::truncate(&format!(" {stale}"), banner.width as usize),
                    theme.warn(),
                )),
                banner,
            );
            rest
        }
        None => body,
    };
    match &view.body {
        Body::Waiting(text) => {
            let block = Block::bordered()
                .border_style(theme.border())
                .title(Span::styled(view.screen.title(), theme.title()));
            frame.render_widget(
                Paragraph::new(text.as_str())
                    .block(block)
                    .wrap(Wrap { trim: true }),
                body,
            );
        }
        Body::Triage(triage) => facts.pane = Some(triage::render(frame, body, triage, theme)),
        Body::Readiness(readiness) => readiness::render(frame, body, readiness, theme),
        Body::Queue(queue) => queue::render(frame, body, queue, theme),
        Body::Runs(runs) => runs::render(frame, body, runs, theme),
        Body::Tasks(tasks) => tasks::render(frame, body, tasks, theme),
        Body::Events(events) => events::render(frame, body, events, theme),
    }
    render_status(frame, status, view, theme);
    render_footer(frame, footer, view, theme);
    if let Some(overlay) = &view.overlay {
        overlay::render(frame, area, overlay, theme);
    }
    facts
}

fn render_header(frame: &mut Frame<'_>, area: Rect, view: &ViewModel, theme: Theme) {
    let health = view.header.health;
    let badge = match health {
        Some(kneo_triage::triage::Health::Healthy) => strings::BADGE_HEALTHY,
        Some(kneo_triage::triage::Health::Degraded) => strings::BADGE_DEGRADED,
        Some(kneo_triage::triage::Health::Down) => strings::BADGE_DOWN,
        Some(kneo_triage::triage::Health::Hung) => strings::BADGE_HUNG,
        Some(kneo_triage::triage::Health::Unknown) => strings::BADGE_UNKNOWN,
        None => strings::BADGE_WAITING,
    };
    let mut right = vec![
        Span::styled(format!(" {badge} "), theme.badge(health)),
        Span::raw(" "),
        Span::styled(view.header.source_badge, theme.bold()),
    ];
    if view.header.read_only {
        right.push(Span::raw(" "));
        right.push(Span::styled(strings::BADGE_READ_ONLY, theme.warn()));
    }
    right.push(Span::raw(" "));
    let right_width: u16 = right.iter().map(|s| s.width() as u16).sum();

    let mut left = Vec::new();
    if area.width >= WIDE {
        left.push(Span::styled(
            format!(" {} ", strings::APP_NAME),
            theme.title(),
        ));
        left.push(Span::styled("│", theme.dim()));
    }
    for (index, screen) in Screen::ALL.iter().enumerate() {
        let style = if *screen == view.screen {
            theme.tab_active()
        } else {
            theme.plain()
        };
        left.push(Span::raw(" "));
        left.push(Span::styled(format!("{}", index + 1), theme.key()));
        left.push(Span::styled(format!(" {}", screen.title()), style));
    }
    let [left_area, right_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(right_width)]).areas(area);
    frame.render_widget(Paragraph::new(Line::from(left)), left_area);
    frame.render_widget(Paragraph::new(Line::from(right)), right_area);
}

fn render_status(frame: &mut Frame<'_>, area: Rect, view: &ViewModel, theme: Theme) {
    let status = &view.status;
    let separator = " │ ";
    let mut parts: Vec<(String, Style)> = Vec::new();
    let poll_style = match status.poll_ok {
        Some(true) => theme.status_bar(),
        Some(false) => theme.status_bar().patch(theme.fail()),
        None => theme.status_bar(),
    };
    let fixed = [
        status.identity.clone(),
        status.refresh.clone(),
        status.poll.clone(),
        status.last_good.clone(),
    ];
    let fixed_width: usize = fixed
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.chars().count() + separator.chars().count())
        .sum();
    // The leading space is the only other column the bar uses.
    let target_width = (area.width as usize)
        .saturating_sub(fixed_width + 1)
        .max(12);
    parts.push((
        format::truncate(&status.target, target_width),
        theme.status_bar().patch(theme.bold()),
    ));
    for (index, text) in fixed.iter().enumerate() {
        if text.is_empty() {
            continue;
        }
        let style = match index {
            0 if status.access_problem => theme.status_bar().patch(theme.fail()),
            2 => poll_style,
            _ => theme.status_bar(),
        };
        parts.push((text.clone(), style));
    }
    let mut spans = vec![Span::styled(" ", theme.status_bar())];
    for (index, (text, style)) in parts.into_iter().enumerate() {
        if index > 0 {
            spans.push(Span::styled(separator, theme.status_bar()));
        }
        spans.push(Span::styled(text, style));
    }
    frame.render_widget(
        Paragraph::new(Line::from(spans)).style(theme.status_bar()),
        area,
    );
}

fn render_footer(frame: &mut Frame<'_>, area: Rect, view: &ViewModel, theme: Theme) {
    let style = match view.footer.kind {
        FooterKind::Hints => theme.dim(),
        FooterKind::Command | FooterKind::Search => theme.bold(),
        FooterKind::Message => theme.title(),
        FooterKind::Error => theme.fail(),
    };
    let mut text = format::truncate(&view.footer.text, area.width as usize);
    if matches!(view.footer.kind, FooterKind::Command | FooterKind::Search) {
        text.push('▏');
    }
    frame.render_widget(Paragraph::new(Span::styled(text, style)), area);
}

/// A bordered block with a title, focused or not.
pub(crate) fn panel(title: &str, theme: Theme) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border())
        .title(Span::styled(format!(" {title} "), theme.title()))
}

/// The width a run id column gets: full ids on wide terminals, 8 characters otherwise.
pub(crate) fn id_width(area: Rect) -> usize {
    if area.width >= WIDE { 36 } else { 8 }
}

/// A run id cut to `width`.
pub(crate) fn shown_id(id: &str, width: usize) -> String {
    if width >= 36 {
        id.to_string()
    } else {
        format::short_id(id)
    }
}
