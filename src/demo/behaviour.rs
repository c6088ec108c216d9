//! What each demo upstream does over time: a repeating schedule of modes, pure arithmetic on the
//! time elapsed since the demo started.

use std::fmt;
use std::time::Duration;

/// What a demo upstream does at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Answers 200 at once.
    Healthy,
    /// Answers 500 at once.
    Failing,
    /// Answers 200 after this long.
    Slow(Duration),
    /// Nothing listens: connections are refused, open ones are dropped.
    Refusing,
}

impl Mode {
    /// Whether the port accepts connections in this mode.
    pub fn listens(self) -> bool {
        self != Mode::Refusing
    }
}

/// How a demo upstream misbehaves, chosen by the upstream's name ([`Behaviour::for_name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Behaviour {
    /// Answers every request at once with a small JSON body.
    Healthy,
    /// Healthy for `up`, then answers 500 for `failing`, repeating.
    Flapping {
        /// How long each healthy spell lasts.
        up: Duration,
        /// How long each spell of 500s lasts.
        failing: Duration,
    },
    /// Fast for `fast`, then answers only after `delay` for `slow`, repeating.
    Slow {
        /// How long a slow answer takes (twice the upstream's call timeout, so it times out).
        delay: Duration,
        /// How long each fast spell lasts.
        fast: Duration,
        /// How long each slow spell lasts.
        slow: Duration,
    },
    /// Healthy for `up`, then refuses connections for `down`, repeating.
    Intermittent {
        /// How long each healthy spell lasts.
        up: Duration,
        /// How long nothing listens.
        down: Duration,
    },
    /// Refuses connections for `down`, then healthy for `up`, repeating.
    Recovering {
        /// How long nothing listens.
        down: Duration,
        /// How long each healthy spell lasts.
        up: Duration,
    },
    /// Nothing ever listens.
    Down,
    /// For names without a preset: healthy, 500s, slow (answers after `delay`), refused; each
    /// for `phase`, repeating.
    Cycle {
        /// How long each of the four phases lasts.
        phase: Duration,
        /// How long a slow answer takes.
        delay: Duration,
    },
}

impl Behaviour {
    /// The behaviour of the seed preset `name`, or the default [`Behaviour::Cycle`]; slow answers
    /// take twice `call_timeout`, so the gateway times them out.
    pub fn for_name(name: &str, call_timeout: Duration) -> Behaviour {
        let secs = Duration::from_secs;
        let delay = call_timeout.saturating_mul(2);
        match name {
            "plex" => Behaviour::Healthy,
            "overseerr" => Behaviour::Flapping {
                up: secs(20),
                failing: secs(15),
            },
            "uptime-kuma" => Behaviour::Slow {
                delay,
                fast: secs(25),
                slow: secs(15),
            },
            "tmdb" => Behaviour::Intermittent {
                up: secs(15),
                down: secs(25),
            },
            "hdbits" => Behaviour::Down,
            "qbittorrent" => Behaviour::Recovering {
                down: secs(20),
                up: secs(30),
            },
            _ => Behaviour::Cycle {
                phase: secs(10),
                delay,
            },
        }
    }

    /// One line for people: what the upstream does and when.
    pub fn describe(&self) -> String {
        let d = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            Behaviour::Healthy => "healthy: answers every request at once".to_owned(),
            Behaviour::Flapping { up, failing } => format!(
                "flapping: healthy for {}, then 500s for {}, repeating",
                d(up),
                d(failing)
            ),
            Behaviour::Slow { delay, fast, slow } => format!(
                "slow: fast for {}, then answers only after {} for {}, repeating",
                d(fast),
                d(delay),
                d(slow)
            ),
            Behaviour::Intermittent { up, down } => format!(
                "intermittent: healthy for {}, then down for {} (connection refused), repeating",
                d(up),
                d(down)
            ),
            Behaviour::Recovering { down, up } => format!(
                "recovering: down for {} (connection refused), then healthy for {}, repeating",
                d(down),
                d(up)
            ),
            Behaviour::Down => "down: nothing listens".to_owned(),
            Behaviour::Cycle { phase, delay } => format!(
                "cycle: healthy, 500s, slow ({}), connection refused; {} each, repeating",
                d(delay),
                d(phase)
            ),
        }
    }

    /// The repeating schedule: each mode with how long it lasts. One entry means "always".
    fn schedule(&self) -> Vec<(Mode, Duration)> {
        match *self {
            Behaviour::Healthy => vec![(Mode::Healthy, Duration::MAX)],
            Behaviour::Flapping { up, failing } => {
                vec![(Mode::Healthy, up), (Mode::Failing, failing)]
            }
            Behaviour::Slow { delay, fast, slow } => {
                vec![(Mode::Healthy, fast), (Mode::Slow(delay), slow)]
            }
            Behaviour::Intermittent { up, down } => {
                vec![(Mode::Healthy, up), (Mode::Refusing, down)]
            }
            Behaviour::Recovering { down, up } => {
                vec![(Mode::Refusing, down), (Mode::Healthy, up)]
            }
            Behaviour::Down => vec![(Mode::Refusing, Duration::MAX)],
            Behaviour::Cycle { phase, delay } => vec![
                (Mode::Healthy, phase),
                (Mode::Failing, phase),
                (Mode::Slow(delay), phase),
                (Mode::Refusing, phase),
            ],
        }
    }

    /// The mode at `elapsed` since the demo started, and how long that mode still lasts
    /// (`None`: forever).
    fn locate(&self, elapsed: Duration) -> (Mode, Option<Duration>) {
        let schedule = self.schedule();
        let period = schedule
            .iter()
            .try_fold(Duration::ZERO, |sum, (_, len)| sum.checked_add(*len));
        let (first, _) = schedule[0];
        // A constant schedule, or phases of zero length: the first mode forever.
        let Some(period) = period.filter(|p| !p.is_zero() && schedule.len() > 1) else {
            return (first, None);
        };
        let mut offset = Duration::from_nanos(
            (elapsed.as_nanos() % period.as_nanos())
                .try_into()
                .unwrap_or(0),
        );
        for (mode, len) in schedule {
            if offset < len {
                return (mode, Some(len - offset));
            }
            offset -= len;
        }
        (first, None)
    }

    /// The mode at `elapsed` since the demo started.
    pub fn mode_at(&self, elapsed: Duration) -> Mode {
        self.locate(elapsed).0
    }

    /// How long after `elapsed` the port next opens or closes; `None` if it never does.
    pub fn until_listen_change(&self, elapsed: Duration) -> Option<Duration> {
        let listens = self.mode_at(elapsed).listens();
        let mut waited = Duration::ZERO;
        // Walk at most one period's worth of phases ahead.
        for _ in 0..=self.schedule().len() {
            let (mode, left) = self.locate(elapsed + waited);
            if mode.listens() != listens {
                return Some(waited);
            }
            waited += left?;
        }
        None
    }

    /// Whether the port ever accepts connections.
    pub fn ever_listens(&self) -> bool {
        self.schedule().iter().any(|(mode, _)| mode.listens())
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn flapping_alternates_healthy_and_failing() {
        let b = Behaviour::for_name("overseerr", S(5));
        assert_eq!(b.mode_at(S(0)), Mode::Healthy);
        assert_eq!(b.mode_at(S(19)), Mode::Healthy);
        assert_eq!(b.mode_at(S(20)), Mode::Failing);
        assert_eq!(b.mode_at(S(34)), Mode::Failing);
        assert_eq!(b.mode_at(S(35)), Mode::Healthy);
        assert_eq!(b.until_listen_change(S(3)), None);
    }

    #[test]
    fn slow_spell_answers_after_twice_the_call_timeout() {
        let b = Behaviour::for_name("uptime-kuma", S(10));
        assert_eq!(b.mode_at(S(24)), Mode::Healthy);
        assert_eq!(b.mode_at(S(25)), Mode::Slow(S(20)));
        assert_eq!(b.mode_at(S(40)), Mode::Healthy);
        assert_eq!(b.mode_at(S(65)), Mode::Slow(S(20)));
    }

    #[test]
    fn listen_changes_are_found_across_phases() {
        let tmdb = Behaviour::for_name("tmdb", S(3));
        assert_eq!(tmdb.until_listen_change(S(0)), Some(S(15)));
        assert_eq!(tmdb.until_listen_change(S(15)), Some(S(25)));
        let qbit = Behaviour::for_name("qbittorrent", S(3));
        assert_eq!(qbit.mode_at(S(0)), Mode::Refusing);
        assert_eq!(qbit.until_listen_change(S(5)), Some(S(15)));
        let cycle = Behaviour::for_name("jellyfin", S(3));
        // healthy, failing and slow all listen: the next change is the refused phase at 30 s.
        assert_eq!(cycle.until_listen_change(S(1)), Some(S(29)));
        assert_eq!(cycle.mode_at(S(25)), Mode::Slow(S(6)));
        assert_eq!(Behaviour::Down.until_listen_change(S(1)), None);
        assert!(!Behaviour::Down.ever_listens());
    }

    #[test]
    fn zero_length_phases_do_not_divide_by_zero() {
        let b = Behaviour::Flapping {
            up: Duration::ZERO,
            failing: Duration::ZERO,
        };
        assert_eq!(b.mode_at(S(7)), Mode::Healthy);
        assert_eq!(b.until_listen_change(S(7)), None);
    }
}
