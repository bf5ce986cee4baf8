//! Colours, or none at all: with `NO_COLOR` set (https://no-color.org) every style keeps only
//! bold, reverse and dim, so a verdict still stands out on a monochrome terminal.

use kneo_triage::triage::{Health, Level};
use ratatui::style::{Color, Modifier, Style};

/// The styles of one run; `color: false` under `NO_COLOR` or `--no-color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to anything non-empty.
    pub fn from_env(no_color_flag: bool) -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        Theme {
            color: !(no_color || no_color_flag),
        }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    pub fn plain(self) -> Style {
        Style::new()
    }

    pub fn dim(self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new().add_modifier(Modifier::DIM)
        }
    }

    pub fn bold(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn title(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn ok(self) -> Style {
        self.fg(Color::Green)
    }

    pub fn warn(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn fail(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub fn level(self, level: Level) -> Style {
        match level {
            Level::Ok => self.ok(),
            Level::Warn => self.warn(),
            Level::Fail => self.fail(),
        }
    }

    /// The header badge: reversed, so it reads without colour too.
    pub fn badge(self, health: Option<Health>) -> Style {
        let base = Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED);
        if !self.color {
            return base;
        }
        match health {
            Some(Health::Healthy) => base.fg(Color::Green),
            Some(Health::Degraded) => base.fg(Color::Yellow),
            Some(Health::Down | Health::Hung) => base.fg(Color::Red),
            Some(Health::Unknown) => base.fg(Color::Magenta),
            None => base.fg(Color::Gray),
        }
    }

    /// The selected row: reversed in both modes.
    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn tab_active(self) -> Style {
        self.fg(Color::Cyan)
            .add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
    }

    pub fn status_bar(self) -> Style {
        if self.color {
            Style::new().bg(Color::DarkGray).fg(Color::White)
        } else {
            Style::new().add_modifier(Modifier::REVERSED)
        }
    }

    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }

    pub fn border(self) -> Style {
        self.fg(Color::DarkGray)
    }

    pub fn border_focus(self) -> Style {
        self.fg(Color::Cyan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_keeps_emphasis_without_colours() {
        let mono = Theme { color: false };
        assert_eq!(mono.fail().fg, None);
        assert!(mono.fail().add_modifier.contains(Modifier::BOLD));
        assert!(mono.selected().add_modifier.contains(Modifier::REVERSED));
        let colour = Theme { color: true };
        assert_eq!(colour.fail().fg, Some(Color::Red));
    }
}
