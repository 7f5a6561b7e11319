//! The options of filesystem tables, typed.

use std::path::PathBuf;
use std::time::Duration;

use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use crate::aws::glue::GlueOptions;
use crate::aws::s3::S3Location;
use crate::format::Format;
use crate::option_values::{parse_duration, parse_memory_size};

/// Options of a filesystem source table.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSourceConfig {
    /// `path` (required): a file, or a folder whose regular files are all read
    /// (recursively, skipping names that start with `.` or `_`, in path order).
    pub path: PathBuf,
    /// `format` (required): `json` or `csv`, with its `json.*` / `csv.*` options.
    pub format: Format,
}

impl FileSourceConfig {
    pub fn take(options: &mut Options) -> Result<Self> {
        let path = PathBuf::from(options.take_required("path")?);
        let format = Format::take(options, &["json", "csv"])?;
        Ok(Self { path, format })
    }
}

/// When the sink closes a file and starts the next one (Flink's rolling policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingPolicy {
    /// `sink.rolling-policy.file-size` (128 MB): roll once a file reaches this size.
    pub file_size: u64,
    /// `sink.rolling-policy.rollover-interval` (30 min): roll a file open this long.
    pub rollover_interval: Duration,
    /// `sink.rolling-policy.inactivity-interval` (30 min): roll a file not written to for
    /// this long. Checked whenever the sink receives rows.
    pub inactivity_interval: Duration,
}

impl Default for RollingPolicy {
    fn default() -> Self {
        Self {
            file_size: 128 << 20,
            rollover_interval: Duration::from_secs(30 * 60),
            inactivity_interval: Duration::from_secs(30 * 60),
        }
    }
}

/// Options of a filesystem sink table.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSinkConfig {
    /// `path` (required): the folder files are written to (created if missing), or an
    /// `s3://bucket/prefix` location.
    pub path: PathBuf,
    /// The bucket and prefix when `path` is an `s3://` URL.
    pub s3: Option<S3Location>,
    /// `format` (required): `parquet`, `json` or `csv`, with its options.
    pub format: Format,
    pub rolling: RollingPolicy,
    /// `sink.partition-commit.policy.kind` includes `metastore`: the Glue catalog entry.
    pub glue: Option<GlueOptions>,
    /// `sink.partition-commit.policy.kind` includes `success-file`: a `_SUCCESS` file in
    /// each partition once all its files are committed.
    pub success_file: bool,
}

impl FileSinkConfig {
    pub fn take(options: &mut Options) -> Result<Self> {
        let path_text = options.take_required("path")?;
        let s3 = S3Location::take(&path_text, options)?;
        let path = PathBuf::from(path_text);
        let format = Format::take(options, &["parquet", "json", "csv"])?;
        let defaults = RollingPolicy::default();
        let rolling = RollingPolicy {
            file_size: options
                .take_parsed("sink.rolling-policy.file-size", parse_memory_size)?
                .unwrap_or(defaults.file_size),
            rollover_interval: options
                .take_parsed("sink.rolling-policy.rollover-interval", parse_duration)?
                .unwrap_or(defaults.rollover_interval),
            inactivity_interval: options
                .take_parsed("sink.rolling-policy.inactivity-interval", parse_duration)?
                .unwrap_or(defaults.inactivity_interval),
        };
        let policy = options
            .take(&["sink.partition-commit.policy.kind"])
            .unwrap_or_default();
        let mut metastore = false;
        let mut success_file = false;
        for kind in policy.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            match kind.to_ascii_lowercase().as_str() {
                "metastore" => metastore = true,
                "success-file" => success_file = true,
                _ => {
                    return Err(Error::config(format!(
                        "table '{}': option 'sink.partition-commit.policy.kind' = '{policy}' is \
                         invalid: expected 'metastore', 'success-file' or both",
                        options.table()
                    )))
                }
            }
        }
        if metastore && s3.is_none() {
            return Err(Error::config(format!(
                "table '{}': 'sink.partition-commit.policy.kind' = 'metastore' registers the \
                 table in Glue, which needs an s3:// path",
                options.table()
            )));
        }
        let glue = GlueOptions::take(options, metastore)?;
        Ok(Self {
            path,
            s3,
            format,
            rolling,
            glue,
            success_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> Options {
        Options::from_pairs("t", pairs)
    }

    #[test]
    fn sink_options_with_defaults_and_flink_spellings() {
        let mut o = options(&[
            ("path", "/out"),
            ("format", "parquet"),
            ("sink.rolling-policy.file-size", "1 kb"),
            ("sink.rolling-policy.rollover-interval", "10 s"),
            ("parquet.compression", "snappy"),
        ]);
        let config = FileSinkConfig::take(&mut o).unwrap();
        o.finish().unwrap();
        assert_eq!(config.rolling.file_size, 1024);
        assert_eq!(config.rolling.rollover_interval, Duration::from_secs(10));
        assert_eq!(
            config.rolling.inactivity_interval,
            Duration::from_secs(1800)
        );
        assert_eq!(config.format.name(), "parquet");
    }

    #[test]
    fn metastore_needs_s3_and_a_database() {
        let mut o = options(&[
            ("path", "s3://lake/m"),
            ("format", "parquet"),
            (
                "sink.partition-commit.policy.kind",
                "metastore,success-file",
            ),
            ("glue.database", "analytics"),
        ]);
        let config = FileSinkConfig::take(&mut o).unwrap();
        o.finish().unwrap();
        assert!(config.success_file);
        let glue = config.glue.unwrap();
        assert_eq!(
            (glue.database.as_str(), glue.table.as_str()),
            ("analytics", "t")
        );
        let mut o = options(&[
            ("path", "s3://lake/m"),
            ("format", "parquet"),
            ("sink.partition-commit.policy.kind", "metastore"),
        ]);
        let err = FileSinkConfig::take(&mut o).unwrap_err();
        assert!(
            err.message().contains("needs the option 'glue.database'"),
            "{err}"
        );
        let mut o = options(&[
            ("path", "/local"),
            ("format", "parquet"),
            ("sink.partition-commit.policy.kind", "metastore"),
        ]);
        let err = FileSinkConfig::take(&mut o).unwrap_err();
        assert!(err.message().contains("needs an s3:// path"), "{err}");
        let mut o = options(&[
            ("path", "s3://lake/m"),
            ("format", "parquet"),
            ("athena.partition-projection", "true"),
        ]);
        assert!(FileSinkConfig::take(&mut o).unwrap().glue.is_none());
        o.finish().unwrap();
    }

    #[test]
    fn option_errors_name_table_and_option() {
        let mut o = options(&[("path", "/in"), ("format", "parquet")]);
        let err = FileSourceConfig::take(&mut o).unwrap_err();
        assert!(
            err.message()
                .contains("format 'parquet' is not supported here"),
            "{err}"
        );

        let mut o = options(&[("format", "json")]);
        let err = FileSourceConfig::take(&mut o).unwrap_err();
        assert_eq!(err.message(), "table 't' needs the option 'path'");

        let mut o = options(&[
            ("path", "/out"),
            ("format", "json"),
            ("sink.rolling-policy.file-size", "big"),
        ]);
        let err = FileSinkConfig::take(&mut o).unwrap_err();
        assert!(err
            .message()
            .starts_with("table 't': option 'sink.rolling-policy.file-size' = 'big' is invalid"));

        let mut o = options(&[
            ("path", "/in"),
            ("format", "json"),
            ("csv.field-delimiter", ";"),
        ]);
        FileSourceConfig::take(&mut o).unwrap();
        let err = o.finish().unwrap_err();
        assert!(
            err.message()
                .contains("'csv.field-delimiter' is not understood"),
            "{err}"
        );
    }
}
