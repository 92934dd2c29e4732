//! Time, injectable: the API stamps `creationTimestamp`, `deletionTimestamp` and `managedFields`
//! times from a [`Clock`], so that tests can fix it.

use std::sync::atomic::{AtomicI64, Ordering};

/// A source of the current time, in whole seconds since the Unix epoch (Kubernetes timestamps
/// have a resolution of one second).
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the epoch, now.
    fn now(&self) -> i64;

    /// The current time in RFC 3339.
    fn timestamp(&self) -> String {
        rfc3339(self.now())
    }
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        now()
    }
}

/// A clock that stands still until it is set: for tests.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `seconds` since the epoch.
    pub fn new(seconds: i64) -> Self {
        ManualClock(AtomicI64::new(seconds))
    }

    /// Moves the clock to `seconds` since the epoch.
    pub fn set(&self, seconds: i64) {
        self.0.store(seconds, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Seconds since the epoch on the system clock.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default()
}

/// Formats seconds since the epoch as RFC 3339 (`2006-01-02T15:04:05Z`).
pub fn rfc3339(seconds: i64) -> String {
    Rfc3339(seconds).to_string()
}

/// Seconds since the epoch, displayed as RFC 3339: written where it goes, without a string of its
/// own (every served object has a creationTimestamp).
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339(pub i64);

impl Rfc3339 {
    /// The 20 bytes of a time in the years 0–9999 (every commit's), written without the
    /// machinery of `fmt`: served objects' timestamps are written for every item of a LIST.
    pub fn bytes(self) -> Option<[u8; 20]> {
        let [year, month, day, hour, minute, second] = civil(self.0);
        let year = u16::try_from(year).ok().filter(|y| *y <= 9999)?;
        let mut out = *b"0000-00-00T00:00:00Z";
        let two = |n: i64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
        out[..2].copy_from_slice(&two(i64::from(year / 100)));
        out[2..4].copy_from_slice(&two(i64::from(year % 100)));
        for (at, n) in [(5, month), (8, day), (11, hour), (14, minute), (17, second)] {
            out[at..at + 2].copy_from_slice(&two(n));
        }
        Some(out)
    }
}

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [year, month, day, hour, minute, second] = civil(self.0);
        write!(f, "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
    }
}

/// Year, month, day, hour, minute and second of seconds since the epoch.
fn civil(seconds: i64) -> [i64; 6] {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    [year, month, day, secs / 3600, secs % 3600 / 60, secs % 60]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_612_057), "2026-11-25T13:07:37Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        // Written without `fmt` in the years 0-9999, the same bytes.
        for seconds in [0, 1_795_612_057, 951_782_400, -62_167_219_200, 253_402_300_799, -1, 86_399] {
            assert_eq!(
                Rfc3339(seconds).bytes().map(|b| String::from_utf8_lossy(&b).into_owned()),
                Some(rfc3339(seconds))
            );
        }
        for seconds in [-62_167_219_201, 253_402_300_800, i64::MIN / 1000, i64::MAX / 1000] {
            assert_eq!(Rfc3339(seconds).bytes(), None, "{}", rfc3339(seconds));
        }
    }

    #[test]
    fn a_manual_clock_moves_only_when_set() {
        let clock = ManualClock::new(10);
        assert_eq!(clock.timestamp(), "1970-01-01T00:00:10Z");
        clock.set(951_782_400);
        assert_eq!(clock.now(), 951_782_400);
    }
}
