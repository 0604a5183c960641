//! GPIO lines on Linux: the GPIO character device (`/dev/gpiochipN`),
//! through linux-embedded-hal's `CdevPin` (cargo feature `gpio`).
//!
//! A line is found by offset on its chip, or by name on its chip or on
//! every chip (a Raspberry Pi 5's header moved from gpiochip4 to gpiochip0
//! with kernel 6.6.45; its name, "GPIO17", did not). It is requested with
//! no kernel-side inversion (the outputs and the input gate apply
//! `active_low` themselves, so that their logic is the same on every
//! platform), an output with its inactive level from the first moment.
//!
//! Each failure says what to do about it: a chip that is not there, a
//! device that is not a chip, no permission (the `gpio` group, or a udev
//! rule), a line someone else holds (named, as the kernel reports its
//! user), a line the chip does not have.

use std::path::{Path, PathBuf};

use linux_embedded_hal::gpio_cdev::{self, LineRequestFlags};
use linux_embedded_hal::CdevPin;

use super::{Chip, GpioError, GpioErrorKind, Line, LineSpec, CONSUMER};

/// Where the character devices are.
const DEV: &str = "/dev";

/// Requests `spec` as an output, electrically `high` from the start.
pub fn request_output(spec: &LineSpec, high: bool) -> Result<CdevPin, GpioError> {
    let line = find_line(spec)?;
    request(spec, &line, LineRequestFlags::OUTPUT, u8::from(high))
}

/// Requests `spec` as an input.
pub fn request_input(spec: &LineSpec) -> Result<CdevPin, GpioError> {
    let line = find_line(spec)?;
    request(spec, &line, LineRequestFlags::INPUT, 0)
}

/// The system error number behind a gpio-cdev error: an `io::Error` when
/// opening the chip, a nix errno from an ioctl.
fn errno(e: &gpio_cdev::Error) -> Option<i32> {
    let source = std::error::Error::source(e)?;
    if let Some(io) = source.downcast_ref::<std::io::Error>() {
        return io.raw_os_error();
    }
    source.downcast_ref::<nix::errno::Errno>().map(|n| *n as i32)
}

fn permission_denied(what: &str) -> GpioError {
    let uid = unsafe { libc::geteuid() };
    GpioError::new(
        GpioErrorKind::Permission,
        format!(
            "{what}: permission denied for uid {uid}; the user running edgeclip needs read and write access to \
             /dev/gpiochip*: add it to the 'gpio' group (`sudo usermod -aG gpio edgeclip`, then restart the service) \
             or install the udev rule in the GPIO section of /usr/share/doc/edgeclip/boards/README.md"
        ),
    )
}

/// The GPIO chips of this machine, by number.
pub fn chip_paths() -> Vec<PathBuf> {
    let mut chips: Vec<(u32, PathBuf)> = std::fs::read_dir(DEV)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let n = name.strip_prefix("gpiochip")?.parse().ok()?;
            Some((n, entry.path()))
        })
        .collect();
    chips.sort();
    chips.into_iter().map(|(_, path)| path).collect()
}

/// "/dev/gpiochip0, /dev/gpiochip1", or what the absence means.
fn chips_here() -> String {
    let chips = chip_paths();
    if chips.is_empty() {
        "none: this machine has no GPIO chip (in a container, pass the device with --device)".to_string()
    } else {
        chips.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    }
}

pub fn open_chip(path: &Path) -> Result<gpio_cdev::Chip, GpioError> {
    gpio_cdev::Chip::new(path).map_err(|e| match errno(&e) {
        Some(libc::ENOENT) => GpioError::new(
            GpioErrorKind::NoChip,
            format!("GPIO chip '{}' does not exist; GPIO chips here: {}", path.display(), chips_here()),
        ),
        Some(libc::EACCES | libc::EPERM) => permission_denied(&format!("cannot open GPIO chip '{}'", path.display())),
        // A device that does not answer the chip-info ioctl: ENOTTY from the
        // kernel, ENOSYS from an emulator (qemu-user) that does not pass it on.
        Some(libc::ENOTTY | libc::EINVAL | libc::ENOSYS) => GpioError::new(
            GpioErrorKind::NotAChip,
            format!(
                "'{}' is not a GPIO chip ({e}); accepted: a GPIO character device, e.g. /dev/gpiochip0 (GPIO chips here: {})",
                path.display(),
                chips_here()
            ),
        ),
        _ => GpioError::new(GpioErrorKind::Other, format!("cannot open GPIO chip '{}': {e}", path.display())),
    })
}

/// The line named `name` on `chip`, if it has one.
fn named_line(chip: &gpio_cdev::Chip, name: &str) -> Result<Option<gpio_cdev::Line>, GpioError> {
    for line in chip.lines() {
        let info = line.info().map_err(|e| {
            GpioError::new(
                GpioErrorKind::Other,
                format!("cannot read line {} of '{}': {e}", line.offset(), chip.path().display()),
            )
        })?;
        if info.name() == Some(name) {
            return Ok(Some(line));
        }
    }
    Ok(None)
}

fn find_line(spec: &LineSpec) -> Result<gpio_cdev::Line, GpioError> {
    let no_such = |message: String| GpioError::new(GpioErrorKind::NoSuchLine, message);
    match (&spec.chip, &spec.line) {
        (Chip::Device(path), Line::Offset(offset)) => {
            let mut chip = open_chip(path)?;
            let lines = chip.num_lines();
            if *offset >= lines {
                return Err(no_such(format!(
                    "GPIO chip '{}' ({}) has {lines} lines, 0 to {}: there is no line {offset}",
                    path.display(),
                    chip.label(),
                    lines.saturating_sub(1)
                )));
            }
            chip.get_line(*offset).map_err(|e| no_such(format!("line {offset} of GPIO chip '{}': {e}", path.display())))
        }
        (Chip::Device(path), Line::Name(name)) => {
            let chip = open_chip(path)?;
            named_line(&chip, name)?.ok_or_else(|| {
                no_such(format!(
                    "GPIO chip '{}' ({}) has no line named '{name}'; `gpioinfo {}` lists its lines",
                    path.display(),
                    chip.label(),
                    path.display()
                ))
            })
        }
        (Chip::AnyWithName, Line::Name(name)) => {
            let chips = chip_paths();
            for path in &chips {
                if let Some(line) = named_line(&open_chip(path)?, name)? {
                    return Ok(line);
                }
            }
            Err(no_such(format!(
                "no GPIO chip has a line named '{name}' (GPIO chips here: {}); `gpioinfo` lists every line",
                chips_here()
            )))
        }
        (Chip::AnyWithName, Line::Offset(_)) | (Chip::Simulated(_), _) => Err(GpioError::new(
            GpioErrorKind::Other,
            format!("{spec}: not a line of a GPIO character device (a bug: the configuration should have said)"),
        )),
    }
}

fn request(
    spec: &LineSpec,
    line: &gpio_cdev::Line,
    flags: LineRequestFlags,
    default: u8,
) -> Result<CdevPin, GpioError> {
    let chip = line.chip();
    let place = format!("line {} of GPIO chip '{}'", line.offset(), chip.path().display());
    let other = |e: gpio_cdev::Error| GpioError::new(GpioErrorKind::Other, format!("{spec} ({place}): {e}"));
    let info = line.info().map_err(other)?;
    let called = info.name().map(|n| format!(" ('{n}')")).unwrap_or_default();
    let busy = |user: &str| {
        GpioError::new(
            GpioErrorKind::Busy,
            format!(
                "{place}{called} is in use by {user}; a line has one user at a time: free it (a dtoverlay in \
                 /boot/firmware/config.txt, another program such as gpiomon or gpioset) or pick another line"
            ),
        )
    };
    // The kernel's "used" flag: requested by a program or held by a driver.
    if info.is_kernel() {
        return Err(busy(&match info.consumer() {
            Some(CONSUMER) => {
                format!("'{CONSUMER}' (another line of this configuration under another name, or a second edgeclip)")
            }
            Some(c) => format!("'{c}'"),
            None => "the kernel or another program".to_string(),
        }));
    }
    let handle = line.request(flags, default, CONSUMER).map_err(|e| match errno(&e) {
        Some(libc::EBUSY) => busy("another program"),
        Some(libc::EACCES | libc::EPERM) => permission_denied(&format!("cannot request {place}")),
        _ => other(e),
    })?;
    CdevPin::new(handle).map_err(other)
}
