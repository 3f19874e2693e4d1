//! What differs between PostgreSQL, MySQL/MariaDB and SQLite in the
//! statements the registry sends. Pure.

/// The SQL flavour behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

impl Dialect {
    /// The column type of serialized protos.
    pub(super) fn blob(self) -> &'static str {
        match self {
            Dialect::Postgres => "BYTEA",
            Dialect::MySql => "LONGBLOB",
            Dialect::Sqlite => "BLOB",
        }
    }

    /// `?` placeholders in this dialect's spelling (`$1, $2, …` on PostgreSQL).
    pub(super) fn placeholders(self, s: &str) -> String {
        if self != Dialect::Postgres {
            return s.to_string();
        }
        let mut out = String::with_capacity(s.len() + 8);
        let mut n = 0;
        for c in s.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// `INSERT … ` that skips rows whose key exists.
    pub(super) fn insert_ignore(self, rest: &str) -> String {
        match self {
            Dialect::MySql => format!("INSERT IGNORE INTO {rest}"),
            _ => format!("INSERT INTO {rest} ON CONFLICT DO NOTHING"),
        }
    }

    /// The row-lock suffix of a `SELECT` (SQLite locks the whole database instead).
    pub(super) fn for_update(self) -> &'static str {
        if self == Dialect::Sqlite { "" } else { " FOR UPDATE" }
    }

    /// `INSERT INTO {rest}` that overwrites `columns` when a row with the
    /// same `key` exists.
    pub(super) fn upsert(self, rest: &str, key: &[&str], columns: &[&str]) -> String {
        match self {
            Dialect::MySql => {
                let set: Vec<String> = columns.iter().map(|c| format!("{c} = VALUES({c})")).collect();
                format!("INSERT INTO {rest} ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
            _ => {
                let set: Vec<String> = columns.iter().map(|c| format!("{c} = excluded.{c}")).collect();
                format!(
                    "INSERT INTO {rest} ON CONFLICT ({}) DO UPDATE SET {}",
                    key.join(", "),
                    set.join(", ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_on_postgres_only() {
        let q = "SELECT a FROM t WHERE b = ? AND c = ?";
        assert_eq!(
            Dialect::Postgres.placeholders(q),
            "SELECT a FROM t WHERE b = $1 AND c = $2"
        );
        assert_eq!(Dialect::MySql.placeholders(q), q);
        assert_eq!(Dialect::Sqlite.placeholders(q), q);
    }

    #[test]
    fn upserts_per_dialect() {
        let rest = "m (k, v) VALUES (?, ?)";
        assert_eq!(
            Dialect::MySql.upsert(rest, &["k"], &["v"]),
            "INSERT INTO m (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)"
        );
        assert_eq!(
            Dialect::Postgres.upsert(rest, &["k"], &["v"]),
            "INSERT INTO m (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v"
        );
        assert_eq!(
            Dialect::Sqlite.insert_ignore("t (a) VALUES (?)"),
            "INSERT INTO t (a) VALUES (?) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            Dialect::MySql.insert_ignore("t (a) VALUES (?)"),
            "INSERT IGNORE INTO t (a) VALUES (?)"
        );
        assert_eq!(Dialect::Sqlite.for_update(), "");
    }
}
