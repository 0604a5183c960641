//! GPIO: output lines that follow a camera's events (a relay, an LED, a
//! buzzer) and an input line that gates its inference (a PIR sensor).
//!
//! The logic, [`output::EventOutput`] and [`input::InputGate`], is written
//! against embedded-hal 1.0's digital pin traits, so that it is the same on
//! any platform and is tested with embedded-hal-mock. The pins come from
//! [`open_output`] and [`open_input`]:
//!
//! - Linux's GPIO character device, `/dev/gpiochipN`, through
//!   linux-embedded-hal ([`linux`], cargo feature `gpio`);
//! - a simulated chip whose lines are files ([`simulated`]), to try a
//!   configuration without the hardware, and for the daemon's end-to-end
//!   tests.
//!
//! Both kinds are erased into [`AnyOutputPin`] and [`AnyInputPin`], so that
//! the daemon holds one type whatever the chip.

pub mod input;
#[cfg(feature = "gpio")]
pub mod linux;
pub mod output;
pub mod simulated;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use embedded_hal::digital::{ErrorType, InputPin, OutputPin};

/// The label the lines are requested with: `gpioinfo` shows it as the
/// line's user.
pub const CONSUMER: &str = "edgeclip";

/// The chip a line is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chip {
    /// A GPIO character device, `/dev/gpiochipN`.
    Device(PathBuf),
    /// A line given by name with no chip: every chip is searched.
    AnyWithName,
    /// A simulated chip: each line is a file in this folder.
    Simulated(PathBuf),
}

/// Which line of the chip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Its offset on the chip (on a Raspberry Pi, the BCM GPIO number).
    Offset(u32),
    /// Its name, as `gpioinfo` lists it ("GPIO17").
    Name(String),
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Offset(n) => write!(f, "line {n}"),
            Line::Name(name) => write!(f, "line '{name}'"),
        }
    }
}

/// A line and its chip, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSpec {
    pub chip: Chip,
    pub line: Line,
}

impl fmt::Display for LineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.chip {
            Chip::Device(path) => write!(f, "{} of {}", self.line, path.display()),
            Chip::AnyWithName => write!(f, "{}", self.line),
            Chip::Simulated(dir) => write!(f, "simulated {} in {}", self.line, dir.display()),
        }
    }
}

/// Which events drive an output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelFilter {
    /// Every label of the camera (`labels = ["*"]`).
    Any,
    /// These labels.
    Only(Vec<String>),
}

impl LabelFilter {
    pub fn matches(&self, label: &str) -> bool {
        match self {
            LabelFilter::Any => true,
            LabelFilter::Only(labels) => labels.iter().any(|l| l == label),
        }
    }
}

/// How an output follows its labels' events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Active while one of the labels' events is, and `off_delay` after
    /// the last one ended.
    Level { off_delay: Duration },
    /// Active for `length` when one of the labels' events starts; a start
    /// during the pulse restarts it.
    Pulse { length: Duration },
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutputMode::Level { off_delay } if off_delay.is_zero() => write!(f, "level"),
            OutputMode::Level { off_delay } => write!(f, "level, off {} s after", off_delay.as_secs_f64()),
            OutputMode::Pulse { length } => write!(f, "pulse of {} s", length.as_secs_f64()),
        }
    }
}

/// One output line, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputConfig {
    pub line: LineSpec,
    pub labels: LabelFilter,
    pub mode: OutputMode,
    /// Active is the electrically low level (most opto-isolated relay
    /// modules switch on a low input).
    pub active_low: bool,
}

/// A camera's input line, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputConfig {
    pub line: LineSpec,
    /// The sensor pulls the line low when it triggers.
    pub active_low: bool,
    /// Frames are still inferred this long after the sensor was last active.
    pub hold: Duration,
}

/// What went wrong opening a line, for the daemon to say what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpioErrorKind {
    /// The chip's device does not exist.
    NoChip,
    /// The device exists but is not a GPIO chip.
    NotAChip,
    /// No permission to open the chip or request the line.
    Permission,
    /// The line is in use by something else.
    Busy,
    /// No such line on the chip (an offset beyond it, a name nobody has).
    NoSuchLine,
    /// This build has no GPIO support (the `gpio` feature is off).
    Unsupported,
    Other,
}

/// A line that could not be opened, with a message for the person at the
/// board: what, where, and what would fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GpioError {
    pub kind: GpioErrorKind,
    pub message: String,
}

impl GpioError {
    pub fn new(kind: GpioErrorKind, message: impl Into<String>) -> GpioError {
        GpioError { kind, message: message.into() }
    }
}

/// A pin's error as text, so that pins of every kind share one type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PinError(pub String);

impl embedded_hal::digital::Error for PinError {
    fn kind(&self) -> embedded_hal::digital::ErrorKind {
        embedded_hal::digital::ErrorKind::Other
    }
}

/// Adapts a pin's error type to [`PinError`].
struct ErasedError<P>(P);

impl<P: ErrorType> ErrorType for ErasedError<P> {
    type Error = PinError;
}

fn erase_error<E: fmt::Display>(e: E) -> PinError {
    PinError(e.to_string())
}

impl<P: OutputPin> OutputPin for ErasedError<P>
where
    P::Error: fmt::Display,
{
    fn set_low(&mut self) -> Result<(), PinError> {
        self.0.set_low().map_err(erase_error)
    }

    fn set_high(&mut self) -> Result<(), PinError> {
        self.0.set_high().map_err(erase_error)
    }
}

impl<P: InputPin> InputPin for ErasedError<P>
where
    P::Error: fmt::Display,
{
    fn is_high(&mut self) -> Result<bool, PinError> {
        self.0.is_high().map_err(erase_error)
    }

    fn is_low(&mut self) -> Result<bool, PinError> {
        self.0.is_low().map_err(erase_error)
    }
}

/// Any output pin: a character-device line, a simulated one, a test's mock.
pub struct AnyOutputPin(Box<dyn OutputPin<Error = PinError> + Send>);

impl AnyOutputPin {
    pub fn new<P>(pin: P) -> AnyOutputPin
    where
        P: OutputPin + Send + 'static,
        P::Error: fmt::Display,
    {
        AnyOutputPin(Box::new(ErasedError(pin)))
    }
}

impl ErrorType for AnyOutputPin {
    type Error = PinError;
}

impl OutputPin for AnyOutputPin {
    fn set_low(&mut self) -> Result<(), PinError> {
        self.0.set_low()
    }

    fn set_high(&mut self) -> Result<(), PinError> {
        self.0.set_high()
    }
}

/// Any input pin.
pub struct AnyInputPin(Box<dyn InputPin<Error = PinError> + Send>);

impl AnyInputPin {
    pub fn new<P>(pin: P) -> AnyInputPin
    where
        P: InputPin + Send + 'static,
        P::Error: fmt::Display,
    {
        AnyInputPin(Box::new(ErasedError(pin)))
    }
}

impl ErrorType for AnyInputPin {
    type Error = PinError;
}

impl InputPin for AnyInputPin {
    fn is_high(&mut self) -> Result<bool, PinError> {
        self.0.is_high()
    }

    fn is_low(&mut self) -> Result<bool, PinError> {
        self.0.is_low()
    }
}

/// Requests `spec` as an output, electrically `high` from the first moment
/// (the inactive level, so that a relay does not click at start).
pub fn open_output(spec: &LineSpec, high: bool) -> Result<AnyOutputPin, GpioError> {
    match &spec.chip {
        Chip::Simulated(dir) => Ok(AnyOutputPin::new(simulated::open_output(dir, &spec.line)?)),
        #[cfg(feature = "gpio")]
        _ => Ok(AnyOutputPin::new(linux::request_output(spec, high)?)),
        #[cfg(not(feature = "gpio"))]
        _ => {
            let _ = high;
            Err(unsupported(spec))
        }
    }
}

/// Requests `spec` as an input.
pub fn open_input(spec: &LineSpec) -> Result<AnyInputPin, GpioError> {
    match &spec.chip {
        Chip::Simulated(dir) => Ok(AnyInputPin::new(simulated::open_input(dir, &spec.line)?)),
        #[cfg(feature = "gpio")]
        _ => Ok(AnyInputPin::new(linux::request_input(spec)?)),
        #[cfg(not(feature = "gpio"))]
        _ => Err(unsupported(spec)),
    }
}

#[cfg(not(feature = "gpio"))]
fn unsupported(spec: &LineSpec) -> GpioError {
    GpioError::new(
        GpioErrorKind::Unsupported,
        format!(
            "{spec}: this edgeclip was built without GPIO support (cargo feature 'gpio'); \
             install a release package, rebuild with `--features gpio`, or use chip = \"simulated:FOLDER\" to try the configuration"
        ),
    )
}
