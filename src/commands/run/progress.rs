//! What `run --wait` shows while the run goes on: on a terminal one line redrawn in place
//! (a bar of elapsed against planned time, TPS, p95, errors, VUs); elsewhere (a CI log) a
//! plain timestamped line every [`LINE_EVERY`], on each status change and for each note,
//! with no control characters at all.

use std::{
    io::Write,
    time::{Duration, Instant},
};

use super::socket::Snapshot;

/// How often plain lines are written while nothing else happens.
pub const LINE_EVERY: Duration = Duration::from_secs(5);
const BAR_WIDTH: usize = 20;

/// How the progress is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A terminal: one line, redrawn.
    Bar,
    /// A log: whole lines.
    Lines,
}

/// The live figures of a run (from a snapshot, or from the time series when polling).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveFigures {
    pub tps: f64,
    pub p95_ms: f64,
    /// Percent.
    pub error_rate: f64,
    pub vus: f64,
    /// Requests since the start; unknown when polling.
    pub total_requests: Option<i64>,
    pub lagging: bool,
}

impl From<&Snapshot> for LiveFigures {
    fn from(snapshot: &Snapshot) -> Self {
        Self {
            tps: snapshot.tps,
            p95_ms: snapshot.p95_response_time,
            error_rate: snapshot.error_rate,
            vus: snapshot.vus,
            total_requests: Some(snapshot.total_requests),
            lagging: snapshot.samples_lagging,
        }
    }
}

/// The progress display of one run.
pub struct Progress {
    out: Box<dyn Write + Send>,
    style: Style,
    /// The terminal's width, when it says.
    width: Option<usize>,
    run_id: String,
    expected: Option<Duration>,
    status: String,
    figures: Option<LiveFigures>,
    launched: Instant,
    /// When the load started, by our clock (re-anchored on each snapshot's elapsed time).
    load_started: Option<Instant>,
    /// The elapsed time once the run has ended.
    frozen: Option<Duration>,
    last_line: Option<Instant>,
    /// A bar is on the screen, waiting to be redrawn or finished.
    drawn: bool,
}

impl Progress {
    pub fn new(
        out: Box<dyn Write + Send>,
        style: Style,
        width: Option<usize>,
        run_id: &str,
        expected: Option<Duration>,
    ) -> Self {
        Self {
            out,
            style,
            width,
            run_id: run_id.to_owned(),
            expected,
            status: "PENDING".into(),
            figures: None,
            launched: Instant::now(),
            load_started: None,
            frozen: None,
            last_line: None,
            drawn: false,
        }
    }

    /// The run's status as last polled.
    pub fn status(&mut self, status: &str) {
        if status == self.status {
            return;
        }
        self.status = status.to_owned();
        if status == "RUNNING" && self.load_started.is_none() {
            self.load_started = Some(Instant::now());
        }
        if !matches!(status, "PENDING" | "RUNNING") && self.frozen.is_none() {
            self.frozen = Some(self.elapsed());
        }
        self.show();
    }

    /// New live figures; `elapsed` is the load's own clock when the server gave it.
    pub fn figures(&mut self, figures: LiveFigures, elapsed: Option<Duration>) {
        if let Some(elapsed) = elapsed.filter(|_| self.frozen.is_none()) {
            self.load_started = Instant::now().checked_sub(elapsed).or(self.load_started);
        }
        self.figures = Some(figures);
        if self.style == Style::Bar {
            self.show();
        }
    }

    /// Called about every second: the bar's clock moves, and a plain line is due every [`LINE_EVERY`].
    pub fn tick(&mut self) {
        let due = self.last_line.is_none_or(|at| at.elapsed() >= LINE_EVERY);
        if self.style == Style::Bar || due {
            self.show();
        }
    }

    /// Something worth a line of its own (the socket fell back to polling, the server is unreachable…).
    pub fn note(&mut self, text: &str) {
        match self.style {
            Style::Bar => {
                let _ = write!(self.out, "\r\x1b[K{text}\n");
                self.drawn = false;
                self.show();
            }
            Style::Lines => {
                let _ = writeln!(self.out, "{} {text}", timestamp());
            }
        }
        let _ = self.out.flush();
    }

    /// Ends the display, so what follows starts on a line of its own.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(self.out);
            self.drawn = false;
        }
        let _ = self.out.flush();
    }

    fn elapsed(&self) -> Duration {
        self.frozen.or_else(|| self.load_started.map(|at| at.elapsed())).unwrap_or_default()
    }

    fn show(&mut self) {
        let line = describe(
            &self.run_id,
            &self.status,
            self.elapsed(),
            self.launched.elapsed(),
            self.expected,
            self.figures.as_ref(),
        );
        match self.style {
            Style::Bar => {
                let line = with_bar(&line, self.elapsed(), self.expected, self.width);
                let _ = write!(self.out, "\r{line}\x1b[K");
                self.drawn = true;
            }
            Style::Lines => {
                let _ = writeln!(self.out, "{} {}", timestamp(), line.plain());
                self.last_line = Some(Instant::now());
            }
        }
        let _ = self.out.flush();
    }
}

/// A progress line in parts, so the bar can go between them.
#[derive(Debug, PartialEq)]
pub struct Line {
    /// `run 42 RUNNING`
    head: String,
    /// `0:12/0:30`, or the wait for k6.
    clock: String,
    /// `TPS 812.3  p95 4.1 ms …`, empty before any figure.
    figures: String,
}

impl Line {
    fn plain(&self) -> String {
        [self.head.as_str(), self.clock.as_str(), self.figures.as_str()]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("  ")
    }
}

/// The progress line of a run in `status`, `elapsed` into its load (`waited` since the launch).
pub fn describe(
    run_id: &str,
    status: &str,
    elapsed: Duration,
    waited: Duration,
    expected: Option<Duration>,
    figures: Option<&LiveFigures>,
) -> Line {
    let head = format!("run {run_id} {status}");
    let clock = match (status, expected) {
        ("PENDING", _) => format!("waiting for k6 to start ({})", clock(waited)),
        (_, Some(expected)) => {
            let percent = (elapsed.as_secs_f64() / expected.as_secs_f64().max(1e-9) * 100.0).min(100.0);
            format!("{}/{} ({percent:.0}%)", clock(elapsed), clock(expected))
        }
        (_, None) => clock(elapsed),
    };
    let figures = match figures {
        Some(f) if status != "PENDING" => {
            let mut text = format!(
                "TPS {:.1}  p95 {:.1} ms  errors {:.2}%  VUs {:.0}",
                f.tps, f.p95_ms, f.error_rate, f.vus
            );
            if let Some(total) = f.total_requests {
                text.push_str(&format!("  requests {total}"));
            }
            if f.lagging {
                text.push_str("  (samples lagging)");
            }
            text
        }
        _ => String::new(),
    };
    Line { head, clock, figures }
}

/// The terminal line: head, bar, clock and figures, cut to the terminal's width.
fn with_bar(line: &Line, elapsed: Duration, expected: Option<Duration>, width: Option<usize>) -> String {
    let text = match expected.filter(|_| !line.clock.starts_with("waiting")) {
        Some(expected) => {
            let fraction = elapsed.as_secs_f64() / expected.as_secs_f64().max(1e-9);
            format!("{} {} {}  {}", line.head, bar(fraction, BAR_WIDTH), line.clock, line.figures)
        }
        None => line.plain(),
    };
    let text = text.trim_end().to_owned();
    match width {
        // One column spare: a line that fills the terminal exactly wraps on some terminals.
        Some(width) if width > 1 => text.chars().take(width - 1).collect(),
        _ => text,
    }
}

/// `[=========>          ]` for `fraction` of `width` cells.
pub fn bar(fraction: f64, width: usize) -> String {
    let filled = ((fraction.clamp(0.0, 1.0) * width as f64).round() as usize).min(width);
    let mut cells = "=".repeat(filled);
    if filled < width {
        cells.push(if filled > 0 { '>' } else { ' ' });
        cells.push_str(&" ".repeat(width - filled - 1));
    }
    format!("[{cells}]")
}

/// `0:07`, `12:30`, `1:02:03`.
pub fn clock(duration: Duration) -> String {
    let seconds = duration.as_secs();
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 { format!("{hours}:{minutes:02}:{seconds:02}") } else { format!("{minutes}:{seconds:02}") }
}

fn timestamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The width of the terminal on `fd`, when it is one and says.
pub fn terminal_width(fd: i32) -> Option<usize> {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the struct we own, and touches nothing else.
    let ok = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) } == 0;
    (ok && size.ws_col > 0).then_some(usize::from(size.ws_col))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn figures() -> LiveFigures {
        LiveFigures {
            tps: 812.34,
            p95_ms: 4.06,
            error_rate: 0.5,
            vus: 10.0,
            total_requests: Some(9812),
            lagging: false,
        }
    }

    #[test]
    fn the_bar_fills_with_the_elapsed_share_and_never_overflows() {
        assert_eq!(bar(0.0, 10), "[          ]");
        assert_eq!(bar(0.4, 10), "[====>     ]");
        assert_eq!(bar(1.0, 10), "[==========]");
        assert_eq!(bar(3.0, 10), "[==========]", "a run past its planned length");
    }

    #[test]
    fn clocks_read_as_minutes_or_hours() {
        assert_eq!(clock(Duration::from_secs(7)), "0:07");
        assert_eq!(clock(Duration::from_secs(750)), "12:30");
        assert_eq!(clock(Duration::from_secs(3723)), "1:02:03");
    }

    #[test]
    fn a_running_line_has_the_clock_and_every_figure() {
        let line = describe(
            "42",
            "RUNNING",
            Duration::from_secs(12),
            Duration::from_secs(15),
            Some(Duration::from_secs(30)),
            Some(&figures()),
        );
        assert_eq!(
            line.plain(),
            "run 42 RUNNING  0:12/0:30 (40%)  TPS 812.3  p95 4.1 ms  errors 0.50%  VUs 10  requests 9812"
        );
        let on_terminal = with_bar(&line, Duration::from_secs(12), Some(Duration::from_secs(30)), None);
        assert_eq!(
            on_terminal,
            "run 42 RUNNING [========>           ] 0:12/0:30 (40%)  TPS 812.3  p95 4.1 ms  errors 0.50%  VUs 10  requests 9812"
        );
        assert_eq!(
            with_bar(&line, Duration::from_secs(12), Some(Duration::from_secs(30)), Some(21)),
            "run 42 RUNNING [===="
        );
    }

    #[test]
    fn a_pending_run_shows_how_long_it_has_waited() {
        let line = describe(
            "7",
            "PENDING",
            Duration::ZERO,
            Duration::from_secs(3),
            Some(Duration::from_secs(30)),
            Some(&figures()),
        );
        assert_eq!(line.plain(), "run 7 PENDING  waiting for k6 to start (0:03)");
    }

    /// A writer the test can read afterwards.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn plain_lines_hold_no_control_characters_and_the_bar_redraws_in_place() {
        for style in [Style::Lines, Style::Bar] {
            let out = Captured::default();
            let mut progress =
                Progress::new(Box::new(out.clone()), style, None, "3", Some(Duration::from_secs(10)));
            progress.status("RUNNING");
            progress.figures(figures(), Some(Duration::from_secs(4)));
            progress.note("the live socket closed; polling");
            progress.tick();
            progress.status("COMPLETED");
            progress.finish();
            let text = out.text();
            match style {
                Style::Lines => {
                    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text:?}");
                    assert!(text.lines().all(|line| line.starts_with("20")), "timestamped: {text}");
                    assert!(text.contains("run 3 RUNNING") && text.contains("run 3 COMPLETED"), "{text}");
                    assert!(text.contains("the live socket closed; polling"), "{text}");
                }
                Style::Bar => {
                    assert!(text.matches("\r").count() >= 4, "{text:?}");
                    assert!(text.contains("[========>           ] 0:04/0:10 (40%)"), "{text:?}");
                    assert!(text.contains("\r\x1b[Kthe live socket closed; polling\n"), "{text:?}");
                    assert!(text.ends_with("\x1b[K\n"), "the bar is finished with a newline: {text:?}");
                }
            }
        }
    }
}
