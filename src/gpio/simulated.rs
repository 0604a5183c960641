//! A simulated GPIO chip: each line is a file in a folder
//! (`chip = "simulated:FOLDER"`), named after the line's offset or name.
//!
//! For trying a configuration on a machine without the wiring, and for the
//! daemon's end-to-end tests, which run the real binary:
//!
//! - an output line's file is created empty when the line is requested, and
//!   gets one line per level written, `<RFC 3339 time> <0|1>`, the
//!   electrical level (an `active_low` output shows inverted);
//! - an input line's file holds its level: the first character `1` is high,
//!   anything else low. It is created holding `0` if missing, and read on
//!   every frame: `echo 1 > DIR/4` is a PIR sensor firing.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use embedded_hal::digital::{ErrorType, InputPin, OutputPin};

use super::{GpioError, GpioErrorKind, Line};

/// The file that stands for `line`.
pub fn line_file(dir: &Path, line: &Line) -> PathBuf {
    match line {
        Line::Offset(n) => dir.join(n.to_string()),
        Line::Name(name) => dir.join(name),
    }
}

fn cannot(what: &str, path: &Path, e: std::io::Error) -> GpioError {
    let kind = match e.kind() {
        std::io::ErrorKind::PermissionDenied => GpioErrorKind::Permission,
        _ => GpioErrorKind::Other,
    };
    GpioError::new(kind, format!("simulated GPIO: cannot {what} '{}': {e}", path.display()))
}

/// A simulated output: a log of the levels written.
#[derive(Debug)]
pub struct SimulatedOutput {
    file: File,
}

/// Creates (or empties) the line's file. Its first level is recorded when
/// it is first set (the daemon sets the inactive level at once).
pub fn open_output(dir: &Path, line: &Line) -> Result<SimulatedOutput, GpioError> {
    std::fs::create_dir_all(dir).map_err(|e| cannot("create the folder", dir, e))?;
    let path = line_file(dir, line);
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| cannot("create", &path, e))?;
    Ok(SimulatedOutput { file })
}

impl SimulatedOutput {
    fn record(&mut self, high: bool) -> std::io::Result<()> {
        let time = humantime::format_rfc3339_millis(SystemTime::now());
        // One write per line, so that a reader never sees half of one.
        self.file.write_all(format!("{time} {}\n", u8::from(high)).as_bytes())
    }
}

impl ErrorType for SimulatedOutput {
    type Error = SimulatedError;
}

impl OutputPin for SimulatedOutput {
    fn set_low(&mut self) -> Result<(), SimulatedError> {
        self.record(false).map_err(SimulatedError)
    }

    fn set_high(&mut self) -> Result<(), SimulatedError> {
        self.record(true).map_err(SimulatedError)
    }
}

/// A simulated input: a file holding the level.
#[derive(Debug)]
pub struct SimulatedInput {
    path: PathBuf,
}

/// Creates the line's file, holding `0`, unless it exists.
pub fn open_input(dir: &Path, line: &Line) -> Result<SimulatedInput, GpioError> {
    std::fs::create_dir_all(dir).map_err(|e| cannot("create the folder", dir, e))?;
    let path = line_file(dir, line);
    if !path.exists() {
        std::fs::write(&path, "0\n").map_err(|e| cannot("create", &path, e))?;
    }
    Ok(SimulatedInput { path })
}

impl ErrorType for SimulatedInput {
    type Error = SimulatedError;
}

impl InputPin for SimulatedInput {
    fn is_high(&mut self) -> Result<bool, SimulatedError> {
        let text = std::fs::read(&self.path).map_err(SimulatedError)?;
        Ok(text.first() == Some(&b'1'))
    }

    fn is_low(&mut self) -> Result<bool, SimulatedError> {
        self.is_high().map(|high| !high)
    }
}

/// A simulated line's file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("simulated GPIO: {0}")]
pub struct SimulatedError(std::io::Error);

impl embedded_hal::digital::Error for SimulatedError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}
