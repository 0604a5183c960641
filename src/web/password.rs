//! The page's password, kept only as an Argon2id hash in the PHC string
//! format (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`), which
//! `edgeclip hash-password` makes and `web.password_hash` holds. The
//! configuration is readable by every user of the board, so it never holds
//! the password itself.
//!
//! Compiled in every build, the page or not, so that a configuration's hash
//! is checked the same everywhere.

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The cost of a new hash: Argon2id with OWASP's first recommended set
/// (19 MiB, 2 passes, 1 lane), about 30 ms on a desktop core and half a
/// second on a Pi Zero 2 W: slow for a guesser, once per login for a person.
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(19 * 1024, 2, 1, None).expect("valid parameters"))
}

/// The most memory a configured hash may ask a login to spend, in KiB: a
/// hash made elsewhere with a desktop's parameters must not make each login
/// take a board's memory.
const MAX_MEMORY_KIB: u32 = 64 * 1024;

/// Hashes a new password with a random salt from the kernel.
pub fn hash(password: &str) -> Result<String, String> {
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    let mut salt = [0u8; 16];
    crate::util::file::random_bytes(&mut salt).map_err(|e| format!("cannot read /dev/urandom for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Ok(hasher().hash_password(password.as_bytes(), &salt).map_err(|e| e.to_string())?.to_string())
}

/// Whether `phc` is a hash this edgeclip can check logins against: Argon2id
/// (or Argon2i/d), asking at most `MAX_MEMORY_KIB` of memory.
pub fn check_hash(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a password hash in the PHC format ({e})"))?;
    if !matches!(parsed.algorithm.as_str(), "argon2id" | "argon2i" | "argon2d") {
        return Err(format!("a '{}' hash; accepted: argon2id", parsed.algorithm));
    }
    let params = Params::try_from(&parsed).map_err(|e| format!("its Argon2 parameters are not valid ({e})"))?;
    if params.m_cost() > MAX_MEMORY_KIB {
        return Err(format!(
            "it asks {} KiB of memory per login; at most {MAX_MEMORY_KIB} are accepted",
            params.m_cost()
        ));
    }
    if parsed.hash.is_none() {
        return Err("it has no hash part".into());
    }
    Ok(())
}

/// Whether `password` is the one `phc` was made from (compared in
/// constant time). One check at a time, in memory mapped for it alone and
/// unmapped after: from the allocator, the tens of MiB of each login stayed
/// with the thread that checked it (glibc raises its mmap threshold after a
/// large free), and a few logins held 100 MB of a board.
pub fn verify(phc: &str, password: &str) -> bool {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) =
        (Algorithm::try_from(parsed.algorithm), Params::try_from(&parsed), parsed.hash, parsed.salt)
    else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else { return false };
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(memory) = MappedBlocks::new(params.block_count()) else { return false };
    let mut out = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password.as_bytes(),
        salt,
        &mut out,
        memory,
    );
    // Every byte compared, whatever the first difference (constant time).
    let expected = expected.as_bytes();
    hashed.is_ok() && out.len() == expected.len() && out.iter().zip(expected).fold(0, |d, (a, b)| d | (a ^ b)) == 0
}

/// Argon2's memory blocks in an anonymous mapping of their own, given back
/// to the kernel when dropped.
struct MappedBlocks {
    ptr: *mut argon2::Block,
    count: usize,
}

impl MappedBlocks {
    fn new(count: usize) -> Option<MappedBlocks> {
        let bytes = count.checked_mul(argon2::Block::SIZE)?;
        // SAFETY: a fresh private anonymous mapping, not aliased; checked
        // for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes.max(1),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then(|| MappedBlocks { ptr: ptr.cast(), count })
    }
}

impl AsMut<[argon2::Block]> for MappedBlocks {
    fn as_mut(&mut self) -> &mut [argon2::Block] {
        // SAFETY: the mapping holds `count` blocks, page-aligned (above a
        // block's 64-byte alignment) and zeroed, and a block is plain
        // integers, valid for any bytes; the borrow of `self` keeps it alive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.count) }
    }
}

impl Drop for MappedBlocks {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), (self.count * argon2::Block::SIZE).max(1)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        check_hash(&h).unwrap();
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "correct horse "));
        assert!(!verify(&h, ""));
        // A hash made by another implementation, the reference C code through
        // Python's argon2-cffi 25.1: PasswordHasher(time_cost=3,
        // memory_cost=65536, parallelism=4).hash('password').
        let made_elsewhere =
            "$argon2id$v=19$m=65536,t=3,p=4$d8Aa4O0iL7Zzzf9MF+57UQ$a6Ud5FBiWvp6RVJW0Fy5MVmJWTyz+7sydQsqNSSBgPU";
        assert!(verify(made_elsewhere, "password"));
        assert!(!verify(made_elsewhere, "Password"));
        // A new salt each time.
        assert_ne!(h, hash("correct horse").unwrap());
    }

    #[test]
    fn hashes_that_cannot_be_checked_are_refused() {
        assert!(check_hash("hunter2").unwrap_err().contains("PHC"));
        let scrypt = "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
        assert!(check_hash(scrypt).unwrap_err().contains("accepted: argon2id"));
        let greedy = "$argon2id$v=19$m=1048576,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        assert!(check_hash(greedy).unwrap_err().contains("KiB"));
    }
}
