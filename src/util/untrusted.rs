//! Text from outside (an MQTT topic or payload, a line of a labels file
//! sent by command) as it may appear in a log line: control characters and
//! the Unicode marks that reorder text are escaped, so that a payload with
//! a newline cannot forge a line of its own, and anything longer than
//! [`MAX_CHARS`] is cut, so that a 7 MB payload does not become a 7 MB line.
//!
//! [`SafeLog`] is the second line of defence, for text no call site knew to
//! be untrusted: the writer under the daemon's log, which escapes control
//! characters inside a record and cuts a record at [`MAX_RECORD_BYTES`].

use std::fmt;
use std::io::{self, Write};

/// The characters of untrusted text a log line shows: enough to recognise
/// a label set or a switch value, little enough for a journal line.
pub const MAX_CHARS: usize = 120;

/// The longest log record: a journal line stays readable, and journald
/// (whose default `LineMax` is 48 KiB) never splits one.
pub const MAX_RECORD_BYTES: usize = 4096;

/// `text` for a log line: escaped and cut (see the module documentation).
pub fn untrusted(text: &str) -> Untrusted<'_> {
    Untrusted(text)
}

/// See [`untrusted`].
pub struct Untrusted<'a>(&'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, c) in self.0.chars().enumerate() {
            if shown == MAX_CHARS {
                return write!(f, "… ({} bytes in all)", self.0.len());
            }
            write_char(f, c)?;
        }
        Ok(())
    }
}

/// Whether `c` must not reach a log line as it is: a control character, or
/// one of Unicode's bidirectional overrides and isolates, which can make a
/// line read as something else.
fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn write_char(f: &mut impl fmt::Write, c: char) -> fmt::Result {
    if needs_escape(c) {
        write!(f, "{}", c.escape_default())
    } else {
        f.write_char(c)
    }
}

/// The daemon's log writer: stderr, one record per write, with control
/// characters inside a record escaped (the terminal's colour sequences,
/// ESC, excepted when `ansi` is on) and each record cut at
/// [`MAX_RECORD_BYTES`].
#[derive(Clone, Copy)]
pub struct SafeLog {
    pub ansi: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SafeLog {
    type Writer = SafeLog;
    fn make_writer(&'a self) -> SafeLog {
        *self
    }
}

impl Write for SafeLog {
    /// `tracing`'s formatter hands over a whole record at once.
    fn write(&mut self, record: &[u8]) -> io::Result<usize> {
        io::stderr().lock().write_all(safe_record(record, self.ansi).as_bytes())?;
        Ok(record.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// One record, made safe (see [`SafeLog`]), ending with one newline.
pub fn safe_record(record: &[u8], ansi: bool) -> String {
    let text = String::from_utf8_lossy(record);
    let body = text.strip_suffix('\n').unwrap_or(&text);
    let mut out = String::with_capacity(body.len().min(MAX_RECORD_BYTES) + 64);
    for c in body.chars() {
        if out.len() >= MAX_RECORD_BYTES {
            out.push_str(&format!("… (record of {} bytes cut)", body.len()));
            break;
        }
        if c == '\u{1b}' && ansi {
            out.push(c);
        } else {
            let _ = write_char(&mut out, c);
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_cannot_forge_a_line_or_run_long() {
        assert_eq!(untrusted("ON").to_string(), "ON");
        assert_eq!(untrusted("a\nb\r\u{1b}[2J\u{202e}c").to_string(), "a\\nb\\r\\u{1b}[2J\\u{202e}c");
        let long = "é".repeat(10_000);
        let shown = untrusted(&long).to_string();
        assert_eq!(shown, format!("{}… (20000 bytes in all)", "é".repeat(MAX_CHARS)));
    }

    #[test]
    fn a_record_keeps_one_line_and_a_bounded_length() {
        assert_eq!(safe_record(b"INFO a\nERROR forged\n", false), "INFO a\\nERROR forged\n");
        assert_eq!(safe_record(b"\x1b[32mINFO\x1b[0m x\n", true), "\x1b[32mINFO\x1b[0m x\n");
        assert_eq!(safe_record(b"\x1b[2J\n", false), "\\u{1b}[2J\n");
        let big = vec![b'x'; 7_000_000];
        let record = safe_record(&big, false);
        assert!(record.len() < MAX_RECORD_BYTES + 64, "{}", record.len());
        assert!(record.ends_with("… (record of 7000000 bytes cut)\n"), "{}", &record[record.len() - 60..]);
    }
}
