//! Files that someone names (in a configuration, a bundle's manifest) read
//! with care: only regular files, so that a FIFO or a device named by
//! mistake is an error instead of a read that never ends, and small ones
//! only up to a bound; and files written whole, so that a reader never sees
//! half of one ([`write_atomically`]). And the kernel's random bytes
//! ([`random_bytes`]).

use std::fs;
use std::io::Read;
use std::path::Path;

/// Fills `buf` with random bytes from the kernel (/dev/urandom): salts,
/// session tokens, the embedded broker's own login.
pub fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf))
}

/// Writes `bytes` to `path` through a temporary file in the same folder
/// (made if missing) and a rename, so that a reader (the labels watcher,
/// the label cache, an example folder's next load) never sees half a file.
/// The temporary file, `.<name>.tmp<pid>`, is removed if anything fails.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp =
        dir.join(format!(".{}.tmp{}", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Whether `path` is a regular file (following links): a FIFO would block
/// a read for ever, and a device or a folder is no file to read.
pub fn regular_file(path: &Path) -> std::io::Result<()> {
    if fs::metadata(path)?.is_file() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a folder, a FIFO or a device); give the path of the file itself",
        ))
    }
}

/// The bytes of a small file that someone names in a configuration (a
/// password, a users list, a labels file): a regular file, at most
/// `max_bytes` long, so that `/dev/zero` or a FIFO named by mistake is an
/// error instead of a daemon that reads for ever.
pub fn read_small(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    regular_file(path)?;
    let mut bytes = Vec::new();
    fs::File::open(path)?.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {max_bytes} bytes, more than such a file holds"),
        ));
    }
    Ok(bytes)
}

/// As [`read_small`], for a file that must be UTF-8 text.
pub fn read_small_file(path: &Path, max_bytes: u64) -> std::io::Result<String> {
    String::from_utf8(read_small(path, max_bytes)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}
