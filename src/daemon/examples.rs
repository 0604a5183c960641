//! The `example/set` command: a camera's current frame, or a zone of it,
//! saved as an example image of a label, and the label embedded again.
//!
//! The payload is `LABEL`, or `ZONE/LABEL` on a camera with zones (names
//! never hold a `/`). The label's line in its zone's labels file must name
//! an example folder (`my car: a car; image:examples/my-car/`): the daemon
//! writes only there, never a path a message chose, and at most
//! [`MAX_EXAMPLES_PER_LABEL`] images. An `image:` folder gets the zone's
//! crop, a `frame:` folder the whole frame (cut to the zone when the label
//! is embedded). The main loop asks the camera's inference thread for its
//! next frame ([`ExampleRequest`]), saves what comes back, reloads every
//! zone that reads that labels file, and publishes what it did on
//! `<camera>/example`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::labels::examples::{base_dir, example_prompt, list_images, MAX_EXAMPLES_PER_LABEL};
use crate::labels::file;
use crate::util::untrusted::untrusted;

/// How long the command waits for the camera's next frame: a camera that
/// sends none for this long is stalled or disconnected, and the command
/// fails rather than saving a frame from much later.
pub const EXAMPLE_FRAME_WITHIN: Duration = Duration::from_secs(10);

/// The longest `example/set` payload: a zone and a label name.
const MAX_PAYLOAD_BYTES: usize = 8 * 1024;

/// What the main loop asks of a camera's inference thread: its next frame
/// as a JPEG, of zone `zone` (`whole_frame`: uncut).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExampleRequest {
    pub id: u64,
    pub zone: usize,
    pub whole_frame: bool,
}

/// An `example/set` command waiting for its frame.
#[derive(Debug)]
pub struct PendingExample {
    pub id: u64,
    pub camera: String,
    pub zone: usize,
    pub zone_name: Option<String>,
    pub label: String,
    /// The folder the image goes to.
    pub folder: PathBuf,
    /// The labels file that names the folder.
    pub labels_file: PathBuf,
    pub deadline: Instant,
    /// Where the web page waits for the result (an MQTT command has none:
    /// its result is published).
    pub reply: Option<std::sync::mpsc::Sender<Result<(PathBuf, usize), String>>>,
}

/// Reads `[ZONE/]LABEL`.
pub fn parse_payload(payload: &[u8]) -> Result<(Option<String>, String), String> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(format!("{} bytes; the payload is a label name, at most {MAX_PAYLOAD_BYTES}", payload.len()));
    }
    let text = std::str::from_utf8(payload).map_err(|_| "the payload is not UTF-8 text".to_string())?.trim();
    let (zone, label) = match text.split_once('/') {
        Some((zone, label)) => (Some(zone.trim().to_string()), label.trim()),
        None => (None, text),
    };
    if label.is_empty() {
        return Err("no label name: send LABEL, or ZONE/LABEL on a camera with zones".to_string());
    }
    Ok((zone, label.to_string()))
}

/// The example folder of label `label` in `labels_file`: the first of its
/// prompts that names a folder, and whether it is a `frame:` folder.
pub fn example_folder(labels_file: &Path, label: &str) -> Result<(PathBuf, bool), String> {
    let labels = file::read(labels_file).map_err(|e| e.to_string())?;
    let Some(found) = labels.iter().find(|l| l.name == label) else {
        let names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
        return Err(format!(
            "no label '{}' in '{}' (labels: {})",
            untrusted(label),
            labels_file.display(),
            names.join(", ")
        ));
    };
    let base = base_dir(labels_file);
    for prompt in &found.prompts {
        if let Some((frame, written)) = example_prompt(prompt) {
            let folder = base.join(written);
            if folder.is_dir() {
                return Ok((folder, frame));
            }
        }
    }
    Err(format!(
        "label '{label}' ({}:{}) names no example folder; add one to its line, e.g. '{label}: ...; image:examples/{}/', and create the folder where the daemon may write",
        labels_file.display(),
        found.line,
        crate::publish::topics::slug(label)
    ))
}

/// Writes `jpeg` into `folder` as `<UTC time>-<frame>.jpg` (through a
/// temporary file and a rename, so that the labels never read half an
/// image); returns the file and how many images the folder holds now.
/// Refused when the folder already holds [`MAX_EXAMPLES_PER_LABEL`].
pub fn save(folder: &Path, jpeg: &[u8], frame_time: SystemTime, frame: u64) -> Result<(PathBuf, usize), String> {
    let held = list_images(folder, ".").map_err(|e| e.to_string())?.len();
    if held >= MAX_EXAMPLES_PER_LABEL {
        return Err(format!(
            "'{}' holds {held} example images, the most a label takes; remove some first",
            folder.display()
        ));
    }
    let stamp = humantime::format_rfc3339_seconds(frame_time).to_string().replace([':', '-'], "");
    let path = folder.join(format!("{stamp}-{frame}.jpg"));
    crate::util::file::write_atomically(&path, jpeg).map_err(|e| format!("cannot write '{}': {e}", path.display()))?;
    Ok((path, held + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_a_label_with_an_optional_zone() {
        assert_eq!(parse_payload(b" my car \n"), Ok((None, "my car".to_string())));
        assert_eq!(parse_payload(b"porch/my car"), Ok((Some("porch".to_string()), "my car".to_string())));
        assert!(parse_payload(b"porch/").unwrap_err().contains("no label name"));
        assert!(parse_payload(&[0xff, 0xfe]).unwrap_err().contains("not UTF-8"));
        assert!(parse_payload(&vec![b'a'; 9000]).unwrap_err().contains("at most 8192"));
    }

    #[test]
    fn an_example_goes_only_to_the_folder_its_label_names_and_at_most_so_many() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels.txt");
        std::fs::create_dir_all(dir.path().join("cars")).unwrap();
        std::fs::write(&labels, "van\nmy car: a car; frame:missing/; image:cars/\n").unwrap();
        assert_eq!(example_folder(&labels, "my car"), Ok((dir.path().join("cars"), false)));
        let e = example_folder(&labels, "van").unwrap_err();
        assert!(e.contains("label 'van' (") && e.contains("labels.txt:1) names no example folder"), "{e}");
        let e = example_folder(&labels, "bike").unwrap_err();
        assert!(e.contains("no label 'bike'") && e.contains("(labels: van, my car)"), "{e}");

        let folder = dir.path().join("cars");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
        let (path, count) = save(&folder, b"\xff\xd8jpeg", t, 42).unwrap();
        assert_eq!(path, folder.join("20260528T202640Z-42.jpg"));
        assert_eq!((count, std::fs::read(&path).unwrap()), (1, b"\xff\xd8jpeg".to_vec()));
        for i in 1..MAX_EXAMPLES_PER_LABEL {
            save(&folder, b"x", t, 100 + i as u64).unwrap();
        }
        let e = save(&folder, b"x", t, 1).unwrap_err();
        assert!(e.contains("holds 64 example images, the most a label takes"), "{e}");
        assert_eq!(std::fs::read_dir(&folder).unwrap().count(), MAX_EXAMPLES_PER_LABEL, "no temporary file left");
    }
}
