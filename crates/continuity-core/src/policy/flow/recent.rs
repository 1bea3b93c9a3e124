//! The recent minutes of one direction: per minute, the samples, the
//! failures and the deliveries slower than the baseline calls normal. The
//! evidence is read from here a minute at a time, newest first, so that
//! every span from one minute to the policy's whole span is looked at.

/// Minutes kept: the longest span a flow policy looks at.
pub(super) const MINUTES: usize = 32;

/// One minute's counts (saturating at 65,535 each).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Minute {
    pub(super) deliveries: u16,
    pub(super) failures: u16,
    pub(super) slow: u16,
}

/// Before any minute is recorded.
const NONE: i64 = i64::MIN;

/// A ring of the newest [`MINUTES`] minutes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub(super) struct Recent {
    /// The newest minute recorded (since the Unix epoch), or [`NONE`].
    newest: i64,
    /// Bit `slot`: the baseline learned that minute at a reduced share (the
    /// flow was unusual when its first observation came).
    reduced: u32,
    /// Bit `slot`: the baseline does not hold that minute (it was restored
    /// from a snapshot taken elsewhere, after the minute was counted).
    unlearned: u32,
    minutes: [Minute; MINUTES],
}
const _: () = assert!(MINUTES <= u32::BITS as usize);

fn slot(minute: i64) -> usize {
    minute.rem_euclid(MINUTES as i64) as usize
}

impl Recent {
    pub(super) fn new() -> Self {
        Recent {
            minutes: [Minute::default(); MINUTES],
            reduced: 0,
            unlearned: 0,
            newest: NONE,
        }
    }

    /// The counts of `minute`, moving the ring forward to it if it is the
    /// newest yet; `None` if it is older than the ring.
    fn at(&mut self, minute: i64) -> Option<usize> {
        let newest = self.newest;
        if newest == NONE || minute > newest {
            let gap = if newest == NONE {
                i64::MAX
            } else {
                minute.saturating_sub(newest)
            };
            if gap >= MINUTES as i64 {
                self.minutes = [Minute::default(); MINUTES];
                self.reduced = 0;
                self.unlearned = 0;
            } else {
                for m in newest + 1..=minute {
                    self.minutes[slot(m)] = Minute::default();
                    self.reduced &= !(1 << slot(m));
                    self.unlearned &= !(1 << slot(m));
                }
            }
            self.newest = minute;
        } else if minute <= newest.saturating_sub(MINUTES as i64) {
            return None;
        }
        Some(slot(minute))
    }

    /// Counts a delivery (slow or not) or a failure at `minute`, which the
    /// baseline learned at a `reduced` share or not; one older than the
    /// ring is left out (the baseline has learned it).
    pub(super) fn count(&mut self, minute: i64, failed: bool, slow: bool, reduced: bool) {
        let Some(at) = self.at(minute) else {
            return;
        };
        let m = &mut self.minutes[at];
        if m.deliveries == 0 && m.failures == 0 {
            self.reduced = (self.reduced & !(1 << at)) | (u32::from(reduced) << at);
            self.unlearned &= !(1 << at);
        }
        if failed {
            m.failures = m.failures.saturating_add(1);
        } else {
            m.deliveries = m.deliveries.saturating_add(1);
            if slow {
                m.slow = m.slow.saturating_add(1);
            }
        }
    }

    /// The minutes the ring holds, newest first, with the counts the
    /// baseline learned of them (none for a minute counted before the
    /// baseline was restored) and whether it learned them at a reduced share.
    pub(super) fn held(&self) -> impl Iterator<Item = (i64, Minute, bool)> + '_ {
        let newest = self.newest;
        (0..MINUTES as i64)
            .take_while(move |_| newest != NONE)
            .map(move |back| {
                let m = newest - back;
                let s = slot(m);
                let learned = if self.unlearned & (1 << s) == 0 {
                    self.minutes[s]
                } else {
                    Minute::default()
                };
                (m, learned, self.reduced & (1 << s) != 0)
            })
    }

    /// The baseline was replaced by a restored one, which never learned the
    /// minutes counted so far: they stay evidence, but are no longer left
    /// out of it.
    pub(super) fn unlearn(&mut self) {
        self.unlearned = u32::MAX;
    }

    /// The counts of `minute` if the ring still holds it (zero otherwise,
    /// and for minutes not seen yet).
    pub(super) fn get(&self, minute: i64) -> Minute {
        let newest = self.newest;
        if newest != NONE && minute <= newest && minute > newest.saturating_sub(MINUTES as i64) {
            self.minutes[slot(minute)]
        } else {
            Minute::default()
        }
    }
}
