//! Capture progress on stderr: a bar on a terminal, plain lines otherwise (logs, CI).

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kneo_ops::capture::Progress;
use kneo_triage::manifest::ItemStatus;

pub enum StderrProgress {
    Bar(ProgressBar),
    Lines,
}

impl StderrProgress {
    pub fn new() -> StderrProgress {
        if !std::io::stderr().is_terminal() {
            return StderrProgress::Lines;
        }
        let bar = ProgressBar::new(0);
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} capture [{bar:30}] {pos}/{len} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        StderrProgress::Bar(bar)
    }

    pub fn finish(&self) {
        if let StderrProgress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

impl Progress for StderrProgress {
    fn planned(&self, items: usize) {
        match self {
            StderrProgress::Bar(bar) => bar.set_length(items as u64),
            StderrProgress::Lines => eprintln!("capture: collecting {items} items"),
        }
    }

    fn collected(&self, path: &str, status: ItemStatus, duration: Duration) {
        match self {
            StderrProgress::Bar(bar) => {
                bar.inc(1);
                bar.set_message(path.to_string());
                if status != ItemStatus::Ok {
                    bar.println(format!("  {} {path}", status.as_str()));
                }
            }
            StderrProgress::Lines => eprintln!(
                "capture: {path} {} ({} ms)",
                status.as_str(),
                duration.as_millis()
            ),
        }
    }

    fn writing(&self, output: &Path) {
        match self {
            StderrProgress::Bar(bar) => bar.set_message(format!("writing {}", output.display())),
            StderrProgress::Lines => eprintln!("capture: writing {}", output.display()),
        }
    }
}
