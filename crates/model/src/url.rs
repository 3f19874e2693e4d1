//! Percent-decoding of the parts of connection URLs (user, password,
//! database, query parameters), shared by the online store, offline source
//! and registry configs, which all accept Feast-style URLs.

/// Why a part of a URL does not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// `%` not followed by two hex digits.
    MalformedEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeError::MalformedEscape => "has a malformed %-escape",
            DecodeError::NotUtf8 => "is not UTF-8 after %-decoding",
        })
    }
}

/// Decode `%XX` escapes; with `plus_as_space` (query strings) `+` is a space.
pub fn percent_decode(s: &str, plus_as_space: bool) -> Result<String, DecodeError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3).ok_or(DecodeError::MalformedEscape)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| DecodeError::MalformedEscape)?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_query_spaces() {
        assert_eq!(percent_decode("p%40ss%2Fw", false).unwrap(), "p@ss/w");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert_eq!(percent_decode("a+b", true).unwrap(), "a b");
        assert_eq!(percent_decode("x%zz", false), Err(DecodeError::MalformedEscape));
        assert_eq!(percent_decode("x%4", false), Err(DecodeError::MalformedEscape));
        assert_eq!(percent_decode("%ff", false), Err(DecodeError::NotUtf8));
    }
}
