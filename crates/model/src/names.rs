//! Name rules. Every identifier that can reach SQL, Redis keys or file
//! paths passes one of these checks first.

/// Longest Feast object name, feature name or join key we accept.
pub const MAX_NAME_LEN: usize = 128;

/// Kubernetes DNS-1123 subdomain: what `metadata.name` must be.
pub fn check_dns1123_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > 253 {
        return Err(format!("must be at most 253 characters (got {})", name.len()));
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    let ends_ok = alnum(bytes[0]) && alnum(bytes[bytes.len() - 1]);
    let labels_ok = name.split('.').all(|l| !l.is_empty() && l.len() <= 63);
    if ok_chars && ends_ok && labels_ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid Kubernetes name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ))
    }
}

/// [`check_feast_name`] as a regular expression, for CRD schemas.
pub const FEAST_NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_-]*$";
/// [`check_identifier`] as a regular expression, for CRD schemas.
pub const IDENTIFIER_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// [`check_project`] as a regular expression, for CRD schemas.
pub const PROJECT_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_-]*$";

/// A Feast object name (entity, source, view, service, permission):
/// `^[A-Za-z_][A-Za-z0-9_-]*$`, at most [`MAX_NAME_LEN`] characters.
pub fn check_feast_name(name: &str) -> Result<(), String> {
    check_pattern(
        name,
        true,
        "a Feast name: letters, digits, '_' and '-', starting with a letter or '_'",
    )
}

/// A Feast identifier (feature name, join key, column): `^[A-Za-z_][A-Za-z0-9_]*$`.
pub fn check_identifier(name: &str) -> Result<(), String> {
    check_pattern(
        name,
        false,
        "an identifier: letters, digits and '_', starting with a letter or '_'",
    )
}

/// A Feast project name: letters, digits, `_` and `-`, not starting with `_` or `-`.
pub fn check_project(name: &str) -> Result<(), String> {
    check_feast_name(name)?;
    if name.starts_with('_') {
        return Err(format!("project name {name:?} must start with a letter or digit"));
    }
    Ok(())
}

fn check_pattern(name: &str, allow_dash: bool, what: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(format!(
            "must be at most {MAX_NAME_LEN} characters (got {})",
            name.chars().count()
        ));
    }
    let first = name.as_bytes()[0];
    let first_ok = first.is_ascii_alphabetic() || first == b'_';
    let rest_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || (allow_dash && b == b'-'));
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not {what}"))
    }
}

/// A Kubernetes-style name derived from a Feast name, for objects read back
/// from a registry that Feast wrote (`driver_hourly_stats` → `driver-hourly-stats`).
pub fn dns_name_for(feast_name: &str) -> String {
    let mut out: String = feast_name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    while out.starts_with(['-', '.']) {
        out.remove(0);
    }
    while out.ends_with(['-', '.']) {
        out.pop();
    }
    out.truncate(253);
    if out.is_empty() { "x".to_string() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(check_dns1123_subdomain("driver-hourly-stats").is_ok());
        assert!(check_dns1123_subdomain("a.b").is_ok());
        for bad in ["", "Driver", "driver_stats", "-a", "a-", "../x", "a;b", "drop table x"] {
            assert!(check_dns1123_subdomain(bad).is_err(), "{bad}");
        }
        assert!(check_dns1123_subdomain(&"a".repeat(254)).is_err());
    }

    #[test]
    fn feast_names() {
        for ok in ["driver_hourly_stats", "_x", "a-b", "A1"] {
            assert!(check_feast_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "drop table x", "a;b", "../x", "1abc", "a.b", "a'b", "é"] {
            assert!(check_feast_name(bad).is_err(), "{bad}");
        }
        assert!(check_feast_name(&"a".repeat(300)).is_err());
        assert!(check_feast_name(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn identifiers_reject_dashes() {
        assert!(check_identifier("conv_rate").is_ok());
        assert!(check_identifier("conv-rate").is_err());
        assert!(check_project("_p").is_err());
        assert!(check_project("driver_stats").is_ok());
    }

    #[test]
    fn dns_name_derivation() {
        assert_eq!(dns_name_for("driver_hourly_stats"), "driver-hourly-stats");
        assert_eq!(dns_name_for("_X_"), "x");
        assert!(check_dns1123_subdomain(&dns_name_for("__dummy")).is_ok());
    }
}
