//! Working days: a pure function from a start instant, a number of working
//! days and a calendar to a deadline. Weekends are days off unless listed
//! as make-up working days; listed holidays are days off. Days are counted
//! in the operator's time zone (default Asia/Shanghai), so "3 working
//! days" means what people there mean by it.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

/// Which days are working days.
#[derive(Debug, Clone)]
pub struct WorkingCalendar {
    timezone: Tz,
    holidays: BTreeSet<NaiveDate>,
    workdays: BTreeSet<NaiveDate>,
}

impl WorkingCalendar {
    /// A calendar in `timezone` with holidays and make-up working days.
    pub fn new(timezone: Tz, holidays: &[NaiveDate], workdays: &[NaiveDate]) -> Self {
        Self {
            timezone,
            holidays: holidays.iter().copied().collect(),
            workdays: workdays.iter().copied().collect(),
        }
    }

    /// Whether people work on `date`.
    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        if self.holidays.contains(&date) {
            return false;
        }
        if self.workdays.contains(&date) {
            return true;
        }
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// `start` plus `days` working days: the same local time of day on the
    /// `days`-th working day after the start's local date. Zero days is
    /// `start` itself.
    pub fn add_working_days(&self, start: DateTime<Utc>, days: u32) -> DateTime<Utc> {
        if days == 0 {
            return start;
        }
        let local = start.with_timezone(&self.timezone);
        let mut date = local.date_naive();
        let mut counted = 0;
        while counted < days {
            date = match date.checked_add_days(Days::new(1)) {
                Some(next) => next,
                None => return DateTime::<Utc>::MAX_UTC,
            };
            if self.is_working_day(date) {
                counted += 1;
            }
        }
        let naive = date.and_time(local.time());
        // A local time skipped by a DST change takes the next valid instant;
        // a repeated one takes the later instant, never an earlier deadline.
        match self.timezone.from_local_datetime(&naive) {
            chrono::LocalResult::Single(at) => at.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(_, later) => later.with_timezone(&Utc),
            chrono::LocalResult::None => {
                let shifted = naive + chrono::Duration::hours(1);
                self.timezone
                    .from_local_datetime(&shifted)
                    .earliest()
                    .map_or(start + chrono::Duration::days(i64::from(days) * 3), |at| {
                        at.with_timezone(&Utc)
                    })
            }
        }
    }

    /// How many working days lie after `start`'s local date up to and
    /// including `end`'s local date.
    pub fn working_days_between(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> u32 {
        let mut date = start.with_timezone(&self.timezone).date_naive();
        let last = end.with_timezone(&self.timezone).date_naive();
        let mut count = 0;
        while date < last {
            let Some(next) = date.checked_add_days(Days::new(1)) else {
                break;
            };
            date = next;
            if self.is_working_day(date) {
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai(holidays: &[NaiveDate], workdays: &[NaiveDate]) -> WorkingCalendar {
        WorkingCalendar::new(chrono_tz::Asia::Shanghai, holidays, workdays)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn weekends_are_skipped() {
        let calendar = shanghai(&[], &[]);
        // Friday 15:00 in Beijing + 3 working days = Wednesday 15:00.
        let friday = at("2026-11-27T15:00:00+08:00");
        assert_eq!(
            calendar.add_working_days(friday, 3),
            at("2026-12-02T15:00:00+08:00")
        );
        // Saturday counts from Monday.
        let saturday = at("2026-11-28T09:00:00+08:00");
        assert_eq!(
            calendar.add_working_days(saturday, 1),
            at("2026-11-30T09:00:00+08:00")
        );
        assert_eq!(calendar.add_working_days(friday, 0), friday);
    }

    #[test]
    fn days_are_counted_in_the_configured_zone() {
        let calendar = shanghai(&[], &[]);
        // Friday 20:00 UTC is already Saturday 04:00 in Beijing.
        let start = at("2026-11-27T20:00:00Z");
        assert_eq!(
            calendar.add_working_days(start, 1),
            at("2026-11-30T04:00:00+08:00")
        );
    }

    #[test]
    fn the_2026_national_day_arrangement_is_honoured() {
        let calendar = shanghai(
            &(1..=7).map(|d| date(2026, 10, d)).collect::<Vec<_>>(),
            &[date(2026, 9, 20), date(2026, 10, 10)],
        );
        // Confirmed Wednesday 30 September: 1–7 October are off, Thursday 8
        // and Friday 9 count, and Saturday 10 is a make-up working day.
        let start = at("2026-09-30T10:00:00+08:00");
        assert_eq!(
            calendar.add_working_days(start, 3),
            at("2026-10-10T10:00:00+08:00")
        );
        // Saturday 19 September + 1 = Sunday 20 (make-up day).
        let start = at("2026-09-19T10:00:00+08:00");
        assert_eq!(
            calendar.add_working_days(start, 1),
            at("2026-09-20T10:00:00+08:00")
        );
    }

    /// Properties checked over every start day of two years, several times
    /// of day and 0–10 working days, with holidays and make-up days mixed in.
    #[test]
    fn deadline_properties_hold_everywhere() {
        let holidays: Vec<NaiveDate> =
            [(1, 1), (2, 16), (2, 17), (5, 1), (10, 1), (10, 2), (10, 5)]
                .iter()
                .map(|(m, d)| date(2026, *m, *d))
                .collect();
        let workdays = vec![date(2026, 2, 14), date(2026, 9, 20), date(2026, 10, 10)];
        let calendar = shanghai(&holidays, &workdays);
        let mut day = date(2025, 12, 1);
        while day < date(2027, 2, 1) {
            for hour in [0, 9, 23] {
                let start = chrono_tz::Asia::Shanghai
                    .from_local_datetime(&day.and_hms_opt(hour, 30, 0).unwrap())
                    .single()
                    .unwrap()
                    .with_timezone(&Utc);
                let mut previous = start;
                for n in 0..=10u32 {
                    let deadline = calendar.add_working_days(start, n);
                    // Never earlier than the start, and later for more days.
                    assert!(deadline >= start);
                    if n > 0 {
                        assert!(deadline > previous, "monotonic at {start} + {n}");
                        let local = deadline.with_timezone(&chrono_tz::Asia::Shanghai);
                        // Lands on a working day, at the same local time.
                        assert!(calendar.is_working_day(local.date_naive()));
                        assert_eq!(
                            local.time(),
                            start.with_timezone(&chrono_tz::Asia::Shanghai).time()
                        );
                        // Exactly n working days lie in between.
                        assert_eq!(calendar.working_days_between(start, deadline), n);
                        // At least n calendar days later.
                        assert!(deadline - start >= chrono::Duration::days(i64::from(n)));
                    }
                    previous = deadline;
                }
            }
            day = day.succ_opt().unwrap();
        }
    }
}
