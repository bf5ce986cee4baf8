//! The event task: terminal input (crossterm's async `EventStream`), termination signals and a
//! clock tick, merged into one channel the main loop reads. Pollers and actions send into the
//! same channel, so the main loop waits on exactly one thing and never on the network.

use std::time::Duration;

use crossterm::event::{Event as TerminalEvent, EventStream, KeyEvent};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::app::Action;

/// What the main loop reacts to.
#[derive(Debug)]
pub enum Event {
    Key(KeyEvent),
    /// The terminal changed size: redraw.
    Resize,
    /// Once a second, so ages and the clock move even when nothing else happens.
    Tick,
    /// SIGTERM, SIGHUP, SIGINT or SIGQUIT: leave, restoring the terminal.
    Terminate(&'static str),
    /// The terminal input stream failed or ended (the terminal is gone).
    InputClosed(String),
    /// Data or a result from a background task, applied with `App::update`.
    App(Action),
}

pub type Sender = mpsc::Sender<Event>;
pub type Receiver = mpsc::Receiver<Event>;

/// A channel big enough that a burst of keys never blocks a poller.
pub fn channel() -> (Sender, Receiver) {
    mpsc::channel(256)
}

/// Spawns the terminal input task (only when a terminal is attached).
pub fn spawn_input(sender: Sender) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = EventStream::new();
        loop {
            let event = match stream.next().await {
                Some(Ok(TerminalEvent::Key(key))) => Event::Key(key),
                Some(Ok(TerminalEvent::Resize(_, _))) => Event::Resize,
                Some(Ok(_)) => continue,
                Some(Err(error)) => Event::InputClosed(error.to_string()),
                None => Event::InputClosed("the terminal input stream ended".into()),
            };
            let closed = matches!(event, Event::InputClosed(_));
            if sender.send(event).await.is_err() || closed {
                return;
            }
        }
    })
}

/// Spawns the tick task.
pub fn spawn_ticks(sender: Sender, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        interval.tick().await;
        loop {
            interval.tick().await;
            if sender.send(Event::Tick).await.is_err() {
                return;
            }
        }
    })
}

/// Spawns the signal task: each termination signal becomes [`Event::Terminate`].
pub fn spawn_signals(sender: Sender) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    Ok(tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = hangup.recv() => "SIGHUP",
            _ = interrupt.recv() => "SIGINT",
            _ = quit.recv() => "SIGQUIT",
        };
        let _ = sender.send(Event::Terminate(name)).await;
    }))
}
