//! Every key binding, in one table: [`BINDINGS`] drives both what a key does ([`action_for`]) and
//! what the help overlay lists, so the two cannot drift apart.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::app::{Action, Mode, Screen};
use crate::strings;

/// A key as the table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Ctrl(char),
    Code(KeyCode),
}

impl Key {
    fn matches(self, event: &KeyEvent) -> bool {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        match self {
            Key::Char(c) => !ctrl && event.code == KeyCode::Char(c),
            Key::Ctrl(c) => ctrl && event.code == KeyCode::Char(c),
            Key::Code(code) => event.code == code,
        }
    }
}

/// One row of the table: the keys, how the help writes them, what they do.
#[derive(Debug, Clone)]
pub struct Binding {
    pub keys: &'static [Key],
    pub label: &'static str,
    pub help: &'static str,
    pub action: Action,
}

const fn bind(
    keys: &'static [Key],
    label: &'static str,
    help: &'static str,
    action: Action,
) -> Binding {
    Binding {
        keys,
        label,
        help,
        action,
    }
}

/// The normal-mode bindings, in the order the help lists them.
pub static BINDINGS: [Binding; 29] = [
    bind(
        &[Key::Char('1')],
        "1",
        strings::SCREEN_TRIAGE,
        Action::Show(Screen::Triage),
    ),
    bind(
        &[Key::Char('2')],
        "2",
        strings::SCREEN_READINESS,
        Action::Show(Screen::Readiness),
    ),
    bind(
        &[Key::Char('3')],
        "3",
        strings::SCREEN_QUEUE,
        Action::Show(Screen::Queue),
    ),
    bind(
        &[Key::Char('4')],
        "4",
        strings::SCREEN_RUNS,
        Action::Show(Screen::Runs),
    ),
    bind(
        &[Key::Char('5')],
        "5",
        strings::SCREEN_TASKS,
        Action::Show(Screen::Tasks),
    ),
    bind(
        &[Key::Char('6')],
        "6",
        strings::SCREEN_EVENTS,
        Action::Show(Screen::Events),
    ),
    bind(
        &[Key::Code(KeyCode::Tab)],
        "Tab",
        strings::HELP_NEXT_SCREEN,
        Action::NextScreen,
    ),
    bind(
        &[Key::Code(KeyCode::BackTab)],
        "S-Tab",
        strings::HELP_NEXT_SCREEN,
        Action::PrevScreen,
    ),
    bind(
        &[Key::Code(KeyCode::Up), Key::Char('k')],
        "↑ k",
        strings::HELP_MOVE,
        Action::Up,
    ),
    bind(
        &[Key::Code(KeyCode::Down), Key::Char('j')],
        "↓ j",
        strings::HELP_MOVE,
        Action::Down,
    ),
    bind(
        &[Key::Code(KeyCode::PageUp), Key::Ctrl('u')],
        "PgUp ^U",
        strings::HELP_PAGE,
        Action::PageUp,
    ),
    bind(
        &[Key::Code(KeyCode::PageDown), Key::Ctrl('d')],
        "PgDn ^D",
        strings::HELP_PAGE,
        Action::PageDown,
    ),
    bind(
        &[Key::Code(KeyCode::Home), Key::Char('g')],
        "Home g",
        strings::HELP_TOP_BOTTOM,
        Action::Top,
    ),
    bind(
        &[Key::Code(KeyCode::End), Key::Char('G')],
        "End G",
        strings::HELP_TOP_BOTTOM,
        Action::Bottom,
    ),
    bind(
        &[Key::Char('J')],
        "J",
        strings::HELP_SCROLL,
        Action::ScrollDown,
    ),
    bind(
        &[Key::Char('K')],
        "K",
        strings::HELP_SCROLL,
        Action::ScrollUp,
    ),
    bind(
        &[
            Key::Code(KeyCode::Enter),
            Key::Code(KeyCode::Right),
            Key::Char('l'),
            Key::Char(' '),
        ],
        "⏎ → l",
        strings::HELP_ENTER,
        Action::Enter,
    ),
    bind(
        &[
            Key::Code(KeyCode::Esc),
            Key::Code(KeyCode::Left),
            Key::Char('h'),
            Key::Code(KeyCode::Backspace),
        ],
        "Esc ← h",
        strings::HELP_BACK,
        Action::Back,
    ),
    bind(
        &[Key::Char('/')],
        "/",
        strings::HELP_SEARCH,
        Action::StartSearch,
    ),
    bind(
        &[Key::Char('s')],
        "s",
        strings::HELP_STATUS,
        Action::CycleStatus,
    ),
    bind(
        &[Key::Char(':')],
        ":",
        strings::HELP_COMMAND,
        Action::StartCommand,
    ),
    bind(
        &[Key::Char('r'), Key::Code(KeyCode::F(5))],
        "r F5",
        strings::HELP_REFRESH,
        Action::Refresh,
    ),
    bind(
        &[Key::Char('c')],
        "c",
        strings::HELP_CAPTURE,
        Action::Capture,
    ),
    bind(&[Key::Char('y')], "y", strings::HELP_COPY, Action::Copy),
    bind(
        &[Key::Char('x')],
        "x",
        strings::HELP_CANCEL,
        Action::CancelRun,
    ),
    bind(&[Key::Char('L')], "L", strings::HELP_LOG, Action::ToggleLog),
    bind(
        &[Key::Char('?')],
        "?",
        strings::HELP_HELP,
        Action::ToggleHelp,
    ),
    bind(
        &[Key::Char('q'), Key::Ctrl('c')],
        "q ^C",
        strings::HELP_QUIT,
        Action::Quit,
    ),
    // Listed so the help shows it; handled by mode below.
    bind(&[], "y n", strings::HELP_CONFIRM, Action::Yes),
];

/// Help rows for the text line (not a binding of normal mode).
pub const TEXT_HELP: (&str, &str) = ("⌫ ⏎ Esc", strings::HELP_TEXT);

/// What a key means in `mode`; `None` for keys that mean nothing there (and for releases).
pub fn action_for(mode: &Mode, event: &KeyEvent) -> Option<Action> {
    if event.kind != KeyEventKind::Press {
        return None;
    }
    let ctrl_c =
        event.modifiers.contains(KeyModifiers::CONTROL) && event.code == KeyCode::Char('c');
    match mode {
        Mode::Command(_) | Mode::Search(_) => {
            if ctrl_c {
                return Some(Action::Escape);
            }
            match event.code {
                KeyCode::Enter => Some(Action::Submit),
                KeyCode::Esc => Some(Action::Escape),
                KeyCode::Backspace => Some(Action::Erase),
                KeyCode::Char(c) if !event.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Action::Input(c))
                }
                _ => None,
            }
        }
        Mode::Confirm(_) => match event.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => Some(Action::Yes),
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => Some(Action::No),
            _ if ctrl_c => Some(Action::No),
            _ => None,
        },
        Mode::Help => match event.code {
            KeyCode::Char('?') | KeyCode::Esc | KeyCode::Char('q') => Some(Action::ToggleHelp),
            _ if ctrl_c => Some(Action::Quit),
            _ => None,
        },
        Mode::Log => match event.code {
            KeyCode::Char('L') | KeyCode::Esc | KeyCode::Char('q') => Some(Action::ToggleLog),
            _ if ctrl_c => Some(Action::Quit),
            _ => None,
        },
        Mode::Normal => {
            if ctrl_c {
                return Some(Action::Quit);
            }
            BINDINGS
                .iter()
                .find(|binding| binding.keys.iter().any(|key| key.matches(event)))
                .map(|binding| binding.action.clone())
        }
    }
}

/// The help overlay's rows: (keys, what they do).
pub fn help_rows() -> Vec<(&'static str, &'static str)> {
    let mut rows: Vec<(&'static str, &'static str)> = Vec::new();
    // The six screen keys read better as one row.
    rows.push(("1-6", strings::HELP_SCREENS));
    for binding in BINDINGS.iter().skip(6) {
        // Tab and S-Tab share a description; so do ↑/↓ and the like: show the pair once.
        if rows.last().is_some_and(|(_, help)| *help == binding.help) {
            let (label, help) = rows.pop().unwrap_or(("", binding.help));
            rows.push((combined(label, binding.label), help));
            continue;
        }
        rows.push((binding.label, binding.help));
        if binding.label == ":" {
            rows.push((strings::HELP_COMMANDS_LABEL, strings::HELP_COMMANDS_SCREENS));
            rows.push((strings::HELP_COMMANDS_LABEL, strings::HELP_COMMANDS_ACTIONS));
        }
    }
    rows.push(TEXT_HELP);
    rows
}

/// `"↑ k"` and `"↓ j"` → `"↑ k / ↓ j"`, leaked once per pair (the help table is static).
fn combined(first: &'static str, second: &'static str) -> &'static str {
    match (first, second) {
        ("Tab", "S-Tab") => "Tab S-Tab",
        ("↑ k", "↓ j") => "↑↓ jk",
        ("PgUp ^U", "PgDn ^D") => "PgUp PgDn ^U ^D",
        ("Home g", "End G") => "Home End g G",
        ("J", "K") => "J K",
        _ => second,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn normal_keys_map_through_the_table() {
        let mode = Mode::Normal;
        assert!(matches!(
            action_for(&mode, &press(KeyCode::Char('3'))),
            Some(Action::Show(Screen::Queue))
        ));
        assert!(matches!(
            action_for(&mode, &press(KeyCode::Char('j'))),
            Some(Action::Down)
        ));
        assert!(matches!(
            action_for(&mode, &press(KeyCode::Enter)),
            Some(Action::Enter)
        ));
        assert!(matches!(
            action_for(
                &mode,
                &KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)
            ),
            Some(Action::Quit)
        ));
        assert!(matches!(
            action_for(&mode, &press(KeyCode::Char('c'))),
            Some(Action::Capture)
        ));
        assert!(action_for(&mode, &press(KeyCode::Char('Z'))).is_none());
    }

    #[test]
    fn text_modes_take_characters_literally() {
        let mode = Mode::Command(String::new());
        assert!(matches!(
            action_for(&mode, &press(KeyCode::Char('q'))),
            Some(Action::Input('q'))
        ));
        assert!(matches!(
            action_for(&mode, &press(KeyCode::Esc)),
            Some(Action::Escape)
        ));
    }

    #[test]
    fn releases_are_ignored() {
        let mut release = press(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert!(action_for(&Mode::Normal, &release).is_none());
    }

    #[test]
    fn help_lists_every_binding() {
        let rows = help_rows();
        let labels: Vec<&str> = rows.iter().map(|(label, _)| *label).collect();
        for expected in [
            "1-6",
            "↑↓ jk",
            "J K",
            "/",
            ":",
            "c",
            "y",
            "x",
            "?",
            "q ^C",
            "L",
        ] {
            assert!(labels.contains(&expected), "{expected} in {labels:?}");
        }
    }
}
