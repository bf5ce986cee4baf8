//! The dashboard's state and its one entry point, [`App::update`]: an [`Action`] in (a key's
//! meaning, a poll's result, a finished action), [`Effect`]s out (poll now, fetch a run,
//! capture, cancel, copy, quit) for the main loop to carry out. Nothing here touches the terminal
//! or the network, so every transition is unit-tested.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kneo_client::Reply;
use kneo_client::wire::{AuditEventList, CheckpointPage, Run, RunList, TracePage};
use kneo_triage::triage::{self, Health, Level, Probes, Report, Thresholds, Verdict};

use crate::history::{History, Sample};
use crate::strings;

/// The screens, in tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Screen {
    Triage,
    Readiness,
    Queue,
    Runs,
    Tasks,
    Events,
}

impl Screen {
    pub const ALL: [Screen; 6] = [
        Screen::Triage,
        Screen::Readiness,
        Screen::Queue,
        Screen::Runs,
        Screen::Tasks,
        Screen::Events,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Triage => strings::SCREEN_TRIAGE,
            Screen::Readiness => strings::SCREEN_READINESS,
            Screen::Queue => strings::SCREEN_QUEUE,
            Screen::Runs => strings::SCREEN_RUNS,
            Screen::Tasks => strings::SCREEN_TASKS,
            Screen::Events => strings::SCREEN_EVENTS,
        }
    }

    fn index(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    fn offset(self, by: isize) -> Screen {
        let len = Screen::ALL.len() as isize;
        Screen::ALL[((self.index() as isize + by).rem_euclid(len)) as usize]
    }

    /// The screen a `:command` names.
    pub fn from_command(word: &str) -> Option<Screen> {
        match word {
            "triage" | "t" | "tree" => Some(Screen::Triage),
            "readiness" | "ready" | "readyz" | "health" => Some(Screen::Readiness),
            "queue" | "stuck" => Some(Screen::Queue),
            "runs" | "run" => Some(Screen::Runs),
            "tasks" | "human" | "human-tasks" => Some(Screen::Tasks),
            "events" | "ev" => Some(Screen::Events),
            _ => None,
        }
    }
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// A service given by URL (flags, environment or profile).
    Live,
    /// The embedded server `--local` started.
    Local,
    /// A capture bundle, read once.
    Bundle { path: PathBuf, created_at: String },
}

/// Facts about the session that do not change.
#[derive(Debug, Clone)]
pub struct Source {
    pub kind: SourceKind,
    /// The target URL without credentials.
    pub target: String,
    pub refresh: Duration,
    pub read_only: bool,
    pub has_key: bool,
}

/// Tunables from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    pub thresholds: Thresholds,
    /// A human task whose deadline is closer than this is "expiring soon".
    pub expiring_soon: Duration,
    /// How far back the "backlog rising" rule looks.
    pub backlog_window: Duration,
    /// Polls kept for sparklines.
    pub history_len: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            thresholds: Thresholds::default(),
            expiring_soon: Duration::from_secs(300),
            backlog_window: Duration::from_secs(600),
            history_len: 300,
        }
    }
}

/// One poll's result, as the poller hands it over.
#[derive(Debug, Clone)]
pub struct PollOutcome {
    pub probes: Probes,
    /// `GET /v1/runs?status=failed`, newest first (for the Queue screen).
    pub failed_runs: Option<Reply<RunList>>,
    /// Wall time of the whole poll.
    pub elapsed: Duration,
}

/// The latest poll, evaluated.
#[derive(Debug, Clone)]
pub struct Latest {
    pub probes: Probes,
    pub failed_runs: Option<Reply<RunList>>,
    pub report: Report,
    pub elapsed: Duration,
}

/// A value fetched for a drill-down or a list: the value, or why there is none.
pub type Fetched<T> = Result<T, String>;

/// Everything about one run, for the drill-down.
#[derive(Debug, Clone)]
pub struct DrillData {
    pub run: Fetched<Run>,
    pub trace: Fetched<TracePage>,
    pub checkpoints: Fetched<CheckpointPage>,
    pub audit: Fetched<AuditEventList>,
}

/// The levels of the drill-down, in the order Enter walks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillLevel {
    Run,
    Trace,
    Checkpoints,
    Audit,
}

impl DrillLevel {
    pub const ALL: [DrillLevel; 4] = [
        DrillLevel::Run,
        DrillLevel::Trace,
        DrillLevel::Checkpoints,
        DrillLevel::Audit,
    ];

    pub fn title(self) -> &'static str {
        match self {
            DrillLevel::Run => strings::DRILL_RUN,
            DrillLevel::Trace => strings::DRILL_TRACE,
            DrillLevel::Checkpoints => strings::DRILL_CHECKPOINTS,
            DrillLevel::Audit => strings::DRILL_AUDIT,
        }
    }

    fn deeper(self) -> Option<DrillLevel> {
        match self {
            DrillLevel::Run => Some(DrillLevel::Trace),
            DrillLevel::Trace => Some(DrillLevel::Checkpoints),
            DrillLevel::Checkpoints => Some(DrillLevel::Audit),
            DrillLevel::Audit => None,
        }
    }

    fn shallower(self) -> Option<DrillLevel> {
        match self {
            DrillLevel::Run => None,
            DrillLevel::Trace => Some(DrillLevel::Run),
            DrillLevel::Checkpoints => Some(DrillLevel::Trace),
            DrillLevel::Audit => Some(DrillLevel::Checkpoints),
        }
    }
}

/// An open drill-down.
#[derive(Debug, Clone)]
pub struct Drill {
    pub run_id: String,
    pub level: DrillLevel,
    pub data: Option<DrillData>,
    pub selected: usize,
}

/// The Runs screen.
#[derive(Debug, Clone, Default)]
pub struct RunsState {
    /// `None` lists every status.
    pub status: Option<String>,
    pub search: String,
    pub list: Option<Fetched<RunList>>,
    /// Why the list on screen is old: the last fetch failed with this.
    pub stale: Option<String>,
    pub selected: usize,
    pub drill: Option<Drill>,
}

/// The statuses the `s` key cycles through (`None` = all).
pub const STATUS_CYCLE: [Option<&str>; 8] = [
    None,
    Some("queued"),
    Some("running"),
    Some("blocked"),
    Some("failed"),
    Some("completed"),
    Some("cancelled"),
    Some("timed_out"),
];

/// What the details poller should fetch: the runs list (only while the Runs screen shows) and
/// the open drill-down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunsWatch {
    /// Whether the Runs screen is on screen (no list is fetched otherwise).
    pub visible: bool,
    pub status: Option<String>,
    pub drill: Option<String>,
}

/// The Triage screen: which verdicts are open, which is selected.
#[derive(Debug, Clone)]
pub struct TriageState {
    /// Verdict ids the user opened or closed, overriding the default (non-ok stages open).
    pub toggled: BTreeSet<String>,
    pub selected: Option<String>,
    /// Whether the selection follows the worst finding (until the user moves it).
    pub follow: bool,
    /// The verdict and runbook pane beside the tree.
    pub pane: PaneState,
}

impl Default for TriageState {
    fn default() -> Self {
        TriageState {
            toggled: BTreeSet::new(),
            selected: None,
            follow: true,
            pane: PaneState::default(),
        }
    }
}

/// The verdict and runbook pane: where it is scrolled to, and whether it has the keys (⏎ on a
/// finding gives them to it: ↑↓ pick a `§` reference, ⏎ opens that section, Esc goes back).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaneState {
    /// Wrapped lines scrolled past.
    pub scroll: u16,
    pub focused: bool,
    /// Which of the pane's `§` references is picked (when focused).
    pub reference: usize,
    /// Sections opened from references, newest last.
    pub opened: Vec<String>,
    /// What the last frame drew, to keep scrolling within the text.
    pub facts: PaneFacts,
}

/// What rendering found out about the pane (it alone knows the wrapped lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaneFacts {
    /// Wrapped lines of text, and the rows the pane shows.
    pub lines: u16,
    pub height: u16,
    /// The `§` references in the pane (section numbers) and the wrapped line of each.
    pub references: Vec<String>,
    pub reference_lines: Vec<u16>,
}

impl PaneState {
    fn max_scroll(&self) -> u16 {
        self.facts.lines.saturating_sub(self.facts.height)
    }

    fn scroll_by(&mut self, by: i32) {
        let next = (i32::from(self.scroll) + by).clamp(0, i32::from(self.max_scroll()));
        self.scroll = u16::try_from(next).unwrap_or(0);
    }

    /// Moves the pick to the next or previous reference and scrolls it into view.
    fn pick(&mut self, by: isize) {
        let count = self.facts.reference_lines.len();
        if count == 0 {
            self.scroll_by(by as i32);
            return;
        }
        self.reference = (self.reference as isize + by).clamp(0, count as isize - 1) as usize;
        if let Some(line) = self.facts.reference_lines.get(self.reference).copied() {
            let height = self.facts.height.max(1);
            if line < self.scroll || line >= self.scroll + height {
                self.scroll = line.saturating_sub(2).min(self.max_scroll());
            }
        }
    }
}

/// An action that needs a yes before it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    Capture { run_id: String },
    Cancel { run_id: String },
}

/// What keys mean right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Command(String),
    Search(String),
    Confirm(Pending),
    Help,
    Log,
}

/// One line of the action log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub at: DateTime<Utc>,
    pub ok: bool,
    pub text: String,
}

/// A health change the dashboard itself saw between two polls.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    pub at: DateTime<Utc>,
    pub health: Health,
    pub headline: String,
}

/// Everything `update` can be told.
#[derive(Debug, Clone)]
pub enum Action {
    Quit,
    Show(Screen),
    NextScreen,
    PrevScreen,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Enter,
    Back,
    ToggleHelp,
    ToggleLog,
    StartCommand,
    StartSearch,
    Input(char),
    Erase,
    Submit,
    Escape,
    Refresh,
    CycleStatus,
    Capture,
    Copy,
    CancelRun,
    Yes,
    No,
    /// A poll finished; `at` is when (the clock is injected for tests).
    Polled {
        outcome: Box<PollOutcome>,
        at: DateTime<Utc>,
    },
    /// The runs list for `status` arrived.
    RunsLoaded {
        status: Option<String>,
        result: Fetched<RunList>,
    },
    DrillLoaded {
        run_id: String,
        data: Box<DrillData>,
    },
    /// A background action (capture, cancel) finished or made progress.
    Logged(LogEntry),
    /// A message for the footer (copy done, refresh asked).
    Notice(String),
    /// Scroll the verdict and runbook pane (J / K).
    ScrollDown,
    ScrollUp,
    /// What the last frame drew of the verdict pane.
    PaneDrawn(PaneFacts),
}

/// What the main loop must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    RefreshNow,
    /// The runs list / drill-down to keep fresh changed.
    WatchRuns(RunsWatch),
    Capture {
        run_id: String,
    },
    Cancel {
        run_id: String,
    },
    /// Copy to the terminal clipboard (OSC 52).
    Copy {
        text: String,
    },
    Quit,
}

/// Rows a page-up/page-down moves.
const PAGE: usize = 10;

/// The whole state.
#[derive(Debug, Clone)]
pub struct App {
    pub source: Source,
    pub settings: Settings,
    pub screen: Screen,
    pub mode: Mode,
    pub latest: Option<Latest>,
    /// The latest poll in which the service answered: every screen but Triage keeps showing it,
    /// marked stale, while the service does not answer.
    pub last_answered: Option<Latest>,
    /// When the last poll whose `/healthz` answered 200 finished.
    pub last_good_at: Option<DateTime<Utc>>,
    pub history: History,
    pub triage: TriageState,
    pub readiness_selected: usize,
    /// Whether the Readiness selection follows the first failing check (until the user moves).
    pub readiness_follow: bool,
    pub queue_selected: usize,
    pub tasks_selected: usize,
    pub events_selected: usize,
    pub runs: RunsState,
    pub action_log: Vec<LogEntry>,
    /// The footer's message until the next key.
    pub message: Option<String>,
    pub observed: Vec<Observed>,
    pub quit: bool,
}

/// Action log entries kept (the oldest go first).
const MAX_LOG: usize = 200;
/// Observed transitions kept.
const MAX_OBSERVED: usize = 100;

impl App {
    pub fn new(source: Source, settings: Settings) -> App {
        let history = History::new(settings.history_len);
        App {
            source,
            settings,
            screen: Screen::Triage,
            mode: Mode::Normal,
            latest: None,
            last_answered: None,
            last_good_at: None,
            history,
            triage: TriageState::default(),
            readiness_selected: 0,
            readiness_follow: true,
            queue_selected: 0,
            tasks_selected: 0,
            events_selected: 0,
            runs: RunsState::default(),
            action_log: Vec::new(),
            message: None,
            observed: Vec::new(),
            quit: false,
        }
    }

    /// Whether the verdict pane has the keys (Triage screen only).
    pub fn pane_focused(&self) -> bool {
        self.screen == Screen::Triage && self.triage.pane.focused
    }

    /// The poll whose answers the screens show: the latest, or while the service does not
    /// answer, the last one in which it did (with `true` for "stale").
    pub fn shown(&self) -> Option<(&Latest, bool)> {
        let latest = self.latest.as_ref()?;
        if latest.probes.not_answering()
            && let Some(answered) = &self.last_answered
        {
            return Some((answered, true));
        }
        Some((latest, false))
    }

    pub fn is_offline(&self) -> bool {
        matches!(self.source.kind, SourceKind::Bundle { .. })
    }

    /// The runs list and drill-down the details poller should keep fresh.
    pub fn runs_watch(&self) -> RunsWatch {
        RunsWatch {
            visible: self.screen == Screen::Runs,
            status: self.runs.status.clone(),
            drill: self.runs.drill.as_ref().map(|d| d.run_id.clone()),
        }
    }

    /// Applies one action; returns what the main loop must do. Whenever what the details
    /// poller should watch changes (screen, filter, drill-down), the effects say so.
    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        let before = self.runs_watch();
        let mut effects = self.apply(action);
        let after = self.runs_watch();
        let announced = effects.iter().any(|e| matches!(e, Effect::WatchRuns(_)));
        if before != after && !announced {
            effects.push(Effect::WatchRuns(after));
        }
        effects
    }

    fn apply(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Polled { outcome, at } => {
                self.apply_poll(*outcome, at);
                Vec::new()
            }
            Action::RunsLoaded { status, result } => {
                if status == self.runs.status {
                    match (result, &self.runs.list) {
                        // A failed fetch keeps the last list on screen, marked stale.
                        (Err(error), Some(Ok(_))) => self.runs.stale = Some(error),
                        (result, _) => {
                            self.runs.stale = None;
                            self.runs.list = Some(result);
                        }
                    }
                    self.clamp_runs_selection();
                }
                Vec::new()
            }
            Action::DrillLoaded { run_id, data } => {
                if let Some(drill) = self.runs.drill.as_mut().filter(|d| d.run_id == run_id) {
                    drill.data = Some(*data);
                }
                Vec::new()
            }
            Action::Logged(entry) => {
                self.message = Some(entry.text.clone());
                self.log(entry);
                Vec::new()
            }
            Action::Notice(text) => {
                self.message = Some(text);
                Vec::new()
            }
            Action::PaneDrawn(facts) => {
                self.triage.pane.facts = facts;
                self.triage.pane.scroll =
                    self.triage.pane.scroll.min(self.triage.pane.max_scroll());
                Vec::new()
            }
            other => self.update_input(other),
        }
    }

    fn update_input(&mut self, action: Action) -> Vec<Effect> {
        // A key clears the last message, unless it shows a new one.
        self.message = None;
        match self.mode.clone() {
            Mode::Command(text) => self.update_text(action, text, true),
            Mode::Search(text) => self.update_text(action, text, false),
            Mode::Confirm(pending) => self.update_confirm(action, pending),
            Mode::Help => {
                if matches!(action, Action::ToggleHelp | Action::Escape | Action::Quit) {
                    self.mode = Mode::Normal;
                }
                Vec::new()
            }
            Mode::Log => {
                if matches!(action, Action::ToggleLog | Action::Escape | Action::Quit) {
                    self.mode = Mode::Normal;
                }
                Vec::new()
            }
            Mode::Normal => self.update_normal(action),
        }
    }

    fn update_text(&mut self, action: Action, mut text: String, command: bool) -> Vec<Effect> {
        let wrap = |text: String| {
            if command {
                Mode::Command(text)
            } else {
                Mode::Search(text)
            }
        };
        match action {
            Action::Input(c) => {
                text.push(c);
                if !command {
                    self.runs.search = text.clone();
                    self.runs.selected = 0;
                }
                self.mode = wrap(text);
                Vec::new()
            }
            Action::Erase => {
                text.pop();
                if !command {
                    self.runs.search = text.clone();
                    self.runs.selected = 0;
                }
                self.mode = wrap(text);
                Vec::new()
            }
            Action::Escape => {
                if !command {
                    self.runs.search.clear();
                }
                self.mode = Mode::Normal;
                Vec::new()
            }
            Action::Submit => {
                self.mode = Mode::Normal;
                if command {
                    self.run_command(text.trim())
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        }
    }

    fn update_confirm(&mut self, action: Action, pending: Pending) -> Vec<Effect> {
        match action {
            Action::Yes | Action::Submit => {
                self.mode = Mode::Normal;
                match pending {
                    Pending::Capture { run_id } => vec![Effect::Capture { run_id }],
                    Pending::Cancel { run_id } => vec![Effect::Cancel { run_id }],
                }
            }
            Action::No | Action::Escape | Action::Quit => {
                self.mode = Mode::Normal;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn update_normal(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Quit => {
                self.quit = true;
                vec![Effect::Quit]
            }
            Action::Show(screen) => {
                self.screen = screen;
                Vec::new()
            }
            Action::NextScreen => {
                self.screen = self.screen.offset(1);
                Vec::new()
            }
            Action::PrevScreen => {
                self.screen = self.screen.offset(-1);
                Vec::new()
            }
            Action::Up if self.pane_focused() => {
                self.triage.pane.pick(-1);
                Vec::new()
            }
            Action::Down if self.pane_focused() => {
                self.triage.pane.pick(1);
                Vec::new()
            }
            Action::PageUp if self.pane_focused() => {
                let page = self.triage.pane.facts.height.max(1);
                self.triage.pane.scroll_by(-i32::from(page));
                Vec::new()
            }
            Action::PageDown if self.pane_focused() => {
                let page = self.triage.pane.facts.height.max(1);
                self.triage.pane.scroll_by(i32::from(page));
                Vec::new()
            }
            Action::ScrollDown => {
                self.triage.pane.scroll_by(3);
                Vec::new()
            }
            Action::ScrollUp => {
                self.triage.pane.scroll_by(-3);
                Vec::new()
            }
            Action::Up => {
                self.move_selection(-1);
                Vec::new()
            }
            Action::Down => {
                self.move_selection(1);
                Vec::new()
            }
            Action::PageUp => {
                self.move_selection(-(PAGE as isize));
                Vec::new()
            }
            Action::PageDown => {
                self.move_selection(PAGE as isize);
                Vec::new()
            }
            Action::Top => {
                self.move_selection(isize::MIN / 2);
                Vec::new()
            }
            Action::Bottom => {
                self.move_selection(isize::MAX / 2);
                Vec::new()
            }
            Action::Enter => self.enter(),
            Action::Back | Action::Escape => self.back(),
            Action::ToggleHelp => {
                self.mode = Mode::Help;
                Vec::new()
            }
            Action::ToggleLog => {
                self.mode = Mode::Log;
                Vec::new()
            }
            Action::StartCommand => {
                self.mode = Mode::Command(String::new());
                Vec::new()
            }
            Action::StartSearch => {
                self.screen = Screen::Runs;
                self.mode = Mode::Search(self.runs.search.clone());
                Vec::new()
            }
            Action::Refresh => {
                self.message = Some(strings::refreshed());
                vec![Effect::RefreshNow, Effect::WatchRuns(self.runs_watch())]
            }
            Action::CycleStatus => {
                let position = STATUS_CYCLE
                    .iter()
                    .position(|s| s.map(str::to_string) == self.runs.status)
                    .unwrap_or(0);
                let next = STATUS_CYCLE[(position + 1) % STATUS_CYCLE.len()];
                self.set_status_filter(next.map(str::to_string))
            }
            Action::Capture => self.ask(true),
            Action::CancelRun => self.ask(false),
            Action::Copy => self.copy(),
            _ => Vec::new(),
        }
    }

    fn run_command(&mut self, line: &str) -> Vec<Effect> {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            return Vec::new();
        };
        let rest: Vec<&str> = words.collect();
        if let Some(screen) = Screen::from_command(first) {
            self.screen = screen;
            if screen == Screen::Runs
                && let Some(status) = rest.first()
            {
                let status = (*status != strings::FILTER_ALL).then(|| status.to_string());
                return self.set_status_filter(status);
            }
            return Vec::new();
        }
        match first {
            "q" | "quit" | "exit" => {
                self.quit = true;
                vec![Effect::Quit]
            }
            "refresh" | "r" => self.update_normal(Action::Refresh),
            "capture" => self.ask(true),
            "cancel" => self.ask(false),
            "copy" | "yank" => self.copy(),
            "log" => {
                self.mode = Mode::Log;
                Vec::new()
            }
            "help" | "h" | "?" => {
                self.mode = Mode::Help;
                Vec::new()
            }
            other => {
                self.message = Some(strings::unknown_command(other));
                Vec::new()
            }
        }
    }

    fn set_status_filter(&mut self, status: Option<String>) -> Vec<Effect> {
        self.screen = Screen::Runs;
        if self.runs.status != status {
            self.runs.status = status;
            self.runs.list = None;
            self.runs.selected = 0;
        }
        vec![Effect::WatchRuns(self.runs_watch())]
    }

    /// Asks before a capture (`capture: true`) or a cancel of the selected run.
    fn ask(&mut self, capture: bool) -> Vec<Effect> {
        if self.source.read_only {
            self.message = Some(strings::READ_ONLY.into());
            return Vec::new();
        }
        if self.is_offline() {
            self.message = Some(strings::OFFLINE.into());
            return Vec::new();
        }
        let Some(run_id) = self.selected_run_id() else {
            self.message = Some(strings::NO_RUN_SELECTED.into());
            return Vec::new();
        };
        if !capture
            && self
                .identity_scopes()
                .is_some_and(|s| !s.contains("runs:write"))
        {
            self.message = Some(strings::CANNOT_WRITE.into());
            return Vec::new();
        }
        self.mode = Mode::Confirm(if capture {
            Pending::Capture { run_id }
        } else {
            Pending::Cancel { run_id }
        });
        Vec::new()
    }

    fn copy(&mut self) -> Vec<Effect> {
        if self.source.read_only {
            self.message = Some(strings::READ_ONLY.into());
            return Vec::new();
        }
        match self.selected_copy_id() {
            Some(text) => {
                self.message = Some(strings::copied(&text));
                self.log(LogEntry {
                    at: self.clock(),
                    ok: true,
                    text: strings::copied(&text),
                });
                vec![Effect::Copy { text }]
            }
            None => {
                self.message = Some(strings::NOTHING_TO_COPY.into());
                Vec::new()
            }
        }
    }

    /// The time of the latest poll (the app has no clock of its own).
    fn clock(&self) -> DateTime<Utc> {
        self.latest
            .as_ref()
            .map(|l| l.probes.observed_at)
            .unwrap_or_default()
    }

    pub fn log(&mut self, entry: LogEntry) {
        if self.action_log.len() == MAX_LOG {
            self.action_log.remove(0);
        }
        self.action_log.push(entry);
    }

    /// The scopes of the key in use, when `GET /v1/health` told them.
    pub fn identity_scopes(&self) -> Option<BTreeSet<String>> {
        let identity = self
            .latest
            .as_ref()?
            .probes
            .health_detail
            .as_ref()?
            .value()?
            .identity
            .as_ref()?;
        let scopes = identity.get("scopes")?.as_array()?;
        Some(
            scopes
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect(),
        )
    }

    // ---- polls ----

    fn apply_poll(&mut self, outcome: PollOutcome, at: DateTime<Utc>) {
        let PollOutcome {
            mut probes,
            failed_runs,
            elapsed,
        } = outcome;
        probes.backlog_history = self
            .history
            .backlog_since(probes.observed_at, self.settings.backlog_window);
        let report = triage::evaluate(&probes, &self.settings.thresholds);
        let healthz_ok = probes.healthz.is_ok();
        let ready = probes
            .readyz
            .as_ref()
            .and_then(|r| r.value())
            .map(|r| r.ready);
        self.history.push(Sample {
            at: probes.observed_at,
            health: healthz_ok.then_some(report.health),
            ready,
            queued: probes.queued_count(),
            running: probes.running_count(),
            workers: probes.worker_count(),
            latency: elapsed,
        });
        if healthz_ok {
            self.last_good_at = Some(at);
        }
        let previous = self.latest.as_ref().map(|l| l.report.health);
        if previous != Some(report.health) {
            let headline = report
                .findings()
                .first()
                .map(|v| v.title.clone())
                .unwrap_or_else(|| strings::ALL_OK.into());
            if self.observed.len() == MAX_OBSERVED {
                self.observed.remove(0);
            }
            self.observed.push(Observed {
                at: probes.observed_at,
                health: report.health,
                headline,
            });
        }
        let latest = Latest {
            probes,
            failed_runs,
            report,
            elapsed,
        };
        if !latest.probes.not_answering() {
            self.last_answered = Some(latest.clone());
        }
        self.latest = Some(latest);
        self.settle_triage_selection();
        if self.readiness_follow {
            self.readiness_selected = self
                .latest
                .as_ref()
                .and_then(|l| l.probes.readyz.as_ref())
                .and_then(|r| r.value())
                .and_then(|r| r.checks.iter().position(|c| !c.ok))
                .unwrap_or(0);
        }
    }

    /// Keeps the triage selection on something that exists; follows the worst finding until
    /// the user moves.
    fn settle_triage_selection(&mut self) {
        let Some(latest) = &self.latest else {
            return;
        };
        let exists = |id: &str| latest.report.all().iter().any(|v| v.id == id);
        let still_there = self.triage.selected.as_deref().is_some_and(exists);
        if self.triage.follow || !still_there {
            self.triage.follow = true;
            let wanted = latest
                .report
                .findings()
                .first()
                .map(|v| v.id.clone())
                .or_else(|| latest.report.stages.first().map(|v| v.id.clone()))
                .unwrap_or_default();
            if self.triage.selected.as_deref() != Some(wanted.as_str()) {
                self.triage.pane = PaneState::default();
            }
            self.triage.selected = Some(wanted);
        }
    }

    // ---- triage tree ----

    /// Whether a verdict's children are shown: non-ok verdicts open by default, ok ones closed;
    /// a toggle flips the default. The selected finding's ancestors are always open.
    pub fn is_expanded(&self, verdict: &Verdict) -> bool {
        let default = verdict.level != Level::Ok;
        default != self.triage.toggled.contains(&verdict.id)
    }

    /// The visible rows of the tree: (depth, verdict), depth first.
    pub fn visible_verdicts<'a>(&self, report: &'a Report) -> Vec<(usize, &'a Verdict)> {
        fn visit<'a>(
            app: &App,
            verdict: &'a Verdict,
            depth: usize,
            out: &mut Vec<(usize, &'a Verdict)>,
        ) {
            out.push((depth, verdict));
            if app.is_expanded(verdict) {
                for child in &verdict.children {
                    visit(app, child, depth + 1, out);
                }
            }
        }
        let mut out = Vec::new();
        for group in report.groups() {
            visit(self, group, 0, &mut out);
        }
        out
    }

    fn triage_rows(&self) -> Vec<String> {
        self.latest
            .as_ref()
            .map(|latest| {
                self.visible_verdicts(&latest.report)
                    .into_iter()
                    .map(|(_, v)| v.id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn selected_verdict(&self) -> Option<&Verdict> {
        let latest = self.latest.as_ref()?;
        let id = self.triage.selected.as_deref()?;
        latest.report.all().into_iter().find(|v| v.id == id)
    }

    // ---- selection ----

    /// Rows on the current screen (for clamping the selection).
    pub fn row_count(&self) -> usize {
        match self.screen {
            Screen::Triage => self.triage_rows().len(),
            Screen::Readiness => self
                .shown()
                .and_then(|(l, _)| l.probes.readyz.as_ref())
                .and_then(|r| r.value())
                .map(|r| r.checks.len())
                .unwrap_or(0),
            Screen::Queue => self.queue_rows().len(),
            Screen::Runs => match &self.runs.drill {
                Some(drill) => self.drill_row_count(drill),
                None => self.filtered_runs().len(),
            },
            Screen::Tasks => self.task_count(),
            Screen::Events => self.event_count(),
        }
    }

    fn move_selection(&mut self, by: isize) {
        let count = self.row_count();
        let step = |current: usize| -> usize {
            if count == 0 {
                return 0;
            }
            (current as isize)
                .saturating_add(by)
                .clamp(0, count as isize - 1) as usize
        };
        match self.screen {
            Screen::Triage => {
                let rows = self.triage_rows();
                let current = self
                    .triage
                    .selected
                    .as_ref()
                    .and_then(|id| rows.iter().position(|r| r == id))
                    .unwrap_or(0);
                if let Some(id) = rows.get(step(current)) {
                    if self.triage.selected.as_ref() != Some(id) {
                        self.triage.pane = PaneState::default();
                    }
                    self.triage.selected = Some(id.clone());
                    self.triage.follow = false;
                }
            }
            Screen::Readiness => {
                self.readiness_selected = step(self.readiness_selected);
                self.readiness_follow = false;
            }
            Screen::Queue => self.queue_selected = step(self.queue_selected),
            Screen::Runs => {
                if let Some(drill) = self.runs.drill.as_mut() {
                    drill.selected = step(drill.selected);
                } else {
                    self.runs.selected = step(self.runs.selected);
                }
            }
            Screen::Tasks => self.tasks_selected = step(self.tasks_selected),
            Screen::Events => self.events_selected = step(self.events_selected),
        }
    }

    fn clamp_runs_selection(&mut self) {
        let count = self.filtered_runs().len();
        self.runs.selected = self.runs.selected.min(count.saturating_sub(1));
    }

    fn enter(&mut self) -> Vec<Effect> {
        match self.screen {
            Screen::Triage => {
                let pane = &mut self.triage.pane;
                if pane.focused {
                    // ⏎ on a `§` reference opens that section in the pane.
                    if let Some(number) = pane.facts.references.get(pane.reference).cloned() {
                        pane.opened.push(number);
                        pane.scroll = 0;
                        pane.reference = 0;
                    }
                    return Vec::new();
                }
                match self.selected_verdict() {
                    Some(verdict) if !verdict.children.is_empty() => {
                        let id = verdict.id.clone();
                        if !self.triage.toggled.remove(&id) {
                            self.triage.toggled.insert(id);
                        }
                    }
                    // ⏎ on a leaf gives the keys to the verdict and runbook pane.
                    Some(_) => {
                        self.triage.pane.focused = true;
                        self.triage.pane.reference = 0;
                    }
                    None => {}
                }
                self.triage.follow = false;
                Vec::new()
            }
            Screen::Runs => {
                if let Some(drill) = self.runs.drill.as_mut() {
                    if let Some(deeper) = drill.level.deeper() {
                        drill.level = deeper;
                        drill.selected = 0;
                    }
                    return Vec::new();
                }
                let Some(run_id) = self
                    .filtered_runs()
                    .get(self.runs.selected)
                    .map(|r| r.run_id.clone())
                else {
                    return Vec::new();
                };
                self.open_drill(run_id)
            }
            Screen::Queue => {
                let Some(run_id) = self
                    .queue_rows()
                    .get(self.queue_selected)
                    .map(|r| r.run_id.clone())
                else {
                    return Vec::new();
                };
                self.screen = Screen::Runs;
                self.open_drill(run_id)
            }
            Screen::Tasks => {
                let Some(run_id) = self
                    .sorted_tasks()
                    .get(self.tasks_selected)
                    .and_then(|t| t.run_id.clone())
                else {
                    return Vec::new();
                };
                self.screen = Screen::Runs;
                self.open_drill(run_id)
            }
            _ => Vec::new(),
        }
    }

    fn open_drill(&mut self, run_id: String) -> Vec<Effect> {
        self.runs.drill = Some(Drill {
            run_id,
            level: DrillLevel::Run,
            data: None,
            selected: 0,
        });
        vec![Effect::WatchRuns(self.runs_watch())]
    }

    fn back(&mut self) -> Vec<Effect> {
        match self.screen {
            Screen::Triage if self.triage.pane.focused => {
                let pane = &mut self.triage.pane;
                if pane.opened.pop().is_none() {
                    pane.focused = false;
                }
                pane.scroll = 0;
                pane.reference = 0;
                Vec::new()
            }
            Screen::Triage => {
                if let Some(verdict) = self.selected_verdict() {
                    let id = verdict.id.clone();
                    if self.is_expanded(verdict) && !verdict.children.is_empty() {
                        if !self.triage.toggled.remove(&id) {
                            self.triage.toggled.insert(id);
                        }
                    } else if let Some(parent) = self.parent_of(&id) {
                        self.triage.selected = Some(parent);
                    }
                    self.triage.follow = false;
                }
                Vec::new()
            }
            Screen::Runs => {
                let Some(drill) = self.runs.drill.as_mut() else {
                    if !self.runs.search.is_empty() {
                        self.runs.search.clear();
                    }
                    return Vec::new();
                };
                match drill.level.shallower() {
                    Some(level) => {
                        drill.level = level;
                        drill.selected = 0;
                        Vec::new()
                    }
                    None => {
                        self.runs.drill = None;
                        vec![Effect::WatchRuns(self.runs_watch())]
                    }
                }
            }
            _ => Vec::new(),
        }
    }

    fn parent_of(&self, id: &str) -> Option<String> {
        fn search(verdict: &Verdict, id: &str) -> Option<String> {
            for child in &verdict.children {
                if child.id == id {
                    return Some(verdict.id.clone());
                }
                if let Some(found) = search(child, id) {
                    return Some(found);
                }
            }
            None
        }
        let latest = self.latest.as_ref()?;
        latest
            .report
            .groups()
            .into_iter()
            .find_map(|s| search(s, id))
    }

    // ---- derived lists (shared with the view) ----

    pub fn queue_rows(&self) -> Vec<crate::stuck::QueueRow> {
        let Some((latest, _)) = self.shown() else {
            return Vec::new();
        };
        crate::stuck::queue_rows(
            &latest.probes,
            latest.failed_runs.as_ref().and_then(|r| r.value()),
            &self.settings.thresholds,
            latest.probes.observed_at,
        )
    }

    /// The runs list after the `/` search (case-insensitive, on id, status, workflow, agent).
    pub fn filtered_runs(&self) -> Vec<&Run> {
        let Some(Ok(list)) = &self.runs.list else {
            return Vec::new();
        };
        let needle = self.runs.search.to_lowercase();
        list.runs
            .iter()
            .filter(|run| {
                needle.is_empty()
                    || [
                        Some(run.run_id.as_str()),
                        Some(run.status.as_str()),
                        run.workflow_name.as_deref(),
                        run.agent_name.as_deref(),
                        run.current_step_id.as_deref(),
                    ]
                    .into_iter()
                    .flatten()
                    .any(|field| field.to_lowercase().contains(&needle))
            })
            .collect()
    }

    pub fn sorted_tasks(&self) -> Vec<&kneo_client::wire::HumanTask> {
        let mut tasks: Vec<&kneo_client::wire::HumanTask> = self
            .shown()
            .and_then(|(l, _)| l.probes.human_tasks.as_ref())
            .and_then(|r| r.value())
            .map(|list| list.tasks.iter().collect())
            .unwrap_or_default();
        tasks.sort_by(|a, b| {
            a.expires_at
                .unwrap_or(f64::MAX)
                .total_cmp(&b.expires_at.unwrap_or(f64::MAX))
        });
        tasks
    }

    fn task_count(&self) -> usize {
        self.sorted_tasks().len()
    }

    fn event_count(&self) -> usize {
        let service = self
            .shown()
            .and_then(|(l, _)| l.probes.service_events.as_ref())
            .and_then(|r| r.value())
            .map(|list| list.events.len())
            .unwrap_or(0);
        service + self.observed.len()
    }

    pub fn drill_row_count(&self, drill: &Drill) -> usize {
        let Some(data) = &drill.data else {
            return 0;
        };
        match drill.level {
            DrillLevel::Run => 0,
            DrillLevel::Trace => data.trace.as_ref().map(|t| t.events.len()).unwrap_or(0),
            DrillLevel::Checkpoints => data
                .checkpoints
                .as_ref()
                .map(|c| c.checkpoints.len())
                .unwrap_or(0),
            DrillLevel::Audit => data.audit.as_ref().map(|a| a.events.len()).unwrap_or(0),
        }
    }

    /// The run the actions (capture, cancel) apply to on the current screen.
    pub fn selected_run_id(&self) -> Option<String> {
        match self.screen {
            Screen::Runs => match &self.runs.drill {
                Some(drill) => Some(drill.run_id.clone()),
                None => self
                    .filtered_runs()
                    .get(self.runs.selected)
                    .map(|r| r.run_id.clone()),
            },
            Screen::Queue => self
                .queue_rows()
                .get(self.queue_selected)
                .map(|r| r.run_id.clone()),
            Screen::Tasks => self
                .sorted_tasks()
                .get(self.tasks_selected)
                .and_then(|t| t.run_id.clone()),
            Screen::Triage => {
                // Run-level verdicts end with the run id (`queue.silent.<id>`).
                let id = self.triage.selected.as_deref()?;
                let known_runs: Vec<String> = self
                    .queue_rows()
                    .into_iter()
                    .map(|row| row.run_id)
                    .collect();
                known_runs
                    .into_iter()
                    .find(|run| id.ends_with(&format!(".{run}")))
            }
            _ => None,
        }
    }

    /// The id `y` copies: the selected run, task, event or verdict.
    pub fn selected_copy_id(&self) -> Option<String> {
        match self.screen {
            Screen::Tasks => self
                .sorted_tasks()
                .get(self.tasks_selected)
                .map(|t| t.id.clone()),
            Screen::Events => self
                .shown()
                .map(|(shown, _)| crate::view::event_items(self, shown))
                .unwrap_or_default()
                .into_iter()
                .nth(self.events_selected)
                .and_then(|item| item.id),
            Screen::Readiness => self
                .shown()
                .and_then(|(l, _)| l.probes.readyz.as_ref())
                .and_then(|r| r.value())
                .and_then(|r| r.checks.get(self.readiness_selected))
                .map(|c| c.name.clone()),
            Screen::Triage => self
                .selected_run_id()
                .or_else(|| self.triage.selected.clone()),
            _ => self.selected_run_id(),
        }
    }
}

#[cfg(test)]
mod tests;
