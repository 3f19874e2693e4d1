//! Timestamp columns as nanoseconds since the epoch, whatever their Arrow
//! type: timestamps of any unit (zoned or naive: both are read as UTC
//! instants), dates (midnight UTC) and text.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};

const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Each value in ns; `None` for nulls, unreadable text and instants beyond
/// the years 1677..2262 (what nanoseconds in an i64 can hold).
pub(crate) fn nanos(a: &ArrayRef) -> Result<Vec<Option<i64>>, String> {
    let a = crate::arrow_col::undictionary(a)?;
    let scaled = |values: &[i64], factor: i64| -> Vec<Option<i64>> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| if a.is_null(i) { None } else { v.checked_mul(factor) })
            .collect()
    };
    Ok(match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            scaled(a.as_primitive::<TimestampSecondType>().values(), 1_000_000_000)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            scaled(a.as_primitive::<TimestampMillisecondType>().values(), 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            scaled(a.as_primitive::<TimestampMicrosecondType>().values(), 1_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => scaled(a.as_primitive::<TimestampNanosecondType>().values(), 1),
        DataType::Date32 => {
            let days: Vec<i64> = a
                .as_primitive::<Date32Type>()
                .values()
                .iter()
                .map(|d| i64::from(*d))
                .collect();
            scaled(&days, NS_PER_DAY)
        }
        DataType::Date64 => scaled(a.as_primitive::<Date64Type>().values(), 1_000_000),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = arrow::compute::cast(&a, &DataType::Utf8).map_err(|e| e.to_string())?;
            let text = text.as_string::<i32>();
            (0..text.len())
                .map(|i| {
                    if text.is_null(i) {
                        return None;
                    }
                    larder_model::instant::parse_utc(text.value(i)).and_then(|d| d.timestamp_nanos_opt())
                })
                .collect()
        }
        other => return Err(format!("type {other} is not a timestamp")),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Date32Array, StringArray, TimestampMicrosecondArray};

    use super::*;

    #[test]
    fn units_zones_dates_and_text() {
        let us: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![Some(1_500_000), None]).with_timezone("UTC"));
        assert_eq!(nanos(&us).unwrap(), vec![Some(1_500_000_000), None]);
        let naive: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![1]));
        assert_eq!(nanos(&naive).unwrap(), vec![Some(1_000)]);
        let d: ArrayRef = Arc::new(Date32Array::from(vec![1]));
        assert_eq!(nanos(&d).unwrap(), vec![Some(NS_PER_DAY)]);
        let s: ArrayRef = Arc::new(StringArray::from(vec![
            Some("1970-01-01T00:00:01+0000"),
            Some("nope"),
            None,
        ]));
        assert_eq!(nanos(&s).unwrap(), vec![Some(1_000_000_000), None, None]);
        let far: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![i64::MAX / 10]));
        assert_eq!(nanos(&far).unwrap(), vec![None]);
    }
}
