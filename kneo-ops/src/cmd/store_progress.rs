//! Progress of a backup, verification or restore on stderr: a bar on a terminal, a line per
//! stage otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use kneo_server::backup::{Progress, Stage};

pub struct StoreProgress {
    name: &'static str,
    bar: Option<ProgressBar>,
    last_stage: Mutex<Option<Stage>>,
}

impl StoreProgress {
    pub fn new(name: &'static str) -> StoreProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            if let Ok(style) =
                ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg}")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(name);
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        StoreProgress {
            name,
            bar,
            last_stage: Mutex::new(None),
        }
    }

    pub fn show(&self, step: &Progress) {
        match &self.bar {
            Some(bar) => {
                bar.set_length(step.total.max(step.done));
                bar.set_position(step.done);
                bar.set_message(format!("{:?} {}", step.stage, step.item));
            }
            None => {
                let mut last = self
                    .last_stage
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if *last != Some(step.stage) {
                    *last = Some(step.stage);
                    eprintln!("{}: {:?} {}", self.name, step.stage, step.item);
                }
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
