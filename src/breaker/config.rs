//! Validated breaker settings and their builder.
//!
//! A [`BreakerConfig`] can only be obtained through [`BreakerConfigBuilder::build`], so code that
//! holds one may trust every value in it.

use std::fmt;
use std::time::Duration;

use super::clock::duration_nanos;

/// Which consecutive failures count towards `failure_threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ConsecutiveFailuresWindow {
    /// Only those inside the rolling window (gobreaker v2's rolling rule): a run of failures
    /// spread over hours, with no success between them, does not trip a breaker whose window
    /// is a minute.
    #[default]
    Window,
    /// Every failure since the last success, however old.
    Unbounded,
}

impl ConsecutiveFailuresWindow {
    /// `window` or `unbounded`, as the configuration spells them.
    pub const fn as_str(self) -> &'static str {
        match self {
            ConsecutiveFailuresWindow::Window => "window",
            ConsecutiveFailuresWindow::Unbounded => "unbounded",
        }
    }
}

/// What the breaker's window holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum WindowType {
    /// The calls of the last `window`, in `buckets` (resilience4j's `TIME_BASED`): old calls
    /// expire, so a quiet dependency's old failures are forgotten.
    #[default]
    Time,
    /// The last `window_calls` calls, however old (resilience4j's `COUNT_BASED`): a rate is
    /// always over the same number of calls, at any traffic.
    Count,
}

impl WindowType {
    /// `time` or `count`, as the configuration spells them.
    pub const fn as_str(self) -> &'static str {
        match self {
            WindowType::Time => "time",
            WindowType::Count => "count",
        }
    }
}

/// A whole percentage from 1 to 100, compared exactly in integer arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u8);

impl Percent {
    /// `value` percent, or `None` outside 1–100.
    pub const fn new(value: u8) -> Option<Percent> {
        if value >= 1 && value <= 100 {
            Some(Percent(value))
        } else {
            None
        }
    }

    /// The percentage as an integer from 1 to 100.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Whether `part / whole` is at least this percentage (false when `whole` is zero).
    pub(crate) fn reached_by(self, part: u64, whole: u64) -> bool {
        whole > 0 && u128::from(part) * 100 >= u128::from(self.0) * u128::from(whole)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

/// A setting that cannot be used, naming the field, the value given and why it was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid `{field}` = {value}: {reason}")]
pub struct ConfigError {
    field: &'static str,
    value: String,
    reason: &'static str,
}

impl ConfigError {
    fn new(field: &'static str, value: impl fmt::Debug, reason: &'static str) -> Self {
        Self {
            field,
            value: format!("{value:?}"),
            reason,
        }
    }

    /// The name of the offending setting, as in the configuration file.
    pub fn field(&self) -> &'static str {
        self.field
    }

    /// The refused value, as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// Settings of one breaker. Built and validated by [`BreakerConfig::builder`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerConfig {
    failure_threshold: u32,
    failure_rate_threshold: Percent,
    minimum_calls: u32,
    window: Duration,
    buckets: u32,
    window_type: WindowType,
    window_calls: u32,
    open_duration: Duration,
    open_duration_max: Option<Duration>,
    /// The growth factor per consecutive trip, as the bits of an `f64` (so the config stays
    /// `Eq` and `Hash`); validated finite and from 1 to 100.
    open_duration_multiplier: u64,
    jitter: u8,
    half_open_max_calls: u32,
    half_open_success_threshold: u32,
    half_open_max_wait: Option<Duration>,
    consecutive_failures_window: ConsecutiveFailuresWindow,
    slow_call_duration: Option<Duration>,
    slow_call_rate_threshold: Option<Percent>,
    honor_retry_after: bool,
}

impl Default for BreakerConfig {
    /// The defaults of DESIGN.md: 5 consecutive failures or 50 % of at least 10 calls over 60 s
    /// (10 buckets) trip; open for 60 s; one half-open probe whose success closes.
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            failure_rate_threshold: Percent(50),
            minimum_calls: 10,
            window: Duration::from_secs(60),
            buckets: 10,
            window_type: WindowType::Time,
            window_calls: 100,
            open_duration: Duration::from_secs(60),
            open_duration_max: None,
            open_duration_multiplier: 2.0_f64.to_bits(),
            jitter: 10,
            half_open_max_calls: 1,
            half_open_success_threshold: 1,
            half_open_max_wait: None,
            consecutive_failures_window: ConsecutiveFailuresWindow::Window,
            slow_call_duration: None,
            slow_call_rate_threshold: None,
            honor_retry_after: false,
        }
    }
}

impl BreakerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder {
            config: BreakerConfig::default(),
            failure_rate_threshold: 50,
            slow_call_rate_threshold: None,
        }
    }

    /// A builder starting from this configuration, for per-name overrides of shared defaults.
    pub fn to_builder(&self) -> BreakerConfigBuilder {
        BreakerConfigBuilder {
            config: self.clone(),
            failure_rate_threshold: self.failure_rate_threshold.get(),
            slow_call_rate_threshold: self.slow_call_rate_threshold.map(Percent::get),
        }
    }

    /// Consecutive failures that trip the breaker.
    pub fn failure_threshold(&self) -> u32 {
        self.failure_threshold
    }
    /// Failure rate over the window that trips the breaker.
    pub fn failure_rate_threshold(&self) -> Percent {
        self.failure_rate_threshold
    }
    /// Calls the window must hold before a rate can trip the breaker.
    pub fn minimum_calls(&self) -> u32 {
        self.minimum_calls
    }
    /// Span of the rolling window.
    pub fn window(&self) -> Duration {
        self.window
    }
    /// Number of buckets the window is divided into.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }
    /// Whether the window holds the calls of the last `window` or the last `window_calls`.
    pub fn window_type(&self) -> WindowType {
        self.window_type
    }
    /// Calls a count-based window holds (used when `window_type` is `count`).
    pub fn window_calls(&self) -> u32 {
        self.window_calls
    }
    /// Width of one bucket in nanoseconds.
    pub(crate) fn bucket_nanos(&self) -> u64 {
        duration_nanos(self.window) / u64::from(self.buckets)
    }
    /// How long the breaker stays open after its first trip.
    pub fn open_duration(&self) -> Duration {
        self.open_duration
    }
    /// Upper bound of the open duration when it grows with repeated trips; `None`: no growth.
    pub fn open_duration_max(&self) -> Option<Duration> {
        self.open_duration_max
    }
    /// How much each consecutive trip multiplies the open duration, up to `open_duration_max`
    /// (default 2: doubling).
    pub fn open_duration_multiplier(&self) -> f64 {
        f64::from_bits(self.open_duration_multiplier)
    }
    /// Largest share, in percent, cut at random from a grown open duration.
    pub fn jitter(&self) -> u8 {
        self.jitter
    }
    /// Probes admitted at once while half-open.
    pub fn half_open_max_calls(&self) -> u32 {
        self.half_open_max_calls
    }
    /// Successful probes that close the breaker.
    pub fn half_open_success_threshold(&self) -> u32 {
        self.half_open_success_threshold
    }
    /// Longest a breaker stays half-open without its probes deciding (resilience4j's
    /// `maxWaitDurationInHalfOpenState`): past it, it re-opens. `None`: as long as it takes.
    pub fn half_open_max_wait(&self) -> Option<Duration> {
        self.half_open_max_wait
    }
    /// Which consecutive failures count towards `failure_threshold`.
    pub fn consecutive_failures_window(&self) -> ConsecutiveFailuresWindow {
        self.consecutive_failures_window
    }
    /// A call at least this slow counts as slow; `None`: slow calls are not tracked.
    pub fn slow_call_duration(&self) -> Option<Duration> {
        self.slow_call_duration
    }
    /// Slow-call rate that trips the breaker; `None`: never trips on slowness.
    pub fn slow_call_rate_threshold(&self) -> Option<Percent> {
        self.slow_call_rate_threshold
    }
    /// Whether a failure carrying a `Retry-After` hint opens the breaker for that long.
    pub fn honor_retry_after(&self) -> bool {
        self.honor_retry_after
    }
    /// Longest time a `Retry-After` hint may keep the breaker open.
    pub fn retry_after_cap(&self) -> Duration {
        self.open_duration_max.unwrap_or(self.open_duration)
    }
}

/// Builds a [`BreakerConfig`], checking every value in [`build`](Self::build).
#[derive(Debug, Clone)]
#[must_use]
pub struct BreakerConfigBuilder {
    config: BreakerConfig,
    failure_rate_threshold: u8,
    slow_call_rate_threshold: Option<u8>,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$name = value;
            self
        }
    };
}

impl BreakerConfigBuilder {
    setter!(
        /// Consecutive failures that trip the breaker (at least 1).
        failure_threshold: u32
    );
    setter!(
        /// Calls the window must hold before a rate can trip (at least 1).
        minimum_calls: u32
    );
    setter!(
        /// Span of the rolling window (positive, divisible by `buckets`).
        window: Duration
    );
    setter!(
        /// Number of buckets of the window (1–1000, each at least 1 ms wide).
        buckets: u32
    );
    setter!(
        /// Whether the window holds the calls of the last `window` (the default) or the last
        /// `window_calls` calls.
        window_type: WindowType
    );
    setter!(
        /// Calls a count-based window holds (1–100,000; default 100).
        window_calls: u32
    );
    setter!(
        /// How long the breaker stays open after a trip (positive).
        open_duration: Duration
    );
    setter!(
        /// Probes admitted at once while half-open (at least 1).
        half_open_max_calls: u32
    );
    setter!(
        /// Successful probes that close the breaker (at least 1).
        half_open_success_threshold: u32
    );
    setter!(
        /// Whether a failure carrying a `Retry-After` hint opens the breaker for that long.
        honor_retry_after: bool
    );
    setter!(
        /// Largest share in percent (0–100) cut at random from a grown open duration.
        jitter: u8
    );

    /// Failure rate in percent (1–100) over the window that trips the breaker.
    pub fn failure_rate_threshold(mut self, percent: u8) -> Self {
        self.failure_rate_threshold = percent;
        self
    }

    /// Lets the open duration double with each consecutive trip, up to `max`.
    pub fn open_duration_max(mut self, max: Option<Duration>) -> Self {
        self.config.open_duration_max = max;
        self
    }

    /// How much each consecutive trip multiplies the open duration (from 1 to 100; default 2),
    /// up to `open_duration_max`, which it needs.
    pub fn open_duration_multiplier(mut self, factor: f64) -> Self {
        self.config.open_duration_multiplier = factor.to_bits();
        self
    }

    /// Longest a breaker stays half-open without its probes deciding; past it, it re-opens, and
    /// a probe that reports later is dropped (positive; `None`, the default: no bound).
    pub fn half_open_max_wait(mut self, wait: Option<Duration>) -> Self {
        self.config.half_open_max_wait = wait;
        self
    }

    /// Which consecutive failures count towards `failure_threshold` (default: those inside the
    /// rolling window).
    pub fn consecutive_failures_window(mut self, which: ConsecutiveFailuresWindow) -> Self {
        self.config.consecutive_failures_window = which;
        self
    }

    /// A call at least this slow counts as slow.
    pub fn slow_call_duration(mut self, duration: Option<Duration>) -> Self {
        self.config.slow_call_duration = duration;
        self
    }

    /// Slow-call rate in percent (1–100) that trips the breaker; needs `slow_call_duration`.
    pub fn slow_call_rate_threshold(mut self, percent: Option<u8>) -> Self {
        self.slow_call_rate_threshold = percent;
        self
    }

    /// Checks every value and returns the configuration, or the first value that cannot work.
    pub fn build(self) -> Result<BreakerConfig, ConfigError> {
        let mut config = self.config;
        if config.failure_threshold == 0 {
            return Err(ConfigError::new(
                "failure_threshold",
                0,
                "must be at least 1 (0 would trip before any call)",
            ));
        }
        config.failure_rate_threshold =
            Percent::new(self.failure_rate_threshold).ok_or_else(|| {
                ConfigError::new(
                    "failure_rate_threshold",
                    self.failure_rate_threshold,
                    "must be a percentage from 1 to 100",
                )
            })?;
        if config.minimum_calls == 0 {
            return Err(ConfigError::new("minimum_calls", 0, "must be at least 1"));
        }
        if config.window.is_zero() {
            return Err(ConfigError::new(
                "window",
                config.window,
                "must be positive",
            ));
        }
        if config.buckets == 0 || config.buckets > 1000 {
            return Err(ConfigError::new(
                "buckets",
                config.buckets,
                "must be from 1 to 1000",
            ));
        }
        let window_nanos = duration_nanos(config.window);
        if !window_nanos.is_multiple_of(u64::from(config.buckets)) {
            return Err(ConfigError::new(
                "buckets",
                config.buckets,
                "must divide `window` into whole nanoseconds",
            ));
        }
        if window_nanos / u64::from(config.buckets) < 1_000_000 {
            return Err(ConfigError::new(
                "buckets",
                config.buckets,
                "each bucket must span at least 1ms of `window`",
            ));
        }
        if config.window_calls == 0 || config.window_calls > 100_000 {
            return Err(ConfigError::new(
                "window_calls",
                config.window_calls,
                "must be from 1 to 100000",
            ));
        }
        if config.window_type == WindowType::Count {
            if config.minimum_calls > config.window_calls {
                return Err(ConfigError::new(
                    "minimum_calls",
                    config.minimum_calls,
                    "must be at most `window_calls`: a count window never holds more calls",
                ));
            }
            if config.failure_threshold > config.window_calls
                && config.consecutive_failures_window == ConsecutiveFailuresWindow::Window
            {
                return Err(ConfigError::new(
                    "failure_threshold",
                    config.failure_threshold,
                    "must be at most `window_calls` (consecutive failures count inside the \
                     window), unless `consecutive_failures_window` is \"unbounded\"",
                ));
            }
        }
        if config.open_duration.is_zero() {
            return Err(ConfigError::new(
                "open_duration",
                config.open_duration,
                "must be positive",
            ));
        }
        let factor = f64::from_bits(config.open_duration_multiplier);
        if !(1.0..=100.0).contains(&factor) {
            return Err(ConfigError::new(
                "open_duration_multiplier",
                factor,
                "must be a number from 1 to 100",
            ));
        }
        if factor != 2.0 && config.open_duration_max.is_none() {
            return Err(ConfigError::new(
                "open_duration_multiplier",
                factor,
                "needs `open_duration_max`: the open duration grows only up to it",
            ));
        }
        if let Some(max) = config.open_duration_max
            && max < config.open_duration
        {
            return Err(ConfigError::new(
                "open_duration_max",
                max,
                "must be at least `open_duration`",
            ));
        }
        if config.jitter > 100 {
            return Err(ConfigError::new(
                "jitter",
                config.jitter,
                "must be a percentage from 0 to 100",
            ));
        }
        if config.half_open_max_wait == Some(Duration::ZERO) {
            return Err(ConfigError::new(
                "half_open_max_wait",
                Duration::ZERO,
                "must be positive (leave it unset for no bound)",
            ));
        }
        if config.half_open_max_calls == 0 {
            return Err(ConfigError::new(
                "half_open_max_calls",
                0,
                "must be at least 1 (0 would never let the breaker close)",
            ));
        }
        if config.half_open_success_threshold == 0 {
            return Err(ConfigError::new(
                "half_open_success_threshold",
                0,
                "must be at least 1",
            ));
        }
        if let Some(slow) = config.slow_call_duration
            && slow.is_zero()
        {
            return Err(ConfigError::new(
                "slow_call_duration",
                slow,
                "must be positive",
            ));
        }
        config.slow_call_rate_threshold = match self.slow_call_rate_threshold {
            None => None,
            Some(_) if config.slow_call_duration.is_none() => {
                return Err(ConfigError::new(
                    "slow_call_rate_threshold",
                    self.slow_call_rate_threshold,
                    "needs `slow_call_duration` to say what is slow",
                ));
            }
            Some(percent) => Some(Percent::new(percent).ok_or_else(|| {
                ConfigError::new(
                    "slow_call_rate_threshold",
                    percent,
                    "must be a percentage from 1 to 100",
                )
            })?),
        };
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(builder: BreakerConfigBuilder) -> ConfigError {
        match builder.build() {
            Ok(config) => panic!("accepted {config:?}"),
            Err(err) => err,
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(
            BreakerConfig::builder().build(),
            Ok(BreakerConfig::default())
        );
    }

    #[test]
    fn errors_name_field_and_value() {
        let err = refused(BreakerConfig::builder().failure_threshold(0));
        assert_eq!(err.field(), "failure_threshold");
        assert_eq!(err.value(), "0");
        assert!(
            err.to_string()
                .starts_with("invalid `failure_threshold` = 0: must be")
        );

        for percent in [0, 101, 255] {
            let err = refused(BreakerConfig::builder().failure_rate_threshold(percent));
            assert_eq!(
                (err.field(), err.value()),
                ("failure_rate_threshold", percent.to_string().as_str())
            );
        }
        let err = refused(BreakerConfig::builder().window(Duration::ZERO));
        assert_eq!((err.field(), err.value()), ("window", "0ns"));
        let err = refused(BreakerConfig::builder().minimum_calls(0));
        assert_eq!(err.field(), "minimum_calls");
        let err = refused(BreakerConfig::builder().half_open_max_calls(0));
        assert_eq!(err.field(), "half_open_max_calls");
        let err = refused(BreakerConfig::builder().half_open_success_threshold(0));
        assert_eq!(err.field(), "half_open_success_threshold");
        let err = refused(BreakerConfig::builder().open_duration(Duration::ZERO));
        assert_eq!(err.field(), "open_duration");
        let err = refused(BreakerConfig::builder().jitter(101));
        assert_eq!(err.field(), "jitter");
    }

    #[test]
    fn buckets_must_divide_the_window_sensibly() {
        for buckets in [0, 1001] {
            assert_eq!(
                refused(BreakerConfig::builder().buckets(buckets)).field(),
                "buckets"
            );
        }
        let uneven = BreakerConfig::builder()
            .window(Duration::from_nanos(10_000_000_001))
            .buckets(10);
        assert!(refused(uneven).reason().contains("whole nanoseconds"));
        let too_fine = BreakerConfig::builder()
            .window(Duration::from_millis(50))
            .buckets(100);
        assert!(refused(too_fine).reason().contains("1ms"));
        let fine = BreakerConfig::builder()
            .window(Duration::from_millis(1500))
            .buckets(3)
            .build();
        assert_eq!(fine.map(|c| c.bucket_nanos()), Ok(500_000_000));
    }

    #[test]
    fn optional_rules_are_checked_together() {
        let err = refused(
            BreakerConfig::builder()
                .open_duration(Duration::from_secs(60))
                .open_duration_max(Some(Duration::from_secs(30))),
        );
        assert_eq!((err.field(), err.value()), ("open_duration_max", "30s"));
        let err = refused(BreakerConfig::builder().slow_call_rate_threshold(Some(80)));
        assert_eq!(err.field(), "slow_call_rate_threshold");
        assert!(err.reason().contains("slow_call_duration"));
        let err = refused(
            BreakerConfig::builder()
                .slow_call_duration(Some(Duration::from_secs(2)))
                .slow_call_rate_threshold(Some(0)),
        );
        assert_eq!(err.value(), "0");
        let err = refused(BreakerConfig::builder().slow_call_duration(Some(Duration::ZERO)));
        assert_eq!(err.field(), "slow_call_duration");
    }

    #[test]
    fn a_count_window_must_be_able_to_reach_its_rules() {
        let count = || BreakerConfig::builder().window_type(WindowType::Count);
        for calls in [0, 100_001] {
            assert_eq!(refused(count().window_calls(calls)).field(), "window_calls");
        }
        let err = refused(count().window_calls(5).minimum_calls(6));
        assert_eq!((err.field(), err.value()), ("minimum_calls", "6"));
        let err = refused(
            count()
                .window_calls(4)
                .minimum_calls(4)
                .failure_threshold(5),
        );
        assert_eq!(err.field(), "failure_threshold");
        assert!(err.reason().contains("unbounded"));
        let unbounded = count()
            .window_calls(4)
            .minimum_calls(4)
            .failure_threshold(5)
            .consecutive_failures_window(ConsecutiveFailuresWindow::Unbounded)
            .build();
        assert!(unbounded.is_ok());
        // A time window does not look at `window_calls`' relation to the other rules.
        assert!(BreakerConfig::builder().window_calls(3).build().is_ok());
    }

    #[test]
    fn to_builder_keeps_every_value() {
        let base = BreakerConfig::builder()
            .failure_rate_threshold(30)
            .slow_call_duration(Some(Duration::from_millis(250)))
            .slow_call_rate_threshold(Some(70))
            .build()
            .expect("valid");
        assert_eq!(base.to_builder().build(), Ok(base.clone()));
        let plex = base
            .to_builder()
            .failure_threshold(3)
            .build()
            .expect("valid");
        assert_eq!(plex.failure_threshold(), 3);
        assert_eq!(plex.slow_call_rate_threshold(), Percent::new(70));
    }

    #[test]
    fn percent_comparison_is_exact() {
        let half = Percent::new(50).expect("valid");
        assert!(half.reached_by(5, 10));
        assert!(!half.reached_by(4, 9));
        assert!(!half.reached_by(0, 0));
        assert!(Percent::new(100).expect("valid").reached_by(3, 3));
    }
}
