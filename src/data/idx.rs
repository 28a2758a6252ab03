//! MNIST's idx format (gzip or raw): big-endian magic 0x0000_08_NN where 08 means
//! unsigned bytes and NN the number of dimensions, then NN big-endian u32 sizes,
//! then the data.
use super::Dataset;
use crate::config::Validation;
use crate::error::InputError;
use anyhow::Result;
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Read one idx file into a uint8 tensor of its stored shape.
pub fn read_idx(path: &Path) -> Result<Tensor> {
    let shown = path.display();
    let raw =
        std::fs::read(path).map_err(|e| InputError::new(format!("{shown}: cannot read: {e}")))?;
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| {
                InputError::new(format!("{shown}: gzip data is damaged or truncated: {e}"))
            })?;
        out
    } else {
        raw
    };
    if bytes.len() < 4
        || bytes[0] != 0
        || bytes[1] != 0
        || bytes[2] != 0x08
        || !(1..=4).contains(&bytes[3])
    {
        let magic: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(InputError::new(format!(
            "{shown}: not an idx file of unsigned bytes: magic number is {} (expected 00 00 08 01..04)",
            magic.join(" ")
        ))
        .into());
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(InputError::new(format!("{shown}: truncated idx header")).into());
    }
    let dims: Vec<i64> = (0..ndim)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64
        })
        .collect();
    let expected: i64 = dims.iter().product();
    let have = (bytes.len() - header) as i64;
    if have != expected {
        return Err(InputError::new(format!(
            "{shown}: truncated or padded idx file: header says {dims:?} = {expected} bytes of data, file has {have}"
        ))
        .into());
    }
    let t = Tensor::from_slice(&bytes[header..]).reshape(&dims);
    drop(bytes);
    Ok(t)
}

/// Find `<stem>` in the folder, gzip or raw, with either usual spelling.
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    for name in [stem.to_string(), dotted] {
        for ext in ["", ".gz"] {
            let p = dir.join(format!("{name}{ext}"));
            if p.exists() {
                return Ok(p);
            }
        }
    }
    Err(InputError::new(format!(
        "data.path: {} has no {stem} or {stem}.gz (an MNIST-format folder holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)",
        dir.display()
    ))
    .into())
}

fn images_and_labels(dir: &Path, prefix: &str) -> Result<(Tensor, Tensor)> {
    let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx(&ip)?;
    let labels = read_idx(&lp)?;
    if images.dim() != 3 {
        return Err(InputError::new(format!(
            "{}: expected images of shape [N, H, W], got {:?}",
            ip.display(),
            images.size()
        ))
        .into());
    }
    super::check_labels(images.size()[0], &labels, &lp.display().to_string())?;
    // [N, H, W] u8 → [N, 1, H, W] f32 in [0, 1]
    let mut x = images.unsqueeze(1).to_kind(Kind::Float);
    drop(images);
    let _ = x.g_div_scalar_(255.0);
    Ok((x, labels.to_kind(Kind::Int64)))
}

pub fn load(dir: &Path, validation: Validation, seed: u64) -> Result<Dataset> {
    if !dir.is_dir() {
        return Err(InputError::new(format!(
            "data.path: {} is not a folder of idx files",
            dir.display()
        ))
        .into());
    }
    let (x, y) = images_and_labels(dir, "train")?;
    let description = format!("idx {}", dir.display());
    match validation {
        Validation::Test => {
            let (vx, vy) = images_and_labels(dir, "t10k")?;
            let sample_shape = x.size()[1..].to_vec();
            Ok(Dataset {
                train_x: x,
                train_y: Some(y),
                val_x: vx,
                val_y: Some(vy),
                sample_shape,
                class_names: None,
                description,
            })
        }
        v => super::split(x, Some(y), vec![], v, seed, description),
    }
}
