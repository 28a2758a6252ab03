//! A numeric table: one sample a row, an optional header, an optional label column.
use crate::error::InputError;
use anyhow::Result;
use std::path::Path;
use tch::{Kind, Tensor};

pub fn load(
    path: &Path,
    header: bool,
    label_column: Option<&str>,
) -> Result<(Tensor, Option<Tensor>)> {
    let shown = path.display().to_string();
    let mut rdr = ::csv::ReaderBuilder::new()
        .has_headers(header)
        .trim(::csv::Trim::All)
        .from_path(path)
        .map_err(|e| InputError::new(format!("{shown}: cannot read: {e}")))?;
    let names: Vec<String> = if header {
        rdr.headers()
            .map_err(|e| InputError::new(format!("{shown}: cannot read the header: {e}")))?
            .iter()
            .map(String::from)
            .collect()
    } else {
        vec![]
    };
    let label_idx = match label_column {
        None => None,
        Some(col) => match names.iter().position(|n| n == col) {
            Some(i) => Some(i),
            None => match col.parse::<usize>() {
                Ok(i) => Some(i),
                Err(_) => {
                    return Err(InputError::new(format!(
                        "data.label_column: `{col}` is not a column of {shown} (columns: {})",
                        names.join(", ")
                    ))
                    .into())
                }
            },
        },
    };
    let mut values: Vec<f32> = Vec::new();
    let mut labels: Vec<i64> = Vec::new();
    let mut width: Option<usize> = None;
    for (row, rec) in rdr.records().enumerate() {
        let line = row + 1 + usize::from(header);
        let rec = rec.map_err(|e| match e.kind() {
            ::csv::ErrorKind::UnequalLengths { expected_len, len, .. } => InputError::new(format!(
                "{shown}: line {line}: ragged row: {len} fields where earlier rows have {expected_len}"
            )),
            _ => InputError::new(format!("{shown}: line {line}: {e}")),
        })?;
        if rec.len() == 1 && rec.get(0) == Some("") {
            continue;
        }
        let w = *width.get_or_insert(rec.len());
        if rec.len() != w {
            input_err!(
                "{shown}: line {line}: ragged row: {} fields where earlier rows have {w}",
                rec.len()
            );
        }
        if let Some(li) = label_idx {
            if li >= w {
                input_err!(
                    "data.label_column: column {li} does not exist; {shown} has {w} columns"
                );
            }
        }
        for (c, cell) in rec.iter().enumerate() {
            let col = names.get(c).cloned().unwrap_or_else(|| format!("{}", c));
            if Some(c) == label_idx {
                let v: f64 = cell.parse().map_err(|_| {
                    InputError::new(format!(
                        "{shown}: line {line}, column `{col}`: label `{cell}` is not a number"
                    ))
                })?;
                if v.fract() != 0.0 || v < 0.0 {
                    input_err!("{shown}: line {line}, column `{col}`: label `{cell}` is not a non-negative integer");
                }
                labels.push(v as i64);
            } else {
                let v: f32 = cell.parse().map_err(|_| {
                    InputError::new(format!(
                        "{shown}: line {line}, column `{col}`: `{cell}` is not a number"
                    ))
                })?;
                values.push(v);
            }
        }
    }
    let w = width.unwrap_or(0);
    let features = w - usize::from(label_idx.is_some());
    if values.is_empty() || features == 0 {
        input_err!("{shown}: no numeric data rows");
    }
    let n = (values.len() / features) as i64;
    let x = Tensor::from_slice(&values)
        .reshape([n, features as i64])
        .to_kind(Kind::Float);
    let y = label_idx.map(|_| Tensor::from_slice(&labels));
    Ok((x, y))
}
