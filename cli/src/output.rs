//! Output: progress on stderr, results on stdout. With `--json`, progress becomes NDJSON
//! events on stderr and the result one JSON document on stdout, for CI.

use std::io::Write;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Human,
    Json,
}

/// Where a command reports. Cheap to copy; pass it down by value.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub mode: Mode,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self {
            mode: if json { Mode::Json } else { Mode::Human },
        }
    }

    pub fn is_json(self) -> bool {
        self.mode == Mode::Json
    }

    /// A progress step: `component` may be empty. Human: `  component  message`.
    pub fn step(self, component: &str, message: &str) {
        match self.mode {
            Mode::Human if component.is_empty() => eprintln_safe(message),
            Mode::Human => eprintln_safe(&format!("  {component:<14} {message}")),
            Mode::Json => self.event("step", component, message),
        }
    }

    /// A warning the user should read (port moved, image missing …).
    pub fn warn(self, message: &str) {
        match self.mode {
            Mode::Human => eprintln_safe(&format!("warning: {message}")),
            Mode::Json => self.event("warning", "", message),
        }
    }

    fn event(self, kind: &str, component: &str, message: &str) {
        let line = serde_json::json!({
            "event": kind,
            "component": component,
            "message": message,
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        eprintln_safe(&line.to_string());
    }

    /// The command's result on stdout: the JSON document, or the human text.
    pub fn result<T: Serialize>(self, value: &T, human: &str) {
        let text = match self.mode {
            Mode::Json => serde_json::to_string_pretty(value)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
            Mode::Human => human.to_owned(),
        };
        if !text.is_empty() {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{text}");
        }
    }
}

fn eprintln_safe(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}
