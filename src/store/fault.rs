//! When the store cannot write: what to tell the operator, and when to try again.

use std::io;
use std::path::Path;
use std::time::Duration;

/// The first retry after a fault, and the longest pause between retries.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);
pub const RETRY_MAX: Duration = Duration::from_secs(30);

pub use crate::backoff::Backoff;

/// One sentence: what failed and what the operator can do about it.
pub fn describe_io(err: &io::Error, dir: &Path) -> String {
    let dir = dir.display();
    match err.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
            format!("the disk holding {dir} is full ({err}); free space in {dir}")
        }
        io::ErrorKind::ReadOnlyFilesystem => {
            format!("{dir} is on a read-only file system; make {dir} writable")
        }
        io::ErrorKind::PermissionDenied => {
            format!("no permission to write in {dir} ({err}); make {dir} writable")
        }
        _ => format!("writing in {dir} failed ({err}); check the disk holding {dir}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(RETRY_FIRST, RETRY_MAX);
        let secs: Vec<u64> = (0..8).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay(), RETRY_FIRST);
    }

    #[test]
    fn reasons_name_the_directory_and_the_remedy() {
        let dir = Path::new("/var/lib/lps-bridge");
        let full = describe_io(&io::Error::from_raw_os_error(28), dir);
        assert!(
            full.contains("full") && full.ends_with("free space in /var/lib/lps-bridge"),
            "{full}"
        );
        let ro = describe_io(&io::Error::from_raw_os_error(30), dir);
        assert_eq!(
            ro,
            "/var/lib/lps-bridge is on a read-only file system; make /var/lib/lps-bridge writable"
        );
        let denied = describe_io(&io::Error::from_raw_os_error(13), dir);
        assert!(
            denied.ends_with("make /var/lib/lps-bridge writable"),
            "{denied}"
        );
        for text in [full, ro, denied] {
            assert!(!text.contains("store write failed"), "{text}");
        }
    }
}
