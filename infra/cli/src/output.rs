//! Printing: `--json` prints only JSON on stdout; otherwise a compact view for people.
//!
//! Everything the commands print goes through [`write`], which never panics:
//! when whoever reads stdout has gone (`tendon messages list | head -3`), it
//! returns [`CliError::StdoutClosed`], which ends the command quietly with
//! exit 0 (`println!` would panic).
use std::io::{ErrorKind, Write};

use serde::Serialize;
use serde_json::Value;

use crate::error::{CliError, CliResult};

/// Writes `text` to stdout as it is, and flushes it.
pub fn write(text: &str) -> CliResult {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(CliError::StdoutClosed),
        Err(e) => Err(CliError::Output(e)),
    }
}

/// Writes `text` and a line break to stdout.
pub fn line(text: &str) -> CliResult {
    write(&format!("{text}\n"))
}

/// Prints `value` as JSON, or as readable text (objects as `key: value` lines,
/// lists as one object per block).
pub fn print<T: Serialize>(json: bool, value: &T) -> CliResult {
    let v = serde_json::to_value(value).map_err(|e| e.to_string())?;
    let text = if json {
        serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
    } else {
        human(&v, 0)
    };
    line(text.trim_end())
}

/// `s` as a terminal should show it. A value from an HL7 message or a Cliniko
/// record could carry a control or bidi character that rewrites the screen,
/// so those are shown escaped; everything else, quotes included (O'Brien),
/// is shown as it is.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else if matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => printable(s),
        other => other.to_string(),
    }
}

fn human(v: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            let width = map.keys().map(String::len).max().unwrap_or(0);
            let mut out = String::new();
            for (k, val) in map {
                match val {
                    Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                        out += &format!("{pad}{k}:\n");
                        for item in items {
                            out += &human(item, indent + 2);
                            out += "\n";
                        }
                    }
                    Value::Array(items) => {
                        let joined = items.iter().map(scalar).collect::<Vec<_>>().join(", ");
                        out += &format!("{pad}{k:width$}  [{joined}]\n");
                    }
                    Value::Object(_) => out += &format!("{pad}{k}:\n{}", human(val, indent + 2)),
                    _ => out += &format!("{pad}{k:width$}  {}\n", scalar(val)),
                }
            }
            out
        }
        Value::Array(items) if items.is_empty() => format!("{pad}(none)\n"),
        Value::Array(items) => items
            .iter()
            .map(|i| human(i, indent))
            .collect::<Vec<_>>()
            .join("\n"),
        other => format!("{pad}{}\n", scalar(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn names_print_as_they_are_and_controls_escaped() {
        assert_eq!(printable("O'Brien \"Jo\" Zoë"), "O'Brien \"Jo\" Zoë");
        // A decomposed accent (e + U+0301) stays one letter on screen.
        assert_eq!(printable("Zoe\u{301}"), "Zoe\u{301}");
        assert_eq!(printable("a\x1b[2Jb\r\n"), "a\\u{1b}[2Jb\\r\\n");
        assert_eq!(printable("x\u{202E}y"), "x\\u{202e}y");
    }
}
