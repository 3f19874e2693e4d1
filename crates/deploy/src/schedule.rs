//! Cron schedules for materialization, with the semantics of a Kubernetes
//! CronJob, so `spec.materialization: {schedule, timeZone}` means what a
//! CronJob with the same two fields would mean.
//!
//! The syntax is the one kube-controller-manager accepts (robfig/cron v3's
//! standard parser): five fields `minute hour day-of-month month day-of-week`
//! with `*`, numbers, ranges `a-b`, steps `*/n`, `a-b/n` and `a/n` (`a` to the
//! field's maximum), lists `a,b`, month names JAN-DEC and weekday names
//! SUN-SAT in any case, `?` for `*` in the two day fields, and the macros
//! `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight` and
//! `@hourly`. Where this parser differs from robfig/cron v3, it is on purpose:
//!
//! * day-of-week `7` is Sunday, as in Vixie/ISC cron and crontab(5) (robfig
//!   rejects it: robfig/cron#122), so schedules copied from a crontab work;
//! * empty list items (`1,,2`), a trailing range after `*` (`*-5`) and `?`
//!   outside the day fields are errors (robfig ignores or accepts them), as
//!   they are almost certainly typos;
//! * `@every` is refused: a materialization schedule names wall-clock times,
//!   and an interval from "whenever the operator started" cannot be resumed
//!   after downtime by [`Schedule::latest_due`].
//!
//! Like robfig, when both day fields are restricted a day matches if either
//! does (the standard cron rule), and a field counts as unrestricted when one
//! of its items is `*` or `?` with no step above 1 (so `*/1` is `*`, `*/2` is
//! not).
//!
//! # Time zones and daylight saving time
//!
//! The fields are matched against wall-clock time in the schedule's IANA
//! zone (UTC when none is given), which is what CronJob's `timeZone` does.
//! Around DST changes:
//!
//! * a wall time that does not exist (the spring-forward gap) is skipped:
//!   `30 2 * * *` in Europe/Berlin does not run on the last Sunday of March.
//!   This is robfig/cron v3's behaviour, hence a CronJob's: its `Next` steps
//!   hours by adding absolute durations, so it never lands on a skipped wall
//!   hour (spec.go; robfig/cron#541, still open, proposes ISC cron's "run at
//!   the end of the gap" instead);
//! * a wall time that occurs twice (the fall-back overlap) runs once, at its
//!   first occurrence. Here this differs from a CronJob: robfig's `Next` also
//!   lands on the second occurrence, so a CronJob matching the repeated hour
//!   runs twice. ISC cron runs fixed-time jobs once, and a materialization
//!   that repeats wall-clock times it has already covered is waste. The cost
//!   is that a schedule with `*` hours (`0 * * * *`) leaves one real hour
//!   without a run that night, where ISC cron would run it by the new clock.
//!
//! Searches step through matching days, then hours, then minutes, so a
//! schedule that fires once in four years costs a few hundred day checks, not
//! two million minute checks. Like robfig, a search gives up after about five
//! years: `0 0 30 2 *` never runs, and `0 0 29 2 *` from 2096 finds nothing
//! until 2104.

use std::ops::ControlFlow;

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

/// How far [`Schedule::next_after`] and [`Schedule::latest_due`] search, as
/// robfig/cron does: a schedule with no run in five years is as good as dead,
/// and an unbounded search for one that never runs (`0 0 30 2 *`) would not end.
const HORIZON_YEARS: i16 = 5;

/// How far back [`Schedule::latest_due`] looks for a DST fold (a repeated
/// wall-clock interval). Real zones repeat at most a few hours; two days is
/// ample and cheap, since only transitions inside it are visited.
const FOLD_WINDOW: SignedDuration = SignedDuration::from_hours(48);

/// A parsed cron schedule in a time zone. Compare two with `==` to see
/// whether a spec change moved the schedule (`0 0 * * 7` equals `0 0 * * SUN`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Bit `m` set: runs in minute `m` (0-59).
    minutes: u64,
    /// Bit `h` set: runs in hour `h` (0-23).
    hours: u64,
    /// Bit `d` set: runs on day-of-month `d` (1-31).
    days_of_month: u64,
    /// Bit `m` set: runs in month `m` (1-12).
    months: u64,
    /// Bit `w` set: runs on weekday `w` (0 = Sunday .. 6).
    days_of_week: u64,
    /// The day-of-month field is `*`/`?` (see [`Schedule::day_matches`]).
    any_day_of_month: bool,
    /// The day-of-week field is `*`/`?`.
    any_day_of_week: bool,
    tz: TimeZone,
}

/// Why a schedule or time zone was refused. The messages name the field and
/// the rule, so they can be put in a FeatureStore's status as they are.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error(
        "schedule is empty: write five fields (minute hour day-of-month month day-of-week) or a macro such as @daily"
    )]
    Empty,
    #[error("schedule {0:?} sets a time zone with TZ= or CRON_TZ=, which Kubernetes forbids; use timeZone instead")]
    TimeZoneInSchedule(String),
    #[error(
        "schedule {0:?}: @every is not supported, a schedule names wall-clock times; write a cron expression such as \"*/30 * * * *\""
    )]
    Every(String),
    #[error(
        "schedule {0:?}: unknown macro; the macros are @yearly, @annually, @monthly, @weekly, @daily, @midnight and @hourly"
    )]
    UnknownMacro(String),
    #[error(
        "schedule {expr:?} has {found} fields; expected 5 (minute hour day-of-month month day-of-week){}",
        if *found > 5 { ", seconds and years are not supported" } else { "" }
    )]
    FieldCount { expr: String, found: usize },
    /// `field` is the field's name (`minute`, `day-of-week`, ...), `value`
    /// the list item at fault (the whole field for an empty item).
    #[error("{field} field {value:?}: {rule}")]
    Field {
        field: &'static str,
        value: String,
        rule: String,
    },
    #[error("timeZone must be an IANA time zone name such as \"Europe/Berlin\", not {0:?}")]
    InvalidTimeZone(String),
    #[error("timeZone {name:?} is not a known IANA time zone ({reason})")]
    UnknownTimeZone { name: String, reason: String },
}

/// One field's name, range and names.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// The largest value a literal may have; above `max` only for the weekday,
    /// where 7 is folded onto 0 (Sunday).
    literal_max: u32,
    /// Three-letter names for `min`, `min + 1`, ... (months and weekdays).
    names: &'static [&'static str],
    /// `?` is allowed (the day fields).
    question_mark: bool,
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    literal_max: 59,
    names: &[],
    question_mark: false,
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    literal_max: 23,
    names: &[],
    question_mark: false,
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    literal_max: 31,
    names: &[],
    question_mark: true,
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    literal_max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
    question_mark: false,
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 6,
    literal_max: 7,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    question_mark: true,
};

/// A parsed field: the values as bits, and whether it was `*`/`?`.
struct Parsed {
    bits: u64,
    any: bool,
}

impl FieldSpec {
    fn error(&self, value: &str, rule: impl Into<String>) -> ScheduleError {
        ScheduleError::Field {
            field: self.name,
            value: value.to_string(),
            rule: rule.into(),
        }
    }

    /// `list = item {"," item}`.
    fn parse(&self, field: &str) -> Result<Parsed, ScheduleError> {
        let mut parsed = Parsed { bits: 0, any: false };
        for item in field.split(',') {
            if item.is_empty() {
                return Err(self.error(field, "a list item is empty"));
            }
            let (bits, any) = self.parse_item(item)?;
            parsed.bits |= bits;
            parsed.any |= any;
        }
        Ok(parsed)
    }

    /// `item = ("*" | "?" | value ["-" value]) ["/" step]`; returns the bits
    /// and whether the item leaves the field unrestricted.
    fn parse_item(&self, item: &str) -> Result<(u64, bool), ScheduleError> {
        let (range, step) = match item.split_once('/') {
            None => (item, None),
            Some((_, step)) if step.contains('/') => {
                return Err(self.error(item, "at most one / (a step) is allowed"));
            }
            Some((range, step)) => (range, Some(step)),
        };
        let stepped = step.is_some();
        let step = match step {
            None => 1,
            Some(s) => match parse_number(s) {
                Some(0) => return Err(self.error(item, "the step must be at least 1")),
                Some(n) => n,
                None => return Err(self.error(item, format!("the step {s:?} is not a number"))),
            },
        };
        let (start, end, any) = if range == "*" || range == "?" {
            if range == "?" && !self.question_mark {
                return Err(self.error(item, "? is allowed only in day-of-month and day-of-week"));
            }
            // `*/2` picks values, so it restricts the field (robfig's rule).
            (self.min, self.max, step == 1)
        } else {
            let (low, high) = match range.split_once('-') {
                Some((_, high)) if high.contains('-') => {
                    return Err(self.error(item, "a range has one - (a-b)"));
                }
                Some((low, high)) => (self.value(item, low)?, Some(self.value(item, high)?)),
                None => (self.value(item, range)?, None),
            };
            let high = match high {
                Some(high) => high,
                // `a/n` runs from a to the field's maximum (even `a/1`, as in robfig).
                None if stepped => self.max.max(low),
                None => low,
            };
            if low > high {
                return Err(self.error(
                    item,
                    format!("a range runs from low to high, and {low} is after {high}"),
                ));
            }
            (low, high, false)
        };
        let mut bits = 0u64;
        let mut v = start;
        while v <= end {
            // 7 is Sunday, stored as 0.
            let folded = if v > self.max { v - 7 } else { v };
            bits |= 1 << folded;
            v = v.saturating_add(step);
        }
        Ok((bits, any))
    }

    /// A number in range, or a name.
    fn value(&self, item: &str, text: &str) -> Result<u32, ScheduleError> {
        let lower = text.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            return Ok(self.min + i as u32);
        }
        let range = format!("values are {}-{}", self.min, self.literal_max);
        match (parse_number(text), self.names.first(), self.names.last()) {
            (Some(n), ..) if (self.min..=self.literal_max).contains(&n) => Ok(n),
            (Some(_), ..) => Err(self.error(item, range)),
            (None, ..) if text.is_empty() => Err(self.error(item, format!("a value is missing; {range}"))),
            (None, Some(first), Some(last)) => Err(self.error(
                item,
                format!(
                    "{text:?} is not a number or a name; {range} or {}-{}",
                    first.to_ascii_uppercase(),
                    last.to_ascii_uppercase()
                ),
            )),
            (None, ..) => Err(self.error(item, format!("{text:?} is not a number; {range}"))),
        }
    }
}

/// Decimal digits only (no sign); a number too large for u32 is reported as
/// out of range rather than as "not a number".
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(u32::MAX))
}

fn has(bits: u64, value: i8) -> bool {
    (0..64).contains(&value) && bits & (1 << value) != 0
}

impl Schedule {
    /// A five-field cron expression (minute hour day-of-month month
    /// day-of-week) or macro, evaluated in an IANA time zone (None = UTC).
    pub fn parse(expr: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let expr = expr.trim();
        if expr.is_empty() {
            return Err(ScheduleError::Empty);
        }
        // Kubernetes refuses any "TZ" in a schedule once timeZone exists.
        if expr.contains("TZ") {
            return Err(ScheduleError::TimeZoneInSchedule(expr.to_string()));
        }
        let tz = match time_zone {
            None => TimeZone::UTC,
            Some(name) if name.trim().is_empty() || name.eq_ignore_ascii_case("local") => {
                return Err(ScheduleError::InvalidTimeZone(name.to_string()));
            }
            Some(name) => TimeZone::get(name).map_err(|e| ScheduleError::UnknownTimeZone {
                name: name.to_string(),
                reason: e.to_string(),
            })?,
        };
        let fields: Vec<&str> = if expr.starts_with('@') {
            match expr {
                "@yearly" | "@annually" => vec!["0", "0", "1", "1", "*"],
                "@monthly" => vec!["0", "0", "1", "*", "*"],
                "@weekly" => vec!["0", "0", "*", "*", "0"],
                "@daily" | "@midnight" => vec!["0", "0", "*", "*", "*"],
                "@hourly" => vec!["0", "*", "*", "*", "*"],
                _ if expr.starts_with("@every") => return Err(ScheduleError::Every(expr.to_string())),
                _ => return Err(ScheduleError::UnknownMacro(expr.to_string())),
            }
        } else {
            expr.split_whitespace().collect()
        };
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(ScheduleError::FieldCount {
                expr: expr.to_string(),
                found: fields.len(),
            });
        };
        let minutes = MINUTE.parse(minute)?.bits;
        let hours = HOUR.parse(hour)?.bits;
        let dom = DAY_OF_MONTH.parse(dom)?;
        let months = MONTH.parse(month)?.bits;
        let dow = DAY_OF_WEEK.parse(dow)?;
        Ok(Schedule {
            minutes,
            hours,
            days_of_month: dom.bits,
            months,
            days_of_week: dow.bits,
            any_day_of_month: dom.any,
            any_day_of_week: dow.any,
            tz,
        })
    }

    /// The first due time strictly after `after` (None if none within about
    /// five years, e.g. `0 0 30 2 *`). A due time equal to `after` is not
    /// returned, so feeding back the last run gives the next one.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let wall = self.tz.to_datetime(after);
        // The wall-clock minute after `after`'s: a due time is on a minute.
        let start = wall
            .date()
            .at(wall.hour(), wall.minute(), 0, 0)
            .checked_add(1.minute())
            .ok()?;
        let last_day = start.date().checked_add(HORIZON_YEARS.years()).unwrap_or(Date::MAX);
        self.scan_forward(start, last_day, |dt| match self.resolve(dt) {
            // In a fold, wall times after `after`'s may have had their first
            // (and only) run before `after`.
            Some(t) if t > after => ControlFlow::Break(Some(t)),
            _ => ControlFlow::Continue(()),
        })
    }

    /// The latest due time at or before `now` and strictly after `since`
    /// (the most recent missed run), or None if nothing was due in
    /// (since, now]. After downtime the operator runs this one time instead
    /// of replaying every missed run, which is what a CronJob does with its
    /// most recent missed schedule. Looks back at most about five years.
    pub fn latest_due(&self, since: Timestamp, now: Timestamp) -> Option<Timestamp> {
        if since >= now {
            return None;
        }
        let wall = self.tz.to_datetime(now);
        // In a fold the clock has just gone back, so the first occurrence of
        // a wall time *later* than now's may already have passed: start the
        // scan at the latest wall time seen before `now`.
        let start = wall
            .date()
            .at(wall.hour(), wall.minute(), 0, 0)
            .checked_add(self.fold_margin(now))
            .ok()?;
        let since_day = self
            .tz
            .to_datetime(since)
            .date()
            .checked_sub(2.days())
            .unwrap_or(Date::MIN);
        let horizon = wall.date().checked_sub(HORIZON_YEARS.years()).unwrap_or(Date::MIN);
        self.scan_backward(start, since_day.max(horizon), |dt| match self.resolve(dt) {
            None => ControlFlow::Continue(()),
            Some(t) if t > now => ControlFlow::Continue(()),
            // Earlier wall times resolve to earlier instants: nothing left.
            Some(t) if t <= since => ControlFlow::Break(None),
            Some(t) => ControlFlow::Break(Some(t)),
        })
    }

    /// How far the wall clock stood ahead of `now`'s at some instant in the
    /// [`FOLD_WINDOW`] before `now` (zero outside a fold).
    fn fold_margin(&self, now: Timestamp) -> SignedDuration {
        let here = self.tz.to_offset(now).seconds();
        let window_start = now.checked_sub(FOLD_WINDOW).unwrap_or(Timestamp::MIN);
        let mut ahead = 0;
        for transition in self.tz.preceding(now) {
            let at = transition.timestamp();
            if at <= window_start {
                break;
            }
            let before = at.checked_sub(SignedDuration::from_secs(1)).unwrap_or(Timestamp::MIN);
            ahead = ahead.max(self.tz.to_offset(before).seconds() - here);
        }
        SignedDuration::from_secs(i64::from(ahead))
    }

    /// The instant a matching wall time runs at: None in a DST gap (skipped,
    /// as robfig/cron does), the first occurrence in a fold (runs once).
    fn resolve(&self, dt: DateTime) -> Option<Timestamp> {
        let offset = match self.tz.to_ambiguous_timestamp(dt).offset() {
            AmbiguousOffset::Unambiguous { offset } => offset,
            AmbiguousOffset::Gap { .. } => return None,
            AmbiguousOffset::Fold { before, .. } => before,
        };
        offset.to_timestamp(dt).ok()
    }

    /// The standard cron day rule: if both day fields are restricted, either
    /// may match (`0 0 13 * FRI` is "the 13th and every Friday"); otherwise
    /// both must.
    fn day_matches(&self, date: Date) -> bool {
        let dom = has(self.days_of_month, date.day());
        let dow = has(self.days_of_week, date.weekday().to_sunday_zero_offset());
        if self.any_day_of_month || self.any_day_of_week {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// Visits matching wall-clock minutes from `start` (inclusive) forward,
    /// through the end of `last_day`, until `visit` breaks. Months and days
    /// that do not match are skipped whole.
    fn scan_forward<T>(
        &self,
        start: DateTime,
        last_day: Date,
        mut visit: impl FnMut(DateTime) -> ControlFlow<Option<T>>,
    ) -> Option<T> {
        let mut day = start.date();
        let mut from = (start.hour(), start.minute());
        while day <= last_day {
            if !has(self.months, day.month()) {
                day = day.last_of_month().tomorrow().ok()?;
                from = (0, 0);
                continue;
            }
            if self.day_matches(day) {
                for hour in (from.0..24).filter(|h| has(self.hours, *h)) {
                    let first_minute = if hour == from.0 { from.1 } else { 0 };
                    for minute in (first_minute..60).filter(|m| has(self.minutes, *m)) {
                        if let ControlFlow::Break(found) = visit(day.at(hour, minute, 0, 0)) {
                            return found;
                        }
                    }
                }
            }
            day = day.tomorrow().ok()?;
            from = (0, 0);
        }
        None
    }

    /// Visits matching wall-clock minutes from `start` (inclusive) backward,
    /// down to the start of `first_day`, until `visit` breaks.
    fn scan_backward<T>(
        &self,
        start: DateTime,
        first_day: Date,
        mut visit: impl FnMut(DateTime) -> ControlFlow<Option<T>>,
    ) -> Option<T> {
        let mut day = start.date();
        let mut from = (start.hour(), start.minute());
        while day >= first_day {
            if !has(self.months, day.month()) {
                day = day.first_of_month().yesterday().ok()?;
                from = (23, 59);
                continue;
            }
            if self.day_matches(day) {
                for hour in (0..=from.0).rev().filter(|h| has(self.hours, *h)) {
                    let last_minute = if hour == from.0 { from.1 } else { 59 };
                    for minute in (0..=last_minute).rev().filter(|m| has(self.minutes, *m)) {
                        if let ControlFlow::Break(found) = visit(day.at(hour, minute, 0, 0)) {
                            return found;
                        }
                    }
                }
            }
            day = day.yesterday().ok()?;
            from = (23, 59);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn sched(expr: &str, tz: Option<&str>) -> Schedule {
        Schedule::parse(expr, tz).unwrap_or_else(|e| panic!("{expr:?}: {e}"))
    }

    /// The next `n` runs after `from`, as RFC 3339 UTC strings.
    fn runs_in(expr: &str, tz: Option<&str>, from: &str, n: usize) -> Vec<String> {
        let s = sched(expr, tz);
        let mut t = ts(from);
        let mut out = Vec::new();
        for _ in 0..n {
            match s.next_after(t) {
                Some(next) => {
                    assert!(next > t, "{expr}: {next} is not after {t}");
                    out.push(next.to_string());
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    fn runs(expr: &str, from: &str, n: usize) -> Vec<String> {
        runs_in(expr, None, from, n)
    }

    fn err(expr: &str) -> String {
        Schedule::parse(expr, None).unwrap_err().to_string()
    }

    #[test]
    fn every_minute_and_plain_numbers() {
        assert_eq!(
            runs("* * * * *", "2024-01-01T00:00:30Z", 3),
            ["2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z", "2024-01-01T00:03:00Z"]
        );
        assert_eq!(
            runs("5 4 * * *", "2024-01-01T00:00:00Z", 2),
            ["2024-01-01T04:05:00Z", "2024-01-02T04:05:00Z"]
        );
        assert_eq!(runs("07 04 * * *", "2024-01-01T00:00:00Z", 1), ["2024-01-01T04:07:00Z"]);
    }

    #[test]
    fn ranges_steps_and_lists() {
        assert_eq!(
            runs("10-12 * * * *", "2024-01-01T00:11:00Z", 3),
            ["2024-01-01T00:12:00Z", "2024-01-01T01:10:00Z", "2024-01-01T01:11:00Z"]
        );
        assert_eq!(
            runs("*/15 * * * *", "2024-01-01T00:00:00Z", 5),
            [
                "2024-01-01T00:15:00Z",
                "2024-01-01T00:30:00Z",
                "2024-01-01T00:45:00Z",
                "2024-01-01T01:00:00Z",
                "2024-01-01T01:15:00Z"
            ]
        );
        assert_eq!(
            runs("10-30/10 * * * *", "2024-01-01T00:00:00Z", 4),
            [
                "2024-01-01T00:10:00Z",
                "2024-01-01T00:20:00Z",
                "2024-01-01T00:30:00Z",
                "2024-01-01T01:10:00Z"
            ]
        );
        // `a/n` runs from a to the field's maximum.
        assert_eq!(
            runs("50/5 * * * *", "2024-01-01T00:00:00Z", 3),
            ["2024-01-01T00:50:00Z", "2024-01-01T00:55:00Z", "2024-01-01T01:50:00Z"]
        );
        assert_eq!(
            runs("0 1,13,22 * * *", "2024-01-01T02:00:00Z", 3),
            ["2024-01-01T13:00:00Z", "2024-01-01T22:00:00Z", "2024-01-02T01:00:00Z"]
        );
        assert_eq!(
            runs("0 0 1-5/2,20 * *", "2024-01-01T00:00:00Z", 4),
            [
                "2024-01-03T00:00:00Z",
                "2024-01-05T00:00:00Z",
                "2024-01-20T00:00:00Z",
                "2024-02-01T00:00:00Z"
            ]
        );
        // A step larger than the range keeps only its start, as in robfig.
        assert_eq!(sched("*/61 * * * *", None), sched("0 * * * *", None));
        // Extra whitespace between fields is fine.
        assert_eq!(sched("  0\t0  * * *  ", None), sched("0 0 * * *", None));
    }

    #[test]
    fn month_and_weekday_names() {
        assert_eq!(
            runs("0 0 1 JAN,jul *", "2024-02-01T00:00:00Z", 3),
            ["2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z", "2025-07-01T00:00:00Z"]
        );
        assert_eq!(sched("0 0 1 jan-Mar *", None), sched("0 0 1 1-3 *", None));
        assert_eq!(sched("0 0 * * Mon-fri", None), sched("0 0 * * 1-5", None));
        assert_eq!(sched("0 0 * * MON/2", None), sched("0 0 * * 1,3,5", None));
        // 2024-05-04 is a Saturday.
        assert_eq!(
            runs("0 0 * * sat,SUN", "2024-05-01T00:00:00Z", 3),
            ["2024-05-04T00:00:00Z", "2024-05-05T00:00:00Z", "2024-05-11T00:00:00Z"]
        );
    }

    #[test]
    fn seven_is_sunday_and_question_mark_is_any() {
        assert_eq!(sched("0 0 * * 7", None), sched("0 0 * * 0", None));
        assert_eq!(sched("0 0 * * 0,7", None), sched("0 0 * * SUN", None));
        assert_eq!(sched("0 0 * * 5-7", None), sched("0 0 * * 0,5,6", None));
        assert_eq!(sched("0 0 * * 1-7/3", None), sched("0 0 * * 1,4,0", None));
        // `*` and `a/n` stop at Saturday (6), as in robfig.
        assert_eq!(sched("0 0 * * */2", None), sched("0 0 * * 0,2,4,6", None));
        assert_eq!(sched("0 0 * * 1/2", None), sched("0 0 * * 1,3,5", None));
        assert_eq!(sched("0 0 * * 4/1", None), sched("0 0 * * 4-6", None));
        assert_eq!(
            runs("0 0 * * 7", "2024-05-01T00:00:00Z", 2),
            ["2024-05-05T00:00:00Z", "2024-05-12T00:00:00Z"]
        );
        assert_eq!(sched("0 0 ? * MON", None), sched("0 0 * * MON", None));
        assert_eq!(sched("0 0 1 * ?", None), sched("0 0 1 * *", None));
    }

    #[test]
    fn macros() {
        let from = "2024-05-05T12:00:00Z"; // a Sunday
        assert_eq!(runs("@yearly", from, 1), ["2025-01-01T00:00:00Z"]);
        assert_eq!(runs("@annually", from, 1), ["2025-01-01T00:00:00Z"]);
        assert_eq!(
            runs("@monthly", from, 2),
            ["2024-06-01T00:00:00Z", "2024-07-01T00:00:00Z"]
        );
        assert_eq!(
            runs("@weekly", from, 2),
            ["2024-05-12T00:00:00Z", "2024-05-19T00:00:00Z"]
        );
        assert_eq!(
            runs("@daily", from, 2),
            ["2024-05-06T00:00:00Z", "2024-05-07T00:00:00Z"]
        );
        assert_eq!(runs("@midnight", from, 1), ["2024-05-06T00:00:00Z"]);
        assert_eq!(
            runs("@hourly", from, 2),
            ["2024-05-05T13:00:00Z", "2024-05-05T14:00:00Z"]
        );
        assert_eq!(sched("@yearly", None), sched("0 0 1 1 *", None));
        assert_eq!(sched("@monthly", None), sched("0 0 1 * *", None));
        assert_eq!(sched("@weekly", None), sched("0 0 * * 0", None));
        assert_eq!(sched("@daily", None), sched("0 0 * * *", None));
        assert_eq!(sched("@hourly", None), sched("0 * * * *", None));
        assert_eq!(
            sched("@daily", Some("Europe/Berlin")),
            sched("0 0 * * *", Some("Europe/Berlin"))
        );
    }

    #[test]
    fn weekdays_skip_the_weekend() {
        // 2024-05-10 is a Friday.
        assert_eq!(
            runs("0 9 * * MON-FRI", "2024-05-10T08:00:00Z", 3),
            ["2024-05-10T09:00:00Z", "2024-05-13T09:00:00Z", "2024-05-14T09:00:00Z"]
        );
    }

    #[test]
    fn both_day_fields_restricted_means_either() {
        // September 2024: Fridays are the 6th, 13th, 20th, 27th; Oct 13 is a Sunday.
        assert_eq!(
            runs("0 0 13 * FRI", "2024-09-01T00:00:00Z", 8),
            [
                "2024-09-06T00:00:00Z",
                "2024-09-13T00:00:00Z",
                "2024-09-20T00:00:00Z",
                "2024-09-27T00:00:00Z",
                "2024-10-04T00:00:00Z",
                "2024-10-11T00:00:00Z",
                "2024-10-13T00:00:00Z",
                "2024-10-18T00:00:00Z"
            ]
        );
        // One restricted field: it alone decides.
        assert_eq!(
            runs("0 0 13 * *", "2024-09-01T00:00:00Z", 2),
            ["2024-09-13T00:00:00Z", "2024-10-13T00:00:00Z"]
        );
        assert_eq!(runs("0 0 13 * ?", "2024-09-14T00:00:00Z", 1), ["2024-10-13T00:00:00Z"]);
        // `*/1` is `*` (robfig's star rule), `*/2` is a restriction.
        assert_eq!(
            runs("0 0 */1 * FRI", "2024-09-01T00:00:00Z", 1),
            ["2024-09-06T00:00:00Z"]
        );
        assert_eq!(
            runs("0 0 */2 * FRI", "2024-09-01T00:00:00Z", 3),
            ["2024-09-03T00:00:00Z", "2024-09-05T00:00:00Z", "2024-09-06T00:00:00Z"]
        );
        // A list containing `*` is unrestricted.
        assert_eq!(
            runs("0 0 1,* * FRI", "2024-09-01T00:00:00Z", 1),
            ["2024-09-06T00:00:00Z"]
        );
    }

    #[test]
    fn month_end_skips_short_months() {
        assert_eq!(
            runs("0 0 31 * *", "2024-01-31T00:00:00Z", 7),
            [
                "2024-03-31T00:00:00Z",
                "2024-05-31T00:00:00Z",
                "2024-07-31T00:00:00Z",
                "2024-08-31T00:00:00Z",
                "2024-10-31T00:00:00Z",
                "2024-12-31T00:00:00Z",
                "2025-01-31T00:00:00Z"
            ]
        );
        assert_eq!(
            runs("0 0 30 * *", "2024-01-30T00:00:00Z", 2),
            ["2024-03-30T00:00:00Z", "2024-04-30T00:00:00Z"]
        );
    }

    #[test]
    fn leap_days() {
        assert_eq!(
            runs("0 0 29 2 *", "2024-03-01T00:00:00Z", 3),
            ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"]
        );
        assert_eq!(runs("0 0 29 2 *", "2024-02-28T23:59:00Z", 1), ["2024-02-29T00:00:00Z"]);
        // 2100 is not a leap year: the next is 2104, beyond the five-year horizon.
        assert_eq!(sched("0 0 29 2 *", None).next_after(ts("2096-03-01T00:00:00Z")), None);
        assert_eq!(runs("0 0 29 2 *", "2099-03-01T00:00:00Z", 1), ["2104-02-29T00:00:00Z"]);
    }

    #[test]
    fn impossible_dates_give_none_quickly() {
        let s = sched("0 0 30 2 *", None);
        let start = std::time::Instant::now();
        for year in 2000..2100 {
            let from = Date::new(year, 6, 1)
                .unwrap()
                .to_zoned(TimeZone::UTC)
                .unwrap()
                .timestamp();
            assert_eq!(s.next_after(from), None);
            assert_eq!(s.latest_due(Timestamp::MIN, from), None);
        }
        // Day-by-day over five years is microseconds; minute-by-minute would be minutes.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(
            sched("0 0 31 4,6,9,11 *", None).next_after(ts("2024-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn next_after_is_strictly_after() {
        let s = sched("0 * * * *", None);
        assert_eq!(
            s.next_after(ts("2024-01-01T10:00:00Z")),
            Some(ts("2024-01-01T11:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2024-01-01T09:59:59.999Z")),
            Some(ts("2024-01-01T10:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2024-01-01T10:00:00.001Z")),
            Some(ts("2024-01-01T11:00:00Z"))
        );
        assert_eq!(s.next_after(Timestamp::MAX), None);
    }

    #[test]
    fn wall_clock_time_in_the_zone() {
        let berlin = Some("Europe/Berlin");
        // 02:00 Berlin is 01:00Z in winter (CET) and 00:00Z in summer (CEST).
        assert_eq!(
            runs_in("0 2 * * *", berlin, "2024-01-10T00:00:00Z", 1),
            ["2024-01-10T01:00:00Z"]
        );
        assert_eq!(
            runs_in("0 2 * * *", berlin, "2024-07-09T12:00:00Z", 1),
            ["2024-07-10T00:00:00Z"]
        );
        // Day and weekday are Berlin's: 23:30Z on a Sunday is Monday in Berlin.
        assert_eq!(
            runs_in("30 0 * * MON", berlin, "2024-05-05T12:00:00Z", 1),
            ["2024-05-05T22:30:00Z"]
        );
        let tokyo = sched("0 9 1 * *", Some("Asia/Tokyo"));
        assert_eq!(
            tokyo.next_after(ts("2024-01-01T00:00:00Z")),
            Some(ts("2024-02-01T00:00:00Z"))
        );
        assert_eq!(
            runs_in("0 0 * * *", Some("UTC"), "2024-01-01T00:00:00Z", 1),
            ["2024-01-02T00:00:00Z"]
        );
    }

    #[test]
    fn berlin_spring_forward_skips_the_missing_hour() {
        // 2024-03-31: 02:00 CET (01:00Z) jumps to 03:00 CEST.
        let berlin = Some("Europe/Berlin");
        assert_eq!(
            runs_in("30 2 * * *", berlin, "2024-03-29T12:00:00Z", 2),
            ["2024-03-30T01:30:00Z", "2024-04-01T00:30:00Z"]
        );
        assert_eq!(
            runs_in("*/30 * * * *", berlin, "2024-03-31T00:00:00Z", 3),
            ["2024-03-31T00:30:00Z", "2024-03-31T01:00:00Z", "2024-03-31T01:30:00Z"]
        );
        assert_eq!(
            runs_in("0 * * * *", berlin, "2024-03-31T00:00:00Z", 2),
            ["2024-03-31T01:00:00Z", "2024-03-31T02:00:00Z"]
        );
    }

    #[test]
    fn berlin_fall_back_runs_the_repeated_hour_once() {
        // 2024-10-27: 03:00 CEST (01:00Z) goes back to 02:00 CET; 02:xx occurs
        // at 00:xxZ and again at 01:xxZ.
        let berlin = Some("Europe/Berlin");
        assert_eq!(
            runs_in("30 2 * * *", berlin, "2024-10-26T12:00:00Z", 2),
            ["2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z"]
        );
        assert_eq!(
            runs_in("0,30 * * * *", berlin, "2024-10-26T23:00:00Z", 5),
            [
                "2024-10-26T23:30:00Z",
                "2024-10-27T00:00:00Z",
                "2024-10-27T00:30:00Z",
                "2024-10-27T02:00:00Z",
                "2024-10-27T02:30:00Z"
            ]
        );
        // From inside the second 02:xx, the repeated wall times are done.
        let s = sched("*/15 * * * *", berlin);
        assert_eq!(
            s.next_after(ts("2024-10-27T01:10:00Z")),
            Some(ts("2024-10-27T02:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2024-10-27T00:50:00Z")),
            Some(ts("2024-10-27T02:00:00Z"))
        );
    }

    #[test]
    fn new_york_dst_days() {
        let ny = Some("America/New_York");
        // 2024-03-10: 02:00 EST (07:00Z) jumps to 03:00 EDT.
        assert_eq!(
            runs_in("30 2 * * *", ny, "2024-03-08T12:00:00Z", 2),
            ["2024-03-09T07:30:00Z", "2024-03-11T06:30:00Z"]
        );
        assert_eq!(
            runs_in("0 2 * * *", ny, "2024-03-09T12:00:00Z", 1),
            ["2024-03-11T06:00:00Z"]
        );
        // 2024-11-03: 02:00 EDT (06:00Z) goes back to 01:00 EST; 01:xx occurs
        // at 05:xxZ (EDT) and 06:xxZ (EST).
        assert_eq!(
            runs_in("30 1 * * *", ny, "2024-11-02T12:00:00Z", 2),
            ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z"]
        );
        assert_eq!(
            runs_in("0 * * * *", ny, "2024-11-03T04:30:00Z", 3),
            ["2024-11-03T05:00:00Z", "2024-11-03T07:00:00Z", "2024-11-03T08:00:00Z"]
        );
    }

    #[test]
    fn latest_due_is_the_most_recent_missed_run() {
        let hourly = sched("0 * * * *", None);
        let due = |since: &str, now: &str| hourly.latest_due(ts(since), ts(now));
        assert_eq!(
            due("2024-01-01T10:00:00Z", "2024-01-01T12:30:00Z"),
            Some(ts("2024-01-01T12:00:00Z"))
        );
        // `since` itself is excluded, `now` included.
        assert_eq!(due("2024-01-01T12:00:00Z", "2024-01-01T12:30:00Z"), None);
        assert_eq!(
            due("2024-01-01T11:59:00Z", "2024-01-01T12:00:00Z"),
            Some(ts("2024-01-01T12:00:00Z"))
        );
        assert_eq!(due("2024-01-01T12:00:01Z", "2024-01-01T12:59:59Z"), None);
        assert_eq!(due("2024-01-01T13:00:00Z", "2024-01-01T12:00:00Z"), None);
        assert_eq!(due("2024-01-01T12:00:00Z", "2024-01-01T12:00:00Z"), None);
        // A long downtime gives one run, not one per missed hour.
        let five = sched("*/5 * * * *", None);
        assert_eq!(
            five.latest_due(ts("2020-01-01T00:00:00Z"), ts("2024-05-05T10:07:00Z")),
            Some(ts("2024-05-05T10:05:00Z"))
        );
        assert_eq!(
            five.latest_due(Timestamp::MIN, ts("2024-05-05T10:07:00Z")),
            Some(ts("2024-05-05T10:05:00Z"))
        );
        let leap = sched("0 0 29 2 *", None);
        assert_eq!(
            leap.latest_due(ts("2021-01-01T00:00:00Z"), ts("2024-05-01T00:00:00Z")),
            Some(ts("2024-02-29T00:00:00Z"))
        );
        assert_eq!(
            leap.latest_due(ts("2024-03-01T00:00:00Z"), ts("2027-05-01T00:00:00Z")),
            None
        );
        let yearly = sched("@yearly", None);
        assert_eq!(
            yearly.latest_due(ts("2000-01-01T00:00:00Z"), ts("2024-06-01T00:00:00Z")),
            Some(ts("2024-01-01T00:00:00Z"))
        );
        let weekdays = sched("0 9 * * MON-FRI", None);
        assert_eq!(
            weekdays.latest_due(ts("2024-05-01T00:00:00Z"), ts("2024-05-12T23:00:00Z")),
            Some(ts("2024-05-10T09:00:00Z"))
        );
    }

    #[test]
    fn latest_due_across_dst() {
        let berlin = Some("Europe/Berlin");
        // The skipped 02:30 on 2024-03-31 was never due.
        let s = sched("30 2 * * *", berlin);
        assert_eq!(
            s.latest_due(ts("2024-03-30T12:00:00Z"), ts("2024-03-31T12:00:00Z")),
            None
        );
        assert_eq!(
            s.latest_due(ts("2024-03-30T00:00:00Z"), ts("2024-03-31T12:00:00Z")),
            Some(ts("2024-03-30T01:30:00Z"))
        );
        // At 02:30 CET (01:30Z, the second pass), the last run was 02:45 CEST
        // (00:45Z), a wall time later than now's.
        let quarter = sched("*/15 * * * *", berlin);
        assert_eq!(
            quarter.latest_due(ts("2024-10-27T00:00:00Z"), ts("2024-10-27T01:30:00Z")),
            Some(ts("2024-10-27T00:45:00Z"))
        );
        assert_eq!(
            quarter.latest_due(ts("2024-10-27T00:45:00Z"), ts("2024-10-27T01:59:00Z")),
            None
        );
        assert_eq!(
            quarter.latest_due(ts("2024-10-27T00:45:00Z"), ts("2024-10-27T02:00:00Z")),
            Some(ts("2024-10-27T02:00:00Z"))
        );
        let ny = sched("30 1 * * *", Some("America/New_York"));
        assert_eq!(
            ny.latest_due(ts("2024-11-02T12:00:00Z"), ts("2024-11-03T06:45:00Z")),
            Some(ts("2024-11-03T05:30:00Z"))
        );
    }

    #[test]
    fn errors_name_the_field_and_the_rule() {
        assert_eq!(err("61 * * * *"), r#"minute field "61": values are 0-59"#);
        assert_eq!(err("0 24 * * *"), r#"hour field "24": values are 0-23"#);
        assert_eq!(err("0 0 0 * *"), r#"day-of-month field "0": values are 1-31"#);
        assert_eq!(err("0 0 32 * *"), r#"day-of-month field "32": values are 1-31"#);
        assert_eq!(err("0 0 * 13 *"), r#"month field "13": values are 1-12"#);
        assert_eq!(err("0 0 * * 8"), r#"day-of-week field "8": values are 0-7"#);
        assert_eq!(err("1,61 * * * *"), r#"minute field "61": values are 0-59"#);
        assert_eq!(err("5-61 * * * *"), r#"minute field "5-61": values are 0-59"#);
        assert_eq!(
            err("99999999999 * * * *"),
            r#"minute field "99999999999": values are 0-59"#
        );
        assert_eq!(
            err("30-10 * * * *"),
            r#"minute field "30-10": a range runs from low to high, and 30 is after 10"#
        );
        assert_eq!(
            err("0 0 * * FRI-MON"),
            r#"day-of-week field "FRI-MON": a range runs from low to high, and 5 is after 1"#
        );
        assert_eq!(err("*/0 * * * *"), r#"minute field "*/0": the step must be at least 1"#);
        assert_eq!(
            err("0 1-5/0 * * *"),
            r#"hour field "1-5/0": the step must be at least 1"#
        );
        assert_eq!(
            err("*/x * * * *"),
            r#"minute field "*/x": the step "x" is not a number"#
        );
        assert_eq!(err("*/ * * * *"), r#"minute field "*/": the step "" is not a number"#);
        assert_eq!(
            err("1/2/3 * * * *"),
            r#"minute field "1/2/3": at most one / (a step) is allowed"#
        );
        assert_eq!(err("1-2-3 * * * *"), r#"minute field "1-2-3": a range has one - (a-b)"#);
        assert_eq!(
            err("*-5 * * * *"),
            r#"minute field "*-5": "*" is not a number; values are 0-59"#
        );
        assert_eq!(err("1, * * * *"), r#"minute field "1,": a list item is empty"#);
        assert_eq!(err("1,,2 * * * *"), r#"minute field "1,,2": a list item is empty"#);
        assert_eq!(
            err("1- * * * *"),
            r#"minute field "1-": a value is missing; values are 0-59"#
        );
        assert_eq!(
            err("x * * * *"),
            r#"minute field "x": "x" is not a number; values are 0-59"#
        );
        assert_eq!(
            err("-1 * * * *"),
            r#"minute field "-1": a value is missing; values are 0-59"#
        );
        assert_eq!(
            err("+1 * * * *"),
            r#"minute field "+1": "+1" is not a number; values are 0-59"#
        );
        assert_eq!(
            err("? * * * *"),
            r#"minute field "?": ? is allowed only in day-of-month and day-of-week"#
        );
        assert_eq!(
            err("0 0 1 JANUARY *"),
            r#"month field "JANUARY": "JANUARY" is not a number or a name; values are 1-12 or JAN-DEC"#
        );
        assert_eq!(
            err("0 0 * * MON-FUN"),
            r#"day-of-week field "MON-FUN": "FUN" is not a number or a name; values are 0-7 or SUN-SAT"#
        );
        assert_eq!(
            err("0 0 * JAN MON,JAN"),
            r#"day-of-week field "JAN": "JAN" is not a number or a name; values are 0-7 or SUN-SAT"#
        );
    }

    #[test]
    fn errors_for_the_whole_expression() {
        assert_eq!(err(""), ScheduleError::Empty.to_string());
        assert_eq!(err("   "), ScheduleError::Empty.to_string());
        assert_eq!(
            err("0 0 * * * *"),
            r#"schedule "0 0 * * * *" has 6 fields; expected 5 (minute hour day-of-month month day-of-week), seconds and years are not supported"#
        );
        assert_eq!(
            err("0 0 * *"),
            r#"schedule "0 0 * *" has 4 fields; expected 5 (minute hour day-of-month month day-of-week)"#
        );
        assert_eq!(
            Schedule::parse("@every 1h", None),
            Err(ScheduleError::Every("@every 1h".into()))
        );
        assert!(
            err("@every 1h").contains("@every is not supported"),
            "{}",
            err("@every 1h")
        );
        assert_eq!(
            Schedule::parse("@fortnightly", None),
            Err(ScheduleError::UnknownMacro("@fortnightly".into()))
        );
        // Macros are case-sensitive, as in robfig.
        assert_eq!(
            Schedule::parse("@Daily", None),
            Err(ScheduleError::UnknownMacro("@Daily".into()))
        );
        assert_eq!(
            Schedule::parse("@daily 5", None),
            Err(ScheduleError::UnknownMacro("@daily 5".into()))
        );
        for expr in ["CRON_TZ=Europe/Berlin 0 * * * *", "TZ=UTC 0 * * * *", "TZ=UTC @daily"] {
            assert_eq!(
                Schedule::parse(expr, None),
                Err(ScheduleError::TimeZoneInSchedule(expr.into()))
            );
            assert!(err(expr).ends_with("use timeZone instead"), "{}", err(expr));
        }
    }

    #[test]
    fn time_zone_errors() {
        let e = Schedule::parse("0 * * * *", Some("Europe/Pariss")).unwrap_err();
        assert!(matches!(&e, ScheduleError::UnknownTimeZone { name, .. } if name == "Europe/Pariss"));
        assert!(
            e.to_string()
                .starts_with(r#"timeZone "Europe/Pariss" is not a known IANA time zone"#),
            "{e}"
        );
        assert_eq!(
            Schedule::parse("0 * * * *", Some("")),
            Err(ScheduleError::InvalidTimeZone(String::new()))
        );
        assert_eq!(
            Schedule::parse("0 * * * *", Some("Local")),
            Err(ScheduleError::InvalidTimeZone("Local".into()))
        );
        // The schedule is checked first when both are wrong.
        assert!(matches!(
            Schedule::parse("", Some("Nowhere/Else")),
            Err(ScheduleError::Empty)
        ));
    }

    /// xorshift64*: a seeded generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u32) -> u32 {
            (self.next_u64() % u64::from(n)) as u32
        }

        fn between(&mut self, lo: u32, hi: u32) -> u32 {
            lo + self.below(hi - lo + 1)
        }
    }

    /// A random field and the values it means, computed independently of
    /// the parser: (text, values, unrestricted).
    fn random_field(rng: &mut Rng, min: u32, max: u32, names: &[&str], any_bias: u32) -> (String, Vec<u32>, bool) {
        if rng.below(100) < any_bias {
            return ("*".into(), (min..=max).collect(), true);
        }
        let literal_max = if names.len() == 7 { 7 } else { max };
        let name = |rng: &mut Rng, v: u32| -> String {
            if !names.is_empty() && v <= max && rng.below(3) == 0 {
                let n = names[(v - min) as usize];
                if rng.below(2) == 0 {
                    n.to_ascii_uppercase()
                } else {
                    n.to_string()
                }
            } else {
                v.to_string()
            }
        };
        let mut items = Vec::new();
        let mut values = Vec::new();
        let mut any = false;
        for _ in 0..rng.between(1, 3) {
            let (text, start, end, step) = match rng.below(6) {
                0 => {
                    let v = rng.between(min, literal_max);
                    (name(rng, v), v, v, 1)
                }
                1 => {
                    let a = rng.between(min, literal_max);
                    let b = rng.between(a, literal_max);
                    (format!("{}-{}", name(rng, a), name(rng, b)), a, b, 1)
                }
                2 => {
                    let a = rng.between(min, literal_max);
                    let b = rng.between(a, literal_max);
                    let n = rng.between(1, max - min + 2);
                    (format!("{}-{}/{n}", name(rng, a), name(rng, b)), a, b, n)
                }
                3 => {
                    let n = rng.between(1, max - min + 2);
                    let a = rng.between(min, max);
                    (format!("{}/{n}", name(rng, a)), a, max, n)
                }
                4 => {
                    let n = rng.between(1, max - min + 2);
                    any |= n == 1;
                    (format!("*/{n}"), min, max, n)
                }
                _ => {
                    let v = rng.between(min, max);
                    (name(rng, v), v, v, 1)
                }
            };
            items.push(text);
            let mut v = start;
            while v <= end {
                values.push(if v == 7 && names.len() == 7 { 0 } else { v });
                v += step;
            }
        }
        (items.join(","), values, any)
    }

    struct Expected {
        minutes: Vec<u32>,
        hours: Vec<u32>,
        doms: Vec<u32>,
        months: Vec<u32>,
        dows: Vec<u32>,
        any_dom: bool,
        any_dow: bool,
    }

    impl Expected {
        fn matches(&self, dt: DateTime) -> bool {
            let has = |set: &[u32], v: i8| set.contains(&(v as u32));
            let dom = has(&self.doms, dt.day());
            let dow = has(&self.dows, dt.weekday().to_sunday_zero_offset());
            let day = if self.any_dom || self.any_dow {
                dom && dow
            } else {
                dom || dow
            };
            has(&self.minutes, dt.minute()) && has(&self.hours, dt.hour()) && has(&self.months, dt.month()) && day
        }
    }

    fn random_schedule(rng: &mut Rng) -> (String, Expected) {
        let (m, minutes, _) = random_field(rng, 0, 59, &[], 20);
        let (h, hours, _) = random_field(rng, 0, 23, &[], 40);
        let (d, doms, any_dom) = random_field(rng, 1, 31, &[], 60);
        let (mo, months, _) = random_field(rng, 1, 12, MONTH.names, 80);
        let (w, dows, any_dow) = random_field(rng, 0, 6, DAY_OF_WEEK.names, 60);
        let expected = Expected {
            minutes,
            hours,
            doms,
            months,
            dows,
            any_dom,
            any_dow,
        };
        (format!("{m} {h} {d} {mo} {w}"), expected)
    }

    /// Minute by minute over (after, after + 2 days]: the first instant whose
    /// wall time matches and is that wall time's first occurrence.
    fn brute_force(expected: &Expected, tz: &TimeZone, after: Timestamp) -> Option<Timestamp> {
        let secs = after.as_second();
        let mut minute = secs.div_euclid(60) * 60 + 60;
        while minute <= secs + 2 * 86_400 {
            let t = Timestamp::from_second(minute).unwrap();
            let wall = tz.to_datetime(t);
            if expected.matches(wall) {
                let first = match tz.to_ambiguous_timestamp(wall).offset() {
                    AmbiguousOffset::Fold { before, .. } => before.to_timestamp(wall).unwrap(),
                    _ => t,
                };
                if first == t {
                    return Some(t);
                }
            }
            minute += 60;
        }
        None
    }

    fn check_against_brute_force(rng: &mut Rng, tz_name: Option<&str>, after: Timestamp) {
        let (expr, expected) = random_schedule(rng);
        let s = sched(&expr, tz_name);
        let tz = tz_name.map_or(TimeZone::UTC, |n| TimeZone::get(n).unwrap());
        let horizon = after + SignedDuration::from_hours(48);
        let want = brute_force(&expected, &tz, after);
        let got = s.next_after(after);
        assert_eq!(
            got.filter(|t| *t <= horizon),
            want,
            "{expr:?} in {tz_name:?} after {after}"
        );
        // latest_due agrees: the next run is the latest due at that instant,
        // and nothing is due just before it.
        if let Some(next) = got {
            assert_eq!(
                s.latest_due(after, next),
                Some(next),
                "{expr:?} in {tz_name:?} after {after}"
            );
            let just_before = next - SignedDuration::from_secs(1);
            assert_eq!(
                s.latest_due(after, just_before),
                None,
                "{expr:?} in {tz_name:?} after {after}"
            );
        }
    }

    #[test]
    fn random_expressions_match_a_brute_force_search_in_utc() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (lo, hi) = (
            ts("2000-01-01T00:00:00Z").as_second(),
            ts("2040-01-01T00:00:00Z").as_second(),
        );
        for _ in 0..300 {
            let secs = lo + (rng.next_u64() % (hi - lo) as u64) as i64;
            // Often exactly on a minute, to exercise "strictly after".
            let secs = if rng.below(2) == 0 { secs - secs % 60 } else { secs };
            check_against_brute_force(&mut rng, None, Timestamp::from_second(secs).unwrap());
        }
    }

    #[test]
    fn random_expressions_match_a_brute_force_search_around_dst() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        // The days before each zone's 2024 transitions.
        let cases = [
            ("Europe/Berlin", "2024-03-30T12:00:00Z"),
            ("Europe/Berlin", "2024-10-26T12:00:00Z"),
            ("America/New_York", "2024-03-09T12:00:00Z"),
            ("America/New_York", "2024-11-02T12:00:00Z"),
        ];
        for (zone, day) in cases {
            for _ in 0..40 {
                let offset = SignedDuration::from_secs(rng.below(36 * 3600) as i64);
                check_against_brute_force(&mut rng, Some(zone), ts(day) + offset);
            }
        }
    }
}
