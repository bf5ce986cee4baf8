//! Durations (`90s`, `15m`, `1h30m`) and sizes (`50MB`, `1GiB`) as given on the command line.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error(
        "{0:?} is not a duration; give a number with a unit, e.g. 500ms, 90s, 15m, 1h or 1h30m"
    )]
    Duration(String),
    #[error(
        "{0:?} is not a size; give a number with a unit, e.g. 500KB, 50MB, 1GiB (or plain bytes)"
    )]
    Size(String),
}

/// Parses `500ms`, `90s`, `15m`, `1h`, `2d`, `1h30m`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let error = || UnitError::Duration(text.to_string());
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(error());
    }
    if let Ok(seconds) = trimmed.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|_| error());
    }
    let mut total = Duration::ZERO;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(error)?;
        let unit_end = rest[number_end..]
            .find(|c: char| c.is_ascii_digit())
            .map(|i| number_end + i)
            .unwrap_or(rest.len());
        let value: f64 = rest[..number_end].parse().map_err(|_| error())?;
        let seconds_per_unit = match rest[number_end..unit_end].trim() {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            _ => return Err(error()),
        };
        total += Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| error())?;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

/// Parses `50MB` (10^6), `50MiB` (2^20), `500KB`, `1GB`, `1024`; units are case-insensitive.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let error = || UnitError::Size(text.to_string());
    let trimmed = text.trim();
    let number_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let value: f64 = trimmed[..number_end].parse().map_err(|_| error())?;
    let multiplier: f64 = match trimmed[number_end..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(error()),
    };
    let bytes = value * multiplier;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(error());
    }
    Ok(bytes.round() as u64)
}

/// `1.2 MB`, `340 KB`, `12 B`.
pub fn format_size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} KB", bytes as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.2} GB", bytes as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_units_and_combinations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration(" 2d "), Ok(Duration::from_secs(172_800)));
        for bad in ["", "h", "10 parsecs", "-5s", "1h30"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .to_string()
                .contains("e.g. 500ms")
        );
    }

    #[test]
    fn sizes_read_decimal_and_binary_units() {
        assert_eq!(parse_size("50MB"), Ok(50_000_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("500kb"), Ok(500_000));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert_eq!(format_size(1_234_567), "1.2 MB");
        assert_eq!(format_size(12), "12 B");
    }
}
