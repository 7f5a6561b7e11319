//! `sluice athena-ddl`: the `CREATE EXTERNAL TABLE` statement that makes a filesystem sink's
//! output queryable by Athena, for users who do not register tables in Glue.
//!
//! Columns keep the sink table's order, without the `PARTITIONED BY` columns (they are the
//! `col=value/` folders, not file columns), with Flink types mapped to Athena (Hive) types.
//! Partitions must then be loaded, which the output says (`MSCK REPAIR TABLE`).

use sluice_connectors::aws::glue::hive_type;
use sluice_engine::{Error, Result};

use crate::statements::{parse_job, ColumnKind, Statement, TableDef};
use crate::SourceFile;

/// The DDL of every filesystem table the job writes to, in the order of the job file.
pub fn athena_ddl(file: &SourceFile) -> Result<String> {
    let statements = parse_job(file)?;
    let written: Vec<&str> = statements
        .iter()
        .filter_map(|s| match s {
            Statement::Insert { table, .. } => Some(table.as_str()),
            _ => None,
        })
        .collect();
    let mut out = String::new();
    for statement in &statements {
        let Statement::CreateTable(table) = statement else {
            continue;
        };
        let options = table.options_map();
        if !written.contains(&table.name.as_str())
            || options.get("connector").map(String::as_str) != Some("filesystem")
        {
            continue;
        }
        out.push_str(&table_ddl(table)?);
    }
    if out.is_empty() {
        return Err(Error::plan(
            "the job writes to no filesystem table, so there is no Athena table to create",
        ));
    }
    Ok(out)
}

fn table_ddl(table: &TableDef) -> Result<String> {
    let options = table.options_map();
    let path = options.get("path").cloned().unwrap_or_default();
    let mut columns = Vec::new();
    let mut partitions = Vec::new();
    for column in &table.columns {
        let ColumnKind::Physical(data_type) = &column.kind else {
            continue;
        };
        let line = format!("`{}` {}", column.name.to_lowercase(), hive_type(data_type)?);
        if table.partition_by.contains(&column.name) {
            partitions.push((column.name.clone(), line));
        } else {
            columns.push(line);
        }
    }
    // Partition folders nest in PARTITIONED BY order.
    partitions.sort_by_key(|(name, _)| table.partition_by.iter().position(|p| p == name));
    let name = table.name.to_lowercase();
    let mut ddl = String::new();
    let location = match path
        .strip_prefix("s3a://")
        .map(|rest| format!("s3://{rest}"))
        .or_else(|| path.starts_with("s3://").then(|| path.clone()))
    {
        Some(s3) => format!("{}/", s3.trim_end_matches('/')),
        None => {
            ddl.push_str(&format!(
                "-- table '{}' writes to the local path '{path}'; Athena reads s3:// locations: \
                 copy the files to S3 and change LOCATION.\n",
                table.name
            ));
            path.clone()
        }
    };
    ddl.push_str(&format!(
        "CREATE EXTERNAL TABLE IF NOT EXISTS `{name}` (\n  {}\n)\n",
        columns.join(",\n  ")
    ));
    if !partitions.is_empty() {
        let keys: Vec<String> = partitions.into_iter().map(|(_, l)| l).collect();
        ddl.push_str(&format!("PARTITIONED BY ({})\n", keys.join(", ")));
    }
    let format = options
        .get("format")
        .map(|f| f.to_ascii_lowercase())
        .unwrap_or_default();
    ddl.push_str(match format.as_str() {
        "parquet" => "STORED AS PARQUET\n",
        "json" => "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'\nSTORED AS TEXTFILE\n",
        "csv" => "ROW FORMAT DELIMITED FIELDS TERMINATED BY ','\nSTORED AS TEXTFILE\n",
        other => {
            return Err(Error::plan(format!(
                "table '{}': format '{other}' has no Athena table format",
                table.name
            )))
        }
    });
    ddl.push_str(&format!("LOCATION '{location}'"));
    let projection = options
        .get("athena.partition-projection")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if projection && !table.partition_by.is_empty() {
        // Partition values are whatever the query computed: Athena takes them from the
        // WHERE clause ('injected'), and finds the folder from the template.
        let mut properties = vec!["'projection.enabled' = 'true'".to_string()];
        let mut template = location.clone();
        for key in &table.partition_by {
            let key = key.to_lowercase();
            properties.push(format!("'projection.{key}.type' = 'injected'"));
            template.push_str(&format!("{key}=${{{key}}}/"));
        }
        properties.push(format!("'storage.location.template' = '{template}'"));
        ddl.push_str(&format!(
            "\nTBLPROPERTIES (\n  {}\n);\n",
            properties.join(",\n  ")
        ));
        ddl.push('\n');
        return Ok(ddl);
    }
    ddl.push_str(";\n");
    if !table.partition_by.is_empty() {
        ddl.push_str(&format!(
            "-- then load the partitions written so far: MSCK REPAIR TABLE `{name}`;\n"
        ));
    }
    ddl.push('\n');
    Ok(ddl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ddl(text: &str) -> Result<String> {
        athena_ddl(&SourceFile {
            path: "job.sql".into(),
            text: text.into(),
        })
    }

    #[test]
    fn partitioned_parquet_on_s3() {
        let out = ddl("CREATE TABLE src (a BIGINT) WITH ('connector' = 'datagen');
CREATE TABLE Metrics (
  window_start TIMESTAMP(3), Currency STRING, fee DECIMAL(10, 2),
  details ROW<Kind STRING, n INT>, dt STRING, hr STRING
) PARTITIONED BY (dt, hr) WITH ('connector' = 'filesystem',
  'path' = 's3a://lake/metrics', 'format' = 'parquet');
INSERT INTO Metrics SELECT * FROM src;")
        .unwrap();
        assert_eq!(
            out,
            "CREATE EXTERNAL TABLE IF NOT EXISTS `metrics` (
  `window_start` timestamp,
  `currency` string,
  `fee` decimal(10,2),
  `details` struct<kind:string,n:int>
)
PARTITIONED BY (`dt` string, `hr` string)
STORED AS PARQUET
LOCATION 's3://lake/metrics/';
-- then load the partitions written so far: MSCK REPAIR TABLE `metrics`;

"
        );
    }

    #[test]
    fn partition_projection() {
        let out = ddl("CREATE TABLE src (a BIGINT) WITH ('connector' = 'datagen');
CREATE TABLE m (a BIGINT, dt STRING) PARTITIONED BY (dt) WITH ('connector' = 'filesystem',
  'path' = 's3://lake/m', 'format' = 'parquet', 'athena.partition-projection' = 'true');
INSERT INTO m SELECT a, 'x' FROM src;")
        .unwrap();
        assert!(
            out.ends_with(
                "LOCATION 's3://lake/m/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.dt.type' = 'injected',
  'storage.location.template' = 's3://lake/m/dt=${dt}/'
);

"
            ),
            "{out}"
        );
    }

    #[test]
    fn json_on_a_local_path_and_no_sink() {
        let out = ddl("CREATE TABLE src (a BIGINT) WITH ('connector' = 'datagen');
CREATE TABLE out (a BIGINT) WITH ('connector' = 'filesystem', 'path' = 'out/a', 'format' = 'json');
INSERT INTO out SELECT a FROM src;")
        .unwrap();
        assert!(out.starts_with("-- table 'out' writes to the local path 'out/a'"));
        assert!(out.contains("ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'"));
        let err = ddl("CREATE TABLE src (a BIGINT) WITH ('connector' = 'datagen');").unwrap_err();
        assert!(err.message().contains("writes to no filesystem table"));
    }
}
