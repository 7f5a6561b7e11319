//! Grouping keys of the keyed operators (OVER, SESSION) as `arrow::row` rows: the hash map
//! key of their per-key state, turned back into columns for their output and state tables.
//! Without grouping keys every row has the same key, one constant column that never leaves
//! the operator.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::datatypes::{DataType, Field};
use arrow::row::{OwnedRow, RowConverter, Rows, SortField};

use crate::error::Result;

pub(crate) struct KeyCodec {
    converter: RowConverter,
    keyless: bool,
}

impl KeyCodec {
    pub(crate) fn new(key_fields: &[Field]) -> Result<Self> {
        let keyless = key_fields.is_empty();
        let types = if keyless {
            vec![SortField::new(DataType::Boolean)]
        } else {
            key_fields
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect()
        };
        Ok(Self {
            converter: RowConverter::new(types)?,
            keyless,
        })
    }

    /// The keys of `num_rows` rows from their key columns (none without keys).
    pub(crate) fn rows(&self, columns: &[ArrayRef], num_rows: usize) -> Result<Rows> {
        if self.keyless {
            let constant: ArrayRef = Arc::new(BooleanArray::from(vec![true; num_rows]));
            return Ok(self.converter.convert_columns(&[constant])?);
        }
        Ok(self.converter.convert_columns(columns)?)
    }

    /// The key columns of `keys`, in order (no columns without keys).
    pub(crate) fn columns<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a OwnedRow>,
    ) -> Result<Vec<ArrayRef>> {
        if self.keyless {
            return Ok(Vec::new());
        }
        Ok(self
            .converter
            .convert_rows(keys.into_iter().map(|k| k.row()))?)
    }
}
