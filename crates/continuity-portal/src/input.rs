//! What a form or a JSON body asks for, checked into a [`PortalAction`].

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use continuity_core::{
    portal::{PortalAction, Until},
    time_zone::{Repeated, TimeZone},
};
use serde::Deserialize;

/// Longest duration accepted from a form, in minutes (366 days); the
/// tenant's limits are usually far lower and checked by core.
pub(crate) const MAX_MINUTES: u64 = 366 * 24 * 60;

/// The actions, as named in paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Start,
    Extend,
    End,
    Schedule,
    Cancel,
    Suspend,
    Lift,
}

impl Kind {
    pub(crate) const ALL: [Kind; 7] = [
        Kind::Start,
        Kind::Extend,
        Kind::End,
        Kind::Schedule,
        Kind::Cancel,
        Kind::Suspend,
        Kind::Lift,
    ];

    pub(crate) fn parse(path: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.path() == path)
    }

    pub(crate) fn path(self) -> &'static str {
        match self {
            Kind::Start => "start",
            Kind::Extend => "extend",
            Kind::End => "end",
            Kind::Schedule => "schedule",
            Kind::Cancel => "cancel",
            Kind::Suspend => "suspend",
            Kind::Lift => "lift",
        }
    }

    pub(crate) fn title(self) -> &'static str {
        match self {
            Kind::Start => "Start a continuity event",
            Kind::Extend => "Extend the continuity event",
            Kind::End => "End the continuity event",
            Kind::Schedule => "Schedule a continuity event",
            Kind::Cancel => "Cancel the scheduled event",
            Kind::Suspend => "Suspend notifications",
            Kind::Lift => "Lift the suspension",
        }
    }

    pub(crate) fn done(self) -> &'static str {
        match self {
            Kind::Start => "The continuity event is running.",
            Kind::Extend => "The continuity event was extended.",
            Kind::End => "The continuity event was ended.",
            Kind::Schedule => "The continuity event is scheduled.",
            Kind::Cancel => "The scheduled event was cancelled.",
            Kind::Suspend => "Notifications are suspended.",
            Kind::Lift => "Notifications are back on.",
        }
    }

    /// Whether the form asks for a duration (or an end time).
    pub(crate) fn takes_duration(self) -> bool {
        matches!(
            self,
            Kind::Start | Kind::Extend | Kind::Schedule | Kind::Suspend
        )
    }
}

/// A form as posted: every field a string, checked here.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct FormInput {
    pub(crate) csrf: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) minutes: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) start: Option<String>,
}

/// A JSON action body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiInput {
    pub(crate) csrf: String,
    pub(crate) version: Option<u64>,
    pub(crate) minutes: Option<u64>,
    pub(crate) until: Option<DateTime<Utc>>,
    pub(crate) start: Option<DateTime<Utc>>,
}

/// The checked fields, from either.
#[derive(Debug, Default)]
pub(crate) struct Input {
    pub(crate) version: Option<u64>,
    pub(crate) minutes: Option<u64>,
    pub(crate) until: Option<DateTime<Utc>>,
    pub(crate) start: Option<DateTime<Utc>>,
}

fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A time as a `datetime-local` field sends it (a wall-clock time, read in
/// the tenant's zone; of a time the clocks pass twice, `repeated` says
/// which) or RFC 3339 (which carries its own offset).
fn time(field: &str, s: &str, zone: TimeZone, repeated: Repeated) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .ok_or_else(|| {
            format!("{field}: not a date and time (e.g. 2026-03-02T14:30, in {zone})")
        })?;
    zone.to_utc(local, repeated)
        .map_err(|e| format!("{field}: {e}"))
}

impl FormInput {
    /// The fields checked, the times read in `zone` (the tenant's).
    pub(crate) fn check(&self, zone: TimeZone) -> Result<Input, String> {
        let version = present(&self.version)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| "version: not a version number".to_owned())
            })
            .transpose()?;
        let minutes = present(&self.minutes)
            .map(|m| {
                m.parse::<u64>().map_err(|_| {
                    format!(
                        "the duration must be a whole number of minutes from 1 to {MAX_MINUTES}"
                    )
                })
            })
            .transpose()?;
        let until = present(&self.until)
            .map(|s| time("until", s, zone, Repeated::Later))
            .transpose()?;
        let start = present(&self.start)
            .map(|s| time("start", s, zone, Repeated::Earlier))
            .transpose()?;
        Ok(Input {
            version,
            minutes,
            until,
            start,
        })
    }
}

impl From<&ApiInput> for Input {
    fn from(a: &ApiInput) -> Self {
        Input {
            version: a.version,
            minutes: a.minutes,
            until: a.until,
            start: a.start,
        }
    }
}

/// The portal action for `kind` with `input`, or what is missing or wrong.
pub(crate) fn action(kind: Kind, input: &Input) -> Result<PortalAction, String> {
    let until = || -> Result<Until, String> {
        if let Some(t) = input.until {
            return Ok(Until::At(t));
        }
        match input.minutes {
            None => Err("choose a duration or an end time".to_owned()),
            Some(m) if m == 0 || m > MAX_MINUTES => Err(format!(
                "the duration must be a whole number of minutes from 1 to {MAX_MINUTES}"
            )),
            Some(m) => Ok(Until::For(Duration::from_secs(m * 60))),
        }
    };
    Ok(match kind {
        Kind::Start => PortalAction::StartEvent(until()?),
        Kind::Extend => PortalAction::ExtendEvent(until()?),
        Kind::End => PortalAction::EndEvent,
        Kind::Schedule => PortalAction::ScheduleEvent {
            start: input
                .start
                .ok_or_else(|| "start: when should the event start?".to_owned())?,
            end: until()?,
        },
        Kind::Cancel => PortalAction::CancelScheduledEvent,
        Kind::Suspend => PortalAction::Suspend(until()?),
        Kind::Lift => PortalAction::LiftSuspension,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(minutes: &str) -> FormInput {
        FormInput {
            minutes: Some(minutes.into()),
            ..FormInput::default()
        }
    }

    #[test]
    fn durations_are_checked() {
        for bad in ["-5", "abc", "1.5", "99999999999999999999999", "0", "527041"] {
            let checked = form(bad)
                .check(TimeZone::UTC)
                .and_then(|i| action(Kind::Start, &i));
            assert!(checked.is_err(), "{bad} accepted");
        }
        let i = form("240").check(TimeZone::UTC).unwrap();
        assert_eq!(
            action(Kind::Suspend, &i).unwrap(),
            PortalAction::Suspend(Until::For(Duration::from_secs(4 * 3600)))
        );
        assert!(action(Kind::Start, &Input::default()).is_err());
        assert!(action(Kind::Schedule, &form("60").check(TimeZone::UTC).unwrap()).is_err());
    }

    #[test]
    fn wall_clock_times_are_read_in_the_tenants_zone() {
        let f = FormInput {
            until: Some("2026-03-02T14:30".into()),
            start: Some("2026-03-02T12:00:00Z".into()),
            ..FormInput::default()
        };
        let i = f.check(TimeZone::UTC).unwrap();
        assert_eq!(i.until.unwrap().to_rfc3339(), "2026-03-02T14:30:00+00:00");
        assert_eq!(i.start.unwrap().to_rfc3339(), "2026-03-02T12:00:00+00:00");
        // In Berlin (UTC+1 in March) the same wall-clock time is an hour
        // earlier; a time with its own offset means what it says.
        let berlin: TimeZone = "Europe/Berlin".parse().unwrap();
        let i = f.check(berlin).unwrap();
        assert_eq!(i.until.unwrap().to_rfc3339(), "2026-03-02T13:30:00+00:00");
        assert_eq!(i.start.unwrap().to_rfc3339(), "2026-03-02T12:00:00+00:00");
        // Of a time the clocks pass twice, a start is the first and an end
        // the second: nothing asked for is cut short.
        let repeated = FormInput {
            start: Some("2026-10-25T02:30".into()),
            until: Some("2026-10-25T02:30".into()),
            ..FormInput::default()
        };
        let i = repeated.check(berlin).unwrap();
        assert_eq!(i.start.unwrap().to_rfc3339(), "2026-10-25T00:30:00+00:00");
        assert_eq!(i.until.unwrap().to_rfc3339(), "2026-10-25T01:30:00+00:00");
        // A time the clocks skip names no instant: refused, saying why.
        let skipped = FormInput {
            until: Some("2026-03-29T02:30".into()),
            ..FormInput::default()
        };
        let e = skipped.check(berlin).unwrap_err();
        assert!(
            e.starts_with("until: 2026-03-29 02:30 does not exist in Europe/Berlin"),
            "{e}"
        );
        let bad = FormInput {
            until: Some("tomorrow".into()),
            ..FormInput::default()
        };
        let e = bad.check(berlin).unwrap_err();
        assert!(e.contains("in Europe/Berlin"), "{e}");
    }
}
