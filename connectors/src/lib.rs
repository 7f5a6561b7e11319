//! Sluice connectors: where a job's rows come from and where they go.
//!
//! The planner turns each `CREATE TABLE ... WITH ('connector' = 'x', ...)` into a
//! [`SourceConnector`] or [`SinkConnector`] by calling [`create_source`] or [`create_sink`].
//! Each connector lives in its own folder with the same shape: `config.rs` for its typed
//! options, the running component beside it, unit tests inside. Record formats (`json`,
//! `csv`, `parquet`) live in [`format`] so that any connector carrying records can share them.
//!
//! | connector    | source | sink |
//! |--------------|--------|------|
//! | `filesystem` | yes    | yes  |
//! | `datagen`    | yes    |      |
//! | `nexmark`    | yes    |      |
//! | `print`      |        | yes  |
//! | `blackhole`  |        | yes  |
//! | `kinesis`    | yes    | yes  |
//! | `sagemaker-featurestore` |  | yes |

use std::sync::Arc;

use sluice_engine::connector::{
    LookupConnector, Options, SinkConnector, SourceConnector, TableSpec,
};
use sluice_engine::{Error, Result};

pub mod aws;
pub mod bad_records;
pub mod blackhole;
pub mod checkpoint_store;
pub mod datagen;
pub mod featurestore;
pub mod filesystem;
pub mod format;
pub mod http;
pub mod instance_position;
pub mod kinesis;
pub mod nexmark;
pub mod option_values;
pub mod print;
pub mod sink_bridge;

/// The connectors this crate knows, for messages.
const KNOWN: &str =
    "filesystem, kinesis, sagemaker-featurestore, datagen, nexmark, print, blackhole";

/// Creates the source connector `connector` for table `spec`, taking the options it
/// understands from `options` (the caller rejects whatever is left).
pub fn create_source(
    connector: &str,
    spec: TableSpec,
    options: &mut Options,
) -> Result<Arc<dyn SourceConnector>> {
    match connector {
        "filesystem" => Ok(Arc::new(filesystem::FileSource::new(spec, options)?)),
        "datagen" => Ok(Arc::new(datagen::DatagenSource::new(spec, options)?)),
        "kinesis" => Ok(Arc::new(kinesis::KinesisSource::new(spec, options)?)),
        "nexmark" => Ok(Arc::new(nexmark::NexmarkSource::new(spec, options)?)),
        "print" | "blackhole" | "sagemaker-featurestore" => {
            Err(wrong_role(&spec.name, connector, "sink", "read from"))
        }
        other => Err(unknown(&spec.name, other)),
    }
}

/// Creates the sink connector `connector` for table `spec`, taking the options it
/// understands from `options` (the caller rejects whatever is left).
pub fn create_sink(
    connector: &str,
    spec: TableSpec,
    options: &mut Options,
) -> Result<Arc<dyn SinkConnector>> {
    match connector {
        "filesystem" => Ok(Arc::new(filesystem::FileSink::new(spec, options)?)),
        "print" => Ok(Arc::new(print::PrintSink::new(spec, options)?)),
        "blackhole" => Ok(Arc::new(blackhole::BlackholeSink)),
        "kinesis" => Ok(Arc::new(kinesis::KinesisSink::new(spec, options)?)),
        "sagemaker-featurestore" => Ok(Arc::new(featurestore::FeatureStoreSink::new(
            spec, options,
        )?)),
        "datagen" | "nexmark" => Err(wrong_role(&spec.name, connector, "source", "written to")),
        other => Err(unknown(&spec.name, other)),
    }
}

/// Creates the lookup connector of table `spec` (the table of a `JOIN ... FOR SYSTEM_TIME
/// AS OF`), with how a lookup join keeps it fresh.
pub fn create_lookup(
    connector: &str,
    spec: TableSpec,
    options: &mut Options,
) -> Result<(Arc<dyn LookupConnector>, filesystem::LookupOptions)> {
    match connector {
        "filesystem" => {
            let (lookup, settings) = filesystem::FileLookup::new(spec, options)?;
            Ok((Arc::new(lookup), settings))
        }
        other if KNOWN.split(", ").any(|k| k == other) => Err(Error::config(format!(
            "table '{}': a '{other}' table cannot be looked up FOR SYSTEM_TIME AS OF; a lookup \
             join reads a bounded 'filesystem' table (local or s3://)",
            spec.name
        ))
        .for_option("connector")),
        other => Err(unknown(&spec.name, other)),
    }
}

fn unknown(table: &str, connector: &str) -> Error {
    Error::config(format!(
        "table '{table}': unknown connector '{connector}' (known: {KNOWN})"
    ))
    .for_option("connector")
}

fn wrong_role(table: &str, connector: &str, role: &str, verb: &str) -> Error {
    Error::config(format!(
        "table '{table}': connector '{connector}' is only a {role}, so the table cannot be {verb}"
    ))
    .for_option("connector")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn spec() -> TableSpec {
        TableSpec {
            name: "t".into(),
            schema: Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)])),
            metadata: vec![],
            partition_by: vec![],
            projection: None,
        }
    }

    fn options() -> Options {
        Options::new("t", BTreeMap::new())
    }

    #[test]
    fn unknown_and_misused_connectors() {
        let err = create_source("kafka", spec(), &mut options())
            .err()
            .unwrap();
        assert_eq!(
            err.message(),
            "table 't': unknown connector 'kafka' (known: filesystem, kinesis, sagemaker-featurestore, datagen, nexmark, print, blackhole)"
        );
        assert!(create_sink("kafka", spec(), &mut options()).is_err());
        let err = create_source("print", spec(), &mut options())
            .err()
            .unwrap();
        assert_eq!(
            err.message(),
            "table 't': connector 'print' is only a sink, so the table cannot be read from"
        );
        let err = create_sink("datagen", spec(), &mut options())
            .err()
            .unwrap();
        assert_eq!(err.kind(), sluice_engine::error::ErrorKind::Config);
        assert_eq!(err.option(), Some("connector"));
    }

    #[test]
    fn creates_each_connector() {
        assert_eq!(
            create_sink("blackhole", spec(), &mut options())
                .unwrap()
                .describe(),
            "blackhole"
        );
        assert_eq!(
            create_sink("print", spec(), &mut options())
                .unwrap()
                .describe(),
            "print(stdout)"
        );
        let source = create_source("datagen", spec(), &mut options()).unwrap();
        assert!(!source.bounded());
        assert_eq!(source.describe(), "datagen rows-per-second=10000");
    }
}
