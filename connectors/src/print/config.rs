//! The options of print tables, typed.

use sluice_engine::connector::Options;
use sluice_engine::Result;

/// Options of a print table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintConfig {
    /// `print-identifier` (none): a prefix that tells several print tables apart.
    pub identifier: Option<String>,
    /// `standard-error` (false): print to standard error instead of standard output.
    pub standard_error: bool,
}

impl PrintConfig {
    pub fn take(options: &mut Options) -> Result<Self> {
        Ok(Self {
            identifier: options.take(&["print-identifier"]),
            standard_error: options.take_bool("standard-error")?.unwrap_or(false),
        })
    }

    /// The line prefix of instance `instance` of `parallelism`, as Flink's `PrintSink` makes
    /// it: `id:N> ` / `N> ` (N counted from 1) when parallel, `id> ` or nothing otherwise.
    pub fn prefix(&self, instance: usize, parallelism: usize) -> String {
        let mut prefix = self.identifier.clone().unwrap_or_default();
        if parallelism > 1 {
            if !prefix.is_empty() {
                prefix.push(':');
            }
            prefix.push_str(&(instance + 1).to_string());
        }
        if !prefix.is_empty() {
            prefix.push_str("> ");
        }
        prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_like_flink() {
        let plain = PrintConfig::default();
        assert_eq!(plain.prefix(0, 1), "");
        assert_eq!(plain.prefix(2, 4), "3> ");
        let named = PrintConfig {
            identifier: Some("out".into()),
            standard_error: false,
        };
        assert_eq!(named.prefix(0, 1), "out> ");
        assert_eq!(named.prefix(1, 2), "out:2> ");
    }

    #[test]
    fn takes_its_options() {
        let values = [("print-identifier", "x"), ("standard-error", "TRUE")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut options = Options::new("p", values);
        let config = PrintConfig::take(&mut options).unwrap();
        options.finish().unwrap();
        assert_eq!(
            config,
            PrintConfig {
                identifier: Some("x".into()),
                standard_error: true
            }
        );
    }
}
