//! Formatting a [`Timestamp`] as text: RFC 5322 §3.3 (`Received:` headers) and RFC 3339
//! (log lines).
//!
//! A few lines of civil-calendar arithmetic instead of a dependency: nothing here reads a
//! clock, all we need is "format these seconds", always in UTC, which keeps simulated traces
//! identical on every machine whatever its time zone.

use super::Timestamp;

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Tue, 14 Nov 2023 22:13:20 +0000`.
pub fn rfc5322(t: Timestamp) -> String {
    let secs = t.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `14-Nov-2023 22:13:20 +0000` (RFC 3501 `date-time`, the INTERNALDATE form).
pub fn imap(t: Timestamp) -> String {
    let secs = t.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{d:02}-{}-{y:04} {:02}:{:02}:{:02} +0000",
        MONTHS[(m - 1) as usize],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `2026-01-01T00:00:00.000000Z` (RFC 3339, UTC, microseconds).
pub fn rfc3339(t: Timestamp) -> String {
    let secs = t.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        t.0.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31): H. Hinnant's `civil_from_days`,
/// for non-negative day counts (a [`Timestamp`] cannot be before the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // Checked against `date -u -d @N "+%a, %d %b %Y %H:%M:%S +0000"`.
        for (secs, want) in [
            (0, "Thu, 01 Jan 1970 00:00:00 +0000"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (1_700_000_000, "Tue, 14 Nov 2023 22:13:20 +0000"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 +0000"),
        ] {
            assert_eq!(rfc5322(Timestamp::from_secs(secs)), want);
        }
        assert_eq!(
            imap(Timestamp::from_secs(1_700_000_000)),
            "14-Nov-2023 22:13:20 +0000"
        );
    }

    #[test]
    fn far_future_does_not_panic() {
        let _ = rfc5322(Timestamp::from_secs(u64::MAX));
    }
}
