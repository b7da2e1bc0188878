//! Wall-clock time as the audit log and the capabilities use it: UNIX seconds,
//! printed and parsed as RFC 3339 UTC (the `time` crate), and durations written like `30s`, `15m`, `2h`, `7d`.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{AgentError, Result};

/// Seconds since 1970-01-01 UTC. With the `test-hooks` feature (tests only), the
/// `ETCH_NOW` environment variable overrides it, for tests of expiry; a normal build
/// has no way to fake the clock.
pub fn now() -> u64 {
    #[cfg(feature = "test-hooks")]
    if let Some(t) = std::env::var("ETCH_NOW")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return t;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `secs` as `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC, whole seconds).
pub fn rfc3339(secs: u64) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// An RFC 3339 time (any offset; fractions of a second dropped) as UNIX seconds, or
/// `None` for anything else — out-of-range fields included (month 13, hour 24, …).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp()).ok()
}

/// Parses `90`, `30s`, `15m`, `2h` or `7d` into seconds.
pub fn parse_duration(s: &str) -> Result<u64> {
    let s = s.trim();
    let bad = || {
        AgentError::Invalid(format!(
            "invalid duration {s:?}: write a number with s, m, h or d, like 15m or 7d"
        ))
    };
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        Some(_) => (s, 's'),
        None => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_durations() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_322_096), "2026-11-22T04:34:56Z");
        for t in [0u64, 951_782_400, 1_795_322_096, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("2026-11-22 04:34:56"), None);
        assert_eq!(parse_rfc3339("2026-13-01T00:00:00Z"), None, "month 13");
        assert_eq!(parse_rfc3339("2026-02-30T00:00:00Z"), None, "February 30");
        assert_eq!(parse_rfc3339("2026-11-22T24:00:00Z"), None, "hour 24");
        assert_eq!(
            parse_rfc3339("2026-11-22T05:34:56+01:00"),
            Some(1_795_322_096)
        );
        assert_eq!(parse_duration("15m").unwrap(), 900);
        assert_eq!(parse_duration("7d").unwrap(), 604_800);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
