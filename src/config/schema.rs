//! Every key the configuration accepts, once: the reader checks files against it and the
//! environment layer resolves `BREAKERBOX_…` names with it.

/// The TOML type a key holds; environment strings are converted by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Int,
    Bool,
    /// A `humantime` string such as `"500ms"`.
    Duration,
    IntList,
    Table,
    TableArray,
}

/// A table of the configuration, by what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Root,
    Server,
    Store,
    Admin,
    Token,
    Defaults,
    Upstream,
    Degraded,
    Chaos,
    Health,
}

use Kind::*;

/// Keys that become the [`BreakerConfig`](crate::breaker::BreakerConfig) of a breaker.
pub(crate) const BREAKER: &[(&str, Kind)] = &[
    ("failure_threshold", Int),
    ("failure_rate_threshold", Int),
    ("minimum_calls", Int),
    ("window", Duration),
    ("buckets", Int),
    ("open_duration", Duration),
    ("open_duration_max", Duration),
    ("jitter", Int),
    ("half_open_max_calls", Int),
    ("half_open_success_threshold", Int),
    ("slow_call_duration", Duration),
    ("slow_call_rate_threshold", Int),
    ("honor_retry_after", Bool),
];

/// Keys about calling an upstream that `[defaults]` may set for every upstream.
pub(crate) const CALL: &[(&str, Kind)] = &[
    ("call_timeout", Duration),
    ("failure_statuses", IntList),
    ("retry_budget_percent", Int),
    ("retry_min_per_second", Int),
    ("cache_ttl", Duration),
];

const ROOT: &[(&str, Kind)] = &[
    ("server", Table),
    ("store", Table),
    ("admin", Table),
    ("defaults", Table),
    ("upstreams", Table),
    ("chaos", Table),
    ("health", Table),
];
const SERVER: &[(&str, Kind)] = &[
    ("listen", Str),
    ("max_body_bytes", Int),
    ("max_header_bytes", Int),
];
const STORE: &[(&str, Kind)] = &[
    ("url", Str),
    ("call_timeout", Duration),
    ("queue_memory_capacity", Int),
    ("queue_finished_retention", Duration),
    ("queue_finished_keep", Int),
];
const ADMIN: &[(&str, Kind)] = &[("tokens", TableArray)];
const TOKEN: &[(&str, Kind)] = &[
    ("name", Str),
    ("token", Str),
    ("token_env", Str),
    ("role", Str),
];
const UPSTREAM: &[(&str, Kind)] = &[
    ("url", Str),
    ("fallback", Str),
    ("health_path", Str),
    ("degraded", Table),
];
const DEGRADED: &[(&str, Kind)] = &[("status", Int), ("body", Str), ("content_type", Str)];
const CHAOS: &[(&str, Kind)] = &[("enabled", Bool)];
const HEALTH: &[(&str, Kind)] = &[("check_interval", Duration), ("detailed_cache", Duration)];

impl Section {
    /// The keys this table accepts, in a stable order.
    pub(crate) fn keys(self) -> Vec<(&'static str, Kind)> {
        let parts: &[&[(&str, Kind)]] = match self {
            Section::Root => &[ROOT],
            Section::Server => &[SERVER],
            Section::Store => &[STORE, BREAKER],
            Section::Admin => &[ADMIN],
            Section::Token => &[TOKEN],
            Section::Defaults => &[BREAKER, CALL],
            Section::Upstream => &[UPSTREAM, BREAKER, CALL],
            Section::Degraded => &[DEGRADED],
            Section::Chaos => &[CHAOS],
            Section::Health => &[HEALTH],
        };
        parts.iter().flat_map(|part| part.iter().copied()).collect()
    }

    /// The kind of `key` in this table, if it is one of its keys.
    pub(crate) fn kind_of(self, key: &str) -> Option<Kind> {
        self.keys()
            .into_iter()
            .find(|(name, _)| *name == key)
            .map(|(_, kind)| kind)
    }
}

/// The known key closest to a misspelt one, if any is close enough to suggest.
pub(crate) fn suggest(section: Section, unknown: &str) -> Option<&'static str> {
    section
        .keys()
        .into_iter()
        .map(|(name, _)| (distance(name, unknown), name))
        .filter(|(d, name)| *d <= 2 + name.len() / 8)
        .min()
        .map(|(_, name)| name)
}

/// Levenshtein distance, small strings only.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(
            suggest(Section::Upstream, "failure_treshold"),
            Some("failure_threshold")
        );
        assert_eq!(suggest(Section::Defaults, "windw"), Some("window"));
        assert_eq!(suggest(Section::Upstream, "colour"), None);
    }

    #[test]
    fn every_breaker_key_is_accepted_where_breakers_are_configured() {
        for section in [Section::Defaults, Section::Upstream, Section::Store] {
            for (key, kind) in BREAKER {
                assert_eq!(section.kind_of(key), Some(*kind), "{key} in {section:?}");
            }
        }
        assert_eq!(Section::Store.kind_of("fallback"), None);
        assert_eq!(Section::Defaults.kind_of("url"), None);
    }
}
