//! Parsing of the quantities the command line accepts: sizes (`64M`, `1G`),
//! times in seconds (`0.5`) and plain counts (`16`).
//!
//! Every parser returns a message fit to be shown to the user after the
//! option name, so clap can report it as it is.

use std::time::Duration;

/// Longest time accepted, in seconds (about 31 years).
///
/// Anything longer means "no limit" in practice, and keeping times this small
/// guarantees that doubling them for the default wall-clock limit or adding
/// them to a clock reading can never overflow.
pub const MAX_SECONDS: u64 = 1_000_000_000;

/// The rule for zero, shared by both faces: a limit of 0 (`--time 0`,
/// `--mem 0`, `--processes 0`, `-t 0`, `-m 0`...) means no limit, as it
/// does for isolate's options. A literal zero would be no use: no time,
/// memory or process at all cannot run any program.
pub fn unlimited_if_zero<T: Default + PartialEq>(value: T) -> Option<T> {
    (value != T::default()).then_some(value)
}

/// Parses a size in bytes: a decimal integer with an optional binary suffix.
///
/// `K`, `M`, `G` and `T` (any case, optionally followed by `B` or `iB`) are
/// powers of 1024, because memory limits are always meant that way; without
/// a suffix the number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(if text.is_empty() {
            "empty size; expected a number of bytes such as 1000, 512K, 64M or 1G".to_string()
        } else if text.starts_with('-') {
            format!("size '{text}' must not be negative")
        } else {
            format!(
                "'{text}' is not a size; expected a number of bytes such as 1000, 512K, 64M or 1G"
            )
        });
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ if suffix.starts_with('.') => {
            return Err(format!("size '{text}' must be a whole number"))
        }
        _ => {
            return Err(format!(
                "'{text}' has an unknown unit '{suffix}'; use K, M, G or T (powers of 1024) or no unit for bytes"
            ))
        }
    };
    let too_large = || format!("size '{text}' is too large");
    let number: u64 = digits.parse().map_err(|_| too_large())?;
    number.checked_mul(1u64 << shift).ok_or_else(too_large)
}

/// Parses a time in seconds: a non-negative finite decimal number such as
/// `1`, `0.5` or `2.25`, at most [`MAX_SECONDS`].
///
/// The digits are converted exactly (no floating point), so `0.1` is exactly
/// 100 ms; digits beyond nanoseconds are dropped.
pub fn parse_time(text: &str) -> Result<Duration, String> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let well_formed = !(whole.is_empty() && fraction.is_empty())
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !well_formed {
        return Err(explain_bad_time(text));
    }
    let too_large = || format!("time '{text}' is too large; at most {MAX_SECONDS} seconds");
    let seconds: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let nanos = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0u32, |acc, digit| acc * 10 + u32::from(digit - b'0'));
    let time = Duration::new(seconds, nanos);
    if time > Duration::from_secs(MAX_SECONDS) {
        return Err(too_large());
    }
    Ok(time)
}

/// The most helpful message for a time that is not plain decimal seconds.
fn explain_bad_time(text: &str) -> String {
    if text.is_empty() {
        return "empty time; expected seconds such as 1, 0.5 or 2.25".to_string();
    }
    // Only used to recognise what the user meant; the value itself is
    // rejected either way.
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_nan() || value.is_infinite() => {
            format!("time '{text}' must be a finite number of seconds")
        }
        Ok(value) if value.is_sign_negative() => {
            format!("time '{text}' must not be negative")
        }
        _ => format!("'{text}' is not a time; expected seconds such as 1, 0.5 or 2.25"),
    }
}

/// Parses a plain count (processes, open files): a non-negative decimal
/// integer.
pub fn parse_count(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("empty number; expected a whole number such as 16".to_string());
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(if text.starts_with('-') {
            format!("'{text}' must not be negative")
        } else {
            format!("'{text}' is not a whole number")
        });
    }
    text.parse().map_err(|_| format!("'{text}' is too large"))
}

/// Formats a byte count for people: `512B`, `1.2MiB`, `3.0GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    // Precision loss is irrelevant at one decimal.
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_without_unit_are_bytes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn size_units_are_powers_of_1024_in_any_spelling() {
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("64mb"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1gB"), Ok(1 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("3KB"), Ok(3 << 10));
        assert_eq!(parse_size("3KiB"), Ok(3 << 10));
    }

    #[test]
    fn bad_sizes_are_rejected_with_a_reason() {
        for (text, reason) in [
            ("", "empty"),
            ("M", "not a size"),
            ("-5", "negative"),
            ("-5M", "negative"),
            ("12Q", "unknown unit"),
            ("1.5G", "whole number"),
            ("64 M", "unknown unit"),
            (" 64M", "not a size"),
            ("64MM", "unknown unit"),
            ("0x10", "unknown unit"),
            ("+5", "not a size"),
            ("99999999999999999999", "too large"),
            ("18446744073709551615K", "too large"),
            ("16777216T", "too large"),
        ] {
            let error = parse_size(text).expect_err(text);
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn largest_sizes_that_fit_are_accepted() {
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(parse_size("16777215T"), Ok(16_777_215 << 40));
    }

    #[test]
    fn times_are_exact_decimal_seconds() {
        assert_eq!(parse_time("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_time("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_time("2.25"), Ok(Duration::from_millis(2250)));
        assert_eq!(parse_time("0.1"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_time("0"), Ok(Duration::ZERO));
        assert_eq!(parse_time(".5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_time("3."), Ok(Duration::from_secs(3)));
        assert_eq!(parse_time("0.000000001"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse_time("0.0000000019"), Ok(Duration::from_nanos(1)));
        assert_eq!(
            parse_time("1000000000"),
            Ok(Duration::from_secs(MAX_SECONDS))
        );
    }

    #[test]
    fn bad_times_are_rejected_with_a_reason() {
        for (text, reason) in [
            ("", "empty"),
            (".", "not a time"),
            ("-1", "negative"),
            ("-0.5", "negative"),
            ("NaN", "finite"),
            ("nan", "finite"),
            ("inf", "finite"),
            ("-inf", "finite"),
            ("infinity", "finite"),
            ("abc", "not a time"),
            ("1s", "not a time"),
            ("1e3", "not a time"),
            ("1.2.3", "not a time"),
            (" 1", "not a time"),
            ("+1", "not a time"),
            ("1,5", "not a time"),
            ("1000000000.5", "too large"),
            ("1000000001", "too large"),
            ("99999999999999999999999", "too large"),
        ] {
            let error = parse_time(text).expect_err(text);
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn counts_are_plain_whole_numbers() {
        assert_eq!(parse_count("16"), Ok(16));
        assert_eq!(parse_count("0"), Ok(0));
        for (text, reason) in [
            ("", "empty"),
            ("-1", "negative"),
            ("1.5", "not a whole number"),
            ("16K", "not a whole number"),
            ("99999999999999999999", "too large"),
        ] {
            let error = parse_count(text).expect_err(text);
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn zero_is_no_limit() {
        assert_eq!(unlimited_if_zero(0u64), None);
        assert_eq!(unlimited_if_zero(5u64), Some(5));
        assert_eq!(unlimited_if_zero(Duration::ZERO), None);
        assert_eq!(
            unlimited_if_zero(Duration::from_nanos(1)),
            Some(Duration::from_nanos(1))
        );
    }

    #[test]
    fn human_sizes_use_binary_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1023), "1023B");
        assert_eq!(human_size(1024), "1.0KiB");
        assert_eq!(human_size(1_258_291), "1.2MiB");
        assert_eq!(human_size(3 << 30), "3.0GiB");
        assert_eq!(human_size(u64::MAX), "16.0EiB");
    }
}
