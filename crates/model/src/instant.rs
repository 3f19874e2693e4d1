//! Instants written as text, read the way Feast's users write them: RFC 3339
//! (`2024-01-01T00:00:00Z`, `…+02:00`), the same with a `+0200` offset or a
//! space instead of `T`, or without an offset (UTC), or a bare date
//! (midnight UTC).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// The instant `s` names, or `None` when it is none of the accepted forms.
pub fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.to_utc());
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(d) = DateTime::parse_from_str(s, f) {
            return Some(d.to_utc());
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(n.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|n| n.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let t = |s| parse_utc(s).map(|d| d.timestamp());
        let base = Some(1_704_067_200); // 2024-01-01T00:00:00Z
        for s in [
            "2024-01-01T00:00:00Z",
            "2024-01-01T02:00:00+02:00",
            "2024-01-01T02:00:00+0200",
            "2024-01-01 02:00:00.000+0200",
            "2024-01-01T00:00:00",
            "2024-01-01 00:00:00.000000",
            " 2024-01-01 ",
        ] {
            assert_eq!(t(s), base, "{s}");
        }
        assert_eq!(t("2024-13-01"), None);
        assert_eq!(t("yesterday"), None);
    }
}
