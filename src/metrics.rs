//! metrics.csv (one row an epoch) and the one-line epoch summary.
use anyhow::{Context, Result};
use std::path::Path;

/// One epoch's figures, in column order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub cols: Vec<(String, f64)>,
}

impl Row {
    pub fn new() -> Row {
        Row::default()
    }
    pub fn push(&mut self, k: &str, v: f64) {
        self.cols.push((k.to_string(), v));
    }
    pub fn get(&self, k: &str) -> Option<f64> {
        self.cols.iter().find(|(n, _)| n == k).map(|(_, v)| *v)
    }
}

pub fn to_csv(rows: &[Row]) -> String {
    let Some(first) = rows.first() else {
        return String::new();
    };
    let mut s = first
        .cols
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(",");
    s.push('\n');
    for r in rows {
        let line: Vec<String> = r
            .cols
            .iter()
            .map(|(k, v)| {
                if k == "epoch" {
                    format!("{v}")
                } else {
                    format!("{v:e}")
                }
            })
            .collect();
        s += &line.join(",");
        s.push('\n');
    }
    s
}

pub fn from_csv(text: &str) -> Result<Vec<Row>> {
    let mut lines = text.lines();
    let Some(head) = lines.next() else {
        return Ok(vec![]);
    };
    let names: Vec<&str> = head.split(',').collect();
    let mut rows = vec![];
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut r = Row::new();
        for (k, v) in names.iter().zip(line.split(',')) {
            let v: f64 = v
                .trim()
                .parse()
                .with_context(|| format!("metrics line {}: `{v}` is not a number", i + 2))?;
            r.push(k, v);
        }
        rows.push(r);
    }
    Ok(rows)
}

pub fn write_csv(path: &Path, rows: &[Row]) -> Result<()> {
    crate::util::write_atomic(path, to_csv(rows).as_bytes())
}

pub fn read_csv(path: &Path) -> Result<Vec<Row>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    from_csv(&text).with_context(|| format!("in {}", path.display()))
}

/// `epoch  3/20  train 0.27121  val 0.27012  mse 0.012340  lr 1.0e-3  4.1 s  14632 samples/s`
pub fn epoch_line(r: &Row, epochs: i64) -> String {
    let g = |k: &str| r.get(k).unwrap_or(f64::NAN);
    let mut s = format!(
        "epoch {:>3}/{epochs}  train {:.5}  val {:.5}  mse {:.6}",
        g("epoch") as i64,
        g("train_loss"),
        g("val_loss"),
        g("val_mse")
    );
    for (k, v) in &r.cols {
        if let Some(t) = k
            .strip_prefix("val_")
            .filter(|t| !["loss", "mse"].contains(t))
        {
            s += &format!("  {t} {v:.4}");
        }
    }
    if let Some(v) = r.get("noisy_mse") {
        s += &format!("  noisy-input mse {v:.5}");
    }
    s += &format!(
        "  lr {:.1e}  {:.1} s  {:.0} samples/s",
        g("lr"),
        g("seconds"),
        g("samples_per_s")
    );
    s
}
