//! A parser of the Prometheus text format, as much of it as the exporter writes; it panics on
//! anything else, so a malformed exposition fails the test that scrapes it.

use std::collections::BTreeMap;

/// Label name → value.
pub type Labels = BTreeMap<String, String>;

/// One scrape: every sample by metric name and labels, and every `# TYPE`.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: BTreeMap<(String, Labels), f64>,
    pub types: BTreeMap<String, String>,
}

impl Scrape {
    /// Parses the classic text format (as much of it as the exporter writes).
    pub fn parse(text: &str) -> Self {
        let mut scrape = Scrape::default();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE line");
                scrape.types.insert(name.to_owned(), kind.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value: f64 = value.parse().expect("sample value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}').expect("}"))),
                None => (series, Labels::new()),
            };
            let previous = scrape.samples.insert((name.to_owned(), labels), value);
            assert!(previous.is_none(), "duplicate series: {line}");
        }
        scrape
    }

    /// The value of `name{labels}`, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .get(&(name.to_owned(), labels_of(labels)))
            .copied()
    }

    /// Every sample whose labels include `breaker="name"`.
    pub fn of_breaker(&self, breaker: &str) -> BTreeMap<(String, Labels), f64> {
        self.samples
            .iter()
            .filter(|((_, labels), _)| labels.get("breaker").map(String::as_str) == Some(breaker))
            .map(|(key, value)| (key.clone(), *value))
            .collect()
    }
}

pub fn labels_of(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse_labels(text: &str) -> Labels {
    let mut labels = Labels::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect("label key");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect("closing quote") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("escape").1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        rest = &after[end + 1..];
    }
    labels
}
