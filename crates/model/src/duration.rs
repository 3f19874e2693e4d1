//! TTL durations written as `1d`, `24h`, `1h30m`, `86400s`, `500ms` or `0`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A non-negative duration with millisecond resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "DurationInput", into = "String")]
pub struct Ttl {
    pub millis: u64,
}

/// YAML may hold a duration as a string or a bare number of seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum DurationInput {
    Seconds(i64),
    Text(String),
}

impl TryFrom<DurationInput> for Ttl {
    type Error = String;
    fn try_from(v: DurationInput) -> Result<Self, String> {
        match v {
            DurationInput::Seconds(s) if s < 0 => Err(format!("duration must not be negative (got {s})")),
            DurationInput::Seconds(s) => Ok(Ttl::from_secs(s as u64)),
            DurationInput::Text(t) => Ttl::parse(&t),
        }
    }
}

impl Ttl {
    pub fn from_secs(s: u64) -> Self {
        Self {
            millis: s.saturating_mul(1000),
        }
    }

    pub fn seconds(self) -> i64 {
        (self.millis / 1000) as i64
    }

    pub fn nanos(self) -> i32 {
        ((self.millis % 1000) * 1_000_000) as i32
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.starts_with('-') {
            return Err(format!("duration {s:?} must not be negative"));
        }
        if t == "0" {
            return Ok(Self::default());
        }
        let bad = || format!("invalid duration {s:?}: use e.g. 0, 30s, 15m, 24h, 1d, 1h30m or 500ms");
        let mut millis: u64 = 0;
        let mut rest = t;
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let factor: u64 = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            millis = n
                .checked_mul(factor)
                .and_then(|v| millis.checked_add(v))
                .ok_or_else(|| format!("duration {s:?} is too large"))?;
        }
        Ok(Self { millis })
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.millis == 0 {
            return f.write_str("0");
        }
        let mut rest = self.millis;
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
            ("ms", 1),
        ] {
            if rest >= size {
                write!(f, "{}{unit}", rest / size)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl From<Ttl> for String {
    fn from(t: Ttl) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(Ttl::parse("1d").unwrap().seconds(), 86_400);
        assert_eq!(Ttl::parse("24h").unwrap().seconds(), 86_400);
        assert_eq!(Ttl::parse("1h30m").unwrap().seconds(), 5_400);
        assert_eq!(Ttl::parse("86400s").unwrap().seconds(), 86_400);
        assert_eq!(Ttl::parse("1500ms").unwrap().nanos(), 500_000_000);
        assert_eq!(Ttl::parse("0").unwrap().millis, 0);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in ["-1d", "", "1x", "d", "1.5h", "h1", "99999999999999999999d"] {
            assert!(Ttl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn displays_compactly() {
        assert_eq!(Ttl::parse("86400s").unwrap().to_string(), "1d");
        assert_eq!(Ttl::parse("90000s").unwrap().to_string(), "1d1h");
        assert_eq!(Ttl::default().to_string(), "0");
    }

    #[test]
    fn yaml_numbers_are_seconds() {
        let t: Ttl = serde_yaml::from_str("3600").unwrap();
        assert_eq!(t.seconds(), 3600);
        assert!(serde_yaml::from_str::<Ttl>("-5").is_err());
        assert!(serde_yaml::from_str::<Ttl>("\"-5s\"").is_err());
    }
}
