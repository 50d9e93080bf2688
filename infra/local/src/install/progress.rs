//! Progress of a long install: a live bar on a terminal, a line every half minute otherwise
//! (CI logs), and a closing summary either way.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

const PLAIN_REPORT_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct InstallProgress {
    what: &'static str,
    bar: Option<ProgressBar>,
    started: Instant,
    last_plain_report: Instant,
}

impl InstallProgress {
    /// `expected_steps` sizes the bar; `None` shows a spinner.
    pub fn start(what: &'static str, expected_steps: Option<u64>) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = match expected_steps {
                Some(total) => ProgressBar::new(total).with_style(
                    ProgressStyle::with_template("  {spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
                        .expect("valid template"),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("  {spinner} [{elapsed_precise}] {msg}").expect("valid template"),
                ),
            };
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            what,
            bar,
            started: Instant::now(),
            last_plain_report: Instant::now(),
        }
    }

    pub fn step(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.set_message(message.to_owned());
            }
            None => self.report_plain(message),
        }
    }

    pub fn message(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(message.to_owned()),
            None => self.report_plain(message),
        }
    }

    fn report_plain(&mut self, message: &str) {
        if self.last_plain_report.elapsed() >= PLAIN_REPORT_EVERY {
            self.last_plain_report = Instant::now();
            eprintln!(
                "  ... {} still in progress ({}s): {message}",
                self.what,
                self.started.elapsed().as_secs()
            );
        }
    }

    pub fn finish(self, summary: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        eprintln!("  {} {summary} in {}s", self.what, self.started.elapsed().as_secs());
    }

    pub fn abandon(self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}
