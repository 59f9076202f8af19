//! Durations (`300`, `90s`, `5m`, `2h`, `1d`) and points in time (`1741946405`,
//! `2025-03-14T10:00:05Z`, `-2h`, `now`) as operators type them.

use jiff::Timestamp;
use std::time::Duration;

/// Plain numbers are seconds, as in the Python script's `window`. Units combine, largest
/// first or not, with or without spaces: `1h30m`, `1h 30m` (as [`human_duration`] writes them).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let not_a_duration = || {
        format!(
            "`{text}` is not a duration: use seconds (300) or numbers with s, m, h or d \
             (5m, 1h30m)"
        )
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: u64 = text.parse().map_err(|_| format!("`{text}` is too large"))?;
        return Ok(Duration::from_secs(seconds));
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(not_a_duration());
        }
        let amount: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{text}` is too large"))?;
        let after = rest[digits..].trim_start();
        let unit_length = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let unit_seconds = match &after[..unit_length] {
            "s" | "sec" | "secs" => 1,
            "m" | "min" | "mins" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            // `1h30`: a bare number is only seconds on its own, never as a part.
            "" => return Err(not_a_duration()),
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}`: use s, m, h or d"
                ));
            }
        };
        total = amount
            .checked_mul(unit_seconds)
            .and_then(|seconds| total.checked_add(seconds))
            .ok_or_else(|| format!("`{text}` is too large"))?;
        rest = after[unit_length..].trim_start();
    }
    if text.is_empty() {
        return Err(not_a_duration());
    }
    Ok(Duration::from_secs(total))
}

/// A point in time relative to `now` when written as `-2h` or `now`.
pub fn parse_time(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(ago) = text.strip_prefix('-') {
        let duration = parse_duration(ago)?;
        let seconds =
            i64::try_from(duration.as_secs()).map_err(|_| format!("`{text}` is too far back"))?;
        return Timestamp::from_second(now.as_second() - seconds)
            .map_err(|_| format!("`{text}` is too far back"));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = text
            .parse()
            .map_err(|_| format!("`{text}` is out of range"))?;
        return Timestamp::from_second(seconds).map_err(|_| format!("`{text}` is out of range"));
    }
    text.parse::<Timestamp>().map_err(|_| {
        format!(
            "`{text}` is not a time: use Unix seconds (1741946405), RFC 3339 \
             (2025-03-14T10:00:05Z) or a relative time (-2h)"
        )
    })
}

/// `1741946405 (2025-03-14T10:00:05Z)`: both forms, so logs are greppable and readable.
pub fn describe(t: Timestamp) -> String {
    format!("{} ({})", t.as_second(), t.strftime("%Y-%m-%dT%H:%M:%SZ"))
}

/// `1h 5m 3s`, for ages and lags in human-facing messages.
pub fn human_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let (days, hours, minutes, seconds) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    let parts: Vec<String> = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")]
        .iter()
        .filter(|(amount, _)| *amount > 0)
        .map(|(amount, unit)| format!("{amount}{unit}"))
        .collect();
    if parts.is_empty() {
        "0s".to_string()
    } else {
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-5").is_err());
        assert!(parse_duration("99999999999999999999").is_err());
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1h 5m 3s"), Ok(Duration::from_secs(3903)));
        assert_eq!(parse_duration("11h55m"), Ok(Duration::from_secs(42_900)));
        assert_eq!(parse_duration("1d2h"), Ok(Duration::from_secs(93_600)));
        assert!(parse_duration("1h30").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1h-5m").is_err());
    }

    #[test]
    fn human_durations_parse_back() {
        for seconds in [0, 59, 3723, 86_400 + 60, 42_900] {
            let duration = Duration::from_secs(seconds);
            assert_eq!(parse_duration(&human_duration(duration)), Ok(duration));
        }
    }

    #[test]
    fn times() {
        let now = Timestamp::from_second(1_741_946_405).unwrap();
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(
            parse_time("-2h", now).unwrap().as_second(),
            1_741_946_405 - 7200
        );
        assert_eq!(
            parse_time("1700000000", now).unwrap().as_second(),
            1_700_000_000
        );
        assert_eq!(
            parse_time("2025-03-14T10:00:05Z", now).unwrap().as_second(),
            1_741_946_405
        );
        assert_eq!(
            parse_time("2025-03-14T11:00:05+01:00", now)
                .unwrap()
                .as_second(),
            1_741_946_405
        );
        assert_eq!(
            parse_time("-11h55m", now).unwrap().as_second(),
            1_741_946_405 - 42_900
        );
        assert!(
            parse_time("yesterday", now)
                .unwrap_err()
                .contains("RFC 3339")
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(human_duration(Duration::from_secs(0)), "0s");
        assert_eq!(human_duration(Duration::from_secs(3723)), "1h 2m 3s");
        assert_eq!(human_duration(Duration::from_secs(86_400 + 60)), "1d 1m");
    }

    #[test]
    fn describe_gives_both_forms() {
        let t = Timestamp::from_second(1_741_946_405).unwrap();
        assert_eq!(describe(t), "1741946405 (2025-03-14T10:00:05Z)");
    }
}
