//! `'sink.partition-commit.policy.kind' = 'metastore'`: the sink's table and partitions in
//! the Glue Data Catalog, so Athena can query the output at once.
//!
//! When the sink starts, the database (`glue.database`) and the table (`glue.table`, by
//! default the sink table's name) are created if missing: an external table over the
//! `s3://` location, with the file format's SerDe, the data columns and the `PARTITIONED BY`
//! keys in Athena's types. Each partition folder the job wrote to is registered once its
//! files are committed. With `'athena.partition-projection' = 'true'` the table carries
//! partition projection properties instead, and partitions are not registered one by one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use arrow::datatypes::DataType;
use aws_config::SdkConfig;
use aws_sdk_glue::types::{
    Column, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use aws_sdk_glue::Client;
use sluice_engine::connector::Options;
use sluice_engine::{Error, Result};

use crate::aws::{retry, runtime, Failure};
use crate::filesystem::partition::{values_from_path, DEFAULT_PARTITION};
use crate::format::Format;

/// The `glue.*` options of a sink whose commit policy includes `metastore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlueOptions {
    pub database: String,
    pub table: String,
    pub projection: bool,
}

impl GlueOptions {
    /// Takes `glue.database`, `glue.table` and `athena.partition-projection` (which alone,
    /// without the catalog, only shapes `sluice athena-ddl`); `metastore` says whether the
    /// commit policy asks for the catalog.
    pub fn take(options: &mut Options, metastore: bool) -> Result<Option<Self>> {
        let table = options.table().to_string();
        let database = options.take(&["glue.database"]);
        let glue_table = options.take(&["glue.table"]);
        let projection = options
            .take_bool("athena.partition-projection")?
            .unwrap_or(false);
        if !metastore {
            // 'athena.partition-projection' alone is for `sluice athena-ddl`.
            if database.is_some() || glue_table.is_some() {
                return Err(Error::config(format!(
                    "table '{table}': the glue.* options need \
                     'sink.partition-commit.policy.kind' = 'metastore'"
                )));
            }
            return Ok(None);
        }
        let database = database.ok_or_else(|| {
            Error::config(format!(
                "table '{table}': 'sink.partition-commit.policy.kind' = 'metastore' needs the \
                 option 'glue.database'"
            ))
        })?;
        Ok(Some(Self {
            database,
            table: glue_table.unwrap_or_else(|| table.to_lowercase()),
            projection,
        }))
    }
}

/// The Athena (Hive) type of a column, as Sluice writes it.
pub fn hive_type(data_type: &DataType) -> Result<String> {
    Ok(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 => "string".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        // Written as INT64 milliseconds (UTC for TIMESTAMP_LTZ).
        DataType::Timestamp(..) => "timestamp".into(),
        DataType::Date32 => "date".into(),
        DataType::Binary | DataType::LargeBinary => "binary".into(),
        DataType::Struct(fields) => {
            let inner = fields
                .iter()
                .map(|f| {
                    Ok(format!(
                        "{}:{}",
                        f.name().to_lowercase(),
                        hive_type(f.data_type())?
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            format!("struct<{}>", inner.join(","))
        }
        DataType::List(item) => format!("array<{}>", hive_type(item.data_type())?),
        other => {
            return Err(Error::config(format!(
                "type {other} has no Athena equivalent"
            )))
        }
    })
}

/// SerDe, input and output format of a file format, as Athena expects them.
pub fn storage_classes(format: &Format) -> (&'static str, &'static str, &'static str) {
    match format {
        Format::Parquet(_) => (
            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
            "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
        ),
        Format::Json(_) => (
            "org.openx.data.jsonserde.JsonSerDe",
            "org.apache.hadoop.mapred.TextInputFormat",
            "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        ),
        Format::Csv(_) => (
            "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
            "org.apache.hadoop.mapred.TextInputFormat",
            "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        ),
    }
}

/// What the catalog entry describes.
pub struct CatalogTable<'a> {
    /// The Sluice table, for messages.
    pub sluice_table: &'a str,
    /// `s3://bucket/prefix/`.
    pub location: String,
    pub format: &'a Format,
    /// Data columns (name, type), in file order.
    pub columns: Vec<(String, DataType)>,
    /// `PARTITIONED BY` keys (name, type), in folder order.
    pub partition_keys: Vec<(String, DataType)>,
}

/// A connected Glue catalog entry.
pub struct GlueCatalog {
    client: Client,
    options: GlueOptions,
    sluice_table: String,
    location: String,
    storage: StorageDescriptor,
    partitioned: bool,
}

impl GlueCatalog {
    /// Creates the database and the table if they are missing.
    pub fn connect(
        sdk: &SdkConfig,
        options: &GlueOptions,
        table: CatalogTable,
    ) -> Result<Arc<Self>> {
        let columns = |list: &[(String, DataType)]| -> Result<Vec<Column>> {
            list.iter()
                .map(|(name, t)| {
                    Column::builder()
                        .name(name.to_lowercase())
                        .r#type(hive_type(t)?)
                        .build()
                        .map_err(|e| Error::internal(format!("Glue column: {e}")))
                })
                .collect()
        };
        let (serde, input, output) = storage_classes(table.format);
        let mut serde_info = SerDeInfo::builder().serialization_library(serde);
        if let Format::Csv(_) = table.format {
            serde_info = serde_info.parameters("field.delim", ",");
        }
        let storage = StorageDescriptor::builder()
            .set_columns(Some(columns(&table.columns)?))
            .location(&table.location)
            .input_format(input)
            .output_format(output)
            .serde_info(serde_info.build())
            .build();
        let catalog = Self {
            client: Client::new(sdk),
            options: options.clone(),
            sluice_table: table.sluice_table.to_string(),
            location: table.location.clone(),
            storage,
            partitioned: !table.partition_keys.is_empty(),
        };
        let mut parameters: BTreeMap<String, String> = [
            ("EXTERNAL", "TRUE"),
            ("classification", table.format.name()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if options.projection && !table.partition_keys.is_empty() {
            parameters.insert("projection.enabled".into(), "true".into());
            let mut template = table.location.clone();
            for (name, _) in &table.partition_keys {
                let name = name.to_lowercase();
                parameters.insert(format!("projection.{name}.type"), "injected".into());
                template.push_str(&format!("{name}=${{{name}}}/"));
            }
            parameters.insert("storage.location.template".into(), template);
        }
        let table_input = TableInput::builder()
            .name(&options.table)
            .table_type("EXTERNAL_TABLE")
            .set_parameters(Some(parameters.into_iter().collect()))
            .set_partition_keys(Some(columns(&table.partition_keys)?))
            .storage_descriptor(catalog.storage.clone())
            .build()
            .map_err(|e| Error::internal(format!("Glue table: {e}")))?;
        runtime().block_on(catalog.ensure(table_input))?;
        Ok(Arc::new(catalog))
    }

    async fn ensure(&self, table_input: TableInput) -> Result<()> {
        let database = &self.options.database;
        let what = format!("table '{}': Glue CreateDatabase", self.sluice_table);
        let created = retry(&what, None, || {
            let call = self.client.create_database().database_input(
                DatabaseInput::builder()
                    .name(database)
                    .build()
                    .expect("a database input with a name"),
            );
            async move { call.send().await.map_err(|e| Failure::of(&e)) }
        })
        .await;
        self.ignore_existing("CreateDatabase", created)?;
        let what = format!("table '{}': Glue CreateTable", self.sluice_table);
        let created = retry(&what, None, || {
            let call = self
                .client
                .create_table()
                .database_name(database)
                .table_input(table_input.clone());
            async move { call.send().await.map_err(|e| Failure::of(&e)) }
        })
        .await;
        self.ignore_existing("CreateTable", created)
    }

    fn ignore_existing<T>(&self, call: &str, result: Result<T, Failure>) -> Result<()> {
        match result {
            Ok(_) => Ok(()),
            Err(f) if f.is_fatal("AlreadyExistsException") => Ok(()),
            Err(f) => Err(Error::connector(format!(
                "table '{}': Glue {call} of {}.{} failed: {}",
                self.sluice_table,
                self.options.database,
                self.options.table,
                f.describe()
            ))),
        }
    }

    /// Registers the partition folders (`dt=2026-11-23/hr=10`) that are not registered yet.
    pub fn add_partitions(&self, folders: &BTreeSet<String>) -> Result<()> {
        if !self.partitioned || self.options.projection || folders.is_empty() {
            return Ok(());
        }
        let inputs: Vec<PartitionInput> = folders
            .iter()
            .map(|folder| {
                let values = values_from_path(Path::new(""), &Path::new(folder).join("f"))
                    .into_iter()
                    .map(|(_, v)| v.unwrap_or_else(|| DEFAULT_PARTITION.into()))
                    .collect();
                let mut storage = self.storage.clone();
                storage.location = Some(format!("{}{folder}/", self.location));
                PartitionInput::builder()
                    .set_values(Some(values))
                    .storage_descriptor(storage)
                    .build()
            })
            .collect();
        runtime().block_on(async {
            for chunk in inputs.chunks(100) {
                let what = format!("table '{}': Glue BatchCreatePartition", self.sluice_table);
                let output = retry(&what, None, || {
                    let call = self
                        .client
                        .batch_create_partition()
                        .database_name(&self.options.database)
                        .table_name(&self.options.table)
                        .set_partition_input_list(Some(chunk.to_vec()));
                    async move { call.send().await.map_err(|e| Failure::of(&e)) }
                })
                .await
                .map_err(|f| {
                    Error::connector(format!(
                        "table '{}': Glue BatchCreatePartition in {}.{} failed: {}",
                        self.sluice_table,
                        self.options.database,
                        self.options.table,
                        f.describe()
                    ))
                })?;
                // Another instance (or an earlier run) may have registered it already.
                if let Some(error) = output.errors().iter().find(|e| {
                    e.error_detail()
                        .and_then(|d| d.error_code())
                        .is_some_and(|c| c != "AlreadyExistsException")
                }) {
                    return Err(Error::connector(format!(
                        "table '{}': Glue refused partition {:?}: {:?}",
                        self.sluice_table,
                        error.partition_values(),
                        error.error_detail().and_then(|d| d.error_message())
                    )));
                }
            }
            Ok(())
        })
    }
}
