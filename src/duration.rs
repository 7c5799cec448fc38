//! Durations as people write them in the configuration file and on the command line: `5s`,
//! `2500ms`, `1m`, `1h`, `1.5s`; a bare number is seconds.
//!
//! A leaf module so that every settings struct can read its own durations
//! (`#[serde(with = "crate::duration")]`) without importing the configuration that composes them.

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;
use std::time::Duration;

/// `5s`, `2500ms`, `1m`, `1h`, `1.5s`; a bare number is seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 5s, 500ms, 1m)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        other => {
            return Err(format!(
                "{text:?}: unknown unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{text:?}: {e}"))
}

/// The largest whole unit that spells `duration` exactly, so that [`parse`] reads it back
/// unchanged: `24h`, `1m`, `2500ms`.
pub fn format(duration: Duration) -> String {
    if !duration.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{}s", duration.as_secs_f64());
    }
    let ms = duration.as_millis();
    [("h", 3_600_000), ("m", 60_000), ("s", 1_000)]
        .into_iter()
        .find(|&(_, size)| ms != 0 && ms.is_multiple_of(size))
        .map_or_else(
            || format!("{ms}ms"),
            |(unit, size)| format!("{}{unit}", ms / size),
        )
}

/// For `#[serde(with = "crate::duration")]`.
pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*duration))
}

/// For `#[serde(with = "crate::duration")]`. YAML reads `timeout: 7` as a number, not a string;
/// it is taken as seconds, as [`parse`] takes a bare number.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 5s, 500ms or 1m")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(seconds))
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
        u64::try_from(seconds)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("{seconds}: a duration cannot be negative")))
    }

    fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(seconds).map_err(|e| E::custom(format!("{seconds}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("7"), Ok(Duration::from_secs(7)));
        assert!(parse("").is_err());
        assert!(parse("-1s").is_err());
    }

    #[test]
    fn formats_what_it_parses_back_unchanged() {
        for (duration, text) in [
            (Duration::from_secs(24 * 3600), "24h"),
            (Duration::from_secs(60), "1m"),
            (Duration::from_secs(90), "90s"),
            (Duration::from_millis(2500), "2500ms"),
            (Duration::ZERO, "0ms"),
            (Duration::from_micros(1500), "0.0015s"),
        ] {
            assert_eq!(format(duration), text);
            assert_eq!(parse(text), Ok(duration), "{text}");
        }
    }

    #[test]
    fn reads_strings_and_bare_numbers_of_seconds() {
        let read = |yaml: &str| -> Result<Duration, String> {
            let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).expect("yaml");
            deserialize(value).map_err(|e| e.to_string())
        };
        assert_eq!(read("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(read("7"), Ok(Duration::from_secs(7)));
        assert_eq!(read("0.25"), Ok(Duration::from_millis(250)));
        assert!(read("-3").expect_err("negative").contains("negative"));
        assert!(read("[1]")
            .expect_err("list")
            .contains("a duration such as"));
    }
}
