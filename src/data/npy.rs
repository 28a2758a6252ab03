//! NumPy arrays: 2-d (tabular), 3-d (N, H, W images) or 4-d (N, C, H, W images),
//! any float or integer dtype; uint8 data is taken as images and scaled to [0, 1].
use crate::error::InputError;
use anyhow::Result;
use std::path::Path;
use tch::{Kind, Tensor};

/// Read an .npy file, turning libtorch's errors into one that names the file.
pub fn read_array(path: &Path) -> Result<Tensor> {
    let shown = path.display();
    let bytes =
        std::fs::read(path).map_err(|e| InputError::new(format!("{shown}: cannot read: {e}")))?;
    if !bytes.starts_with(b"\x93NUMPY") {
        input_err!("{shown}: not an .npy file (no \\x93NUMPY magic)");
    }
    if let Some(descr) = header_descr(&bytes) {
        let ok = ["f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1"]
            .iter()
            .any(|d| descr.ends_with(d) && !descr.starts_with('>'));
        if !ok {
            input_err!(
                "{shown}: unsupported dtype `{descr}`; use a little-endian float (f2, f4, f8) or integer (i1, i2, i4, i8, u1) array"
            );
        }
    }
    Tensor::read_npy(path)
        .map_err(|e| InputError::new(format!("{shown}: cannot read the array: {e}")).into())
}

fn header_descr(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]);
    let start = text.find("'descr':")? + 8;
    let rest = text[start..].trim_start();
    let rest = rest.strip_prefix('\'')?;
    let end = rest.find('\'')?;
    Some(rest[..end].to_string())
}

pub fn load(path: &Path, labels: Option<&Path>) -> Result<(Tensor, Option<Tensor>, Vec<i64>)> {
    let shown = path.display().to_string();
    let raw = read_array(path)?;
    let is_bytes = raw.kind() == Kind::Uint8;
    let mut x = raw.to_kind(Kind::Float);
    if is_bytes {
        x /= 255.0;
    }
    let x = match x.dim() {
        2 => x,
        3 => x.unsqueeze(1),
        4 => x,
        r => input_err!(
            "{shown}: an array of rank {r} (shape {:?}); expected 2-d (samples, features), 3-d (samples, height, width) or 4-d (samples, channels, height, width)",
            x.size()
        ),
    };
    let y = match labels {
        None => None,
        Some(lp) => {
            let y = read_array(lp)?;
            if y.is_floating_point() {
                let rounded = y.round();
                if !bool::try_from(rounded.eq_tensor(&y).all()).unwrap_or(false) {
                    input_err!("{}: labels must be whole numbers", lp.display());
                }
            }
            let y = y.to_kind(Kind::Int64);
            super::check_labels(x.size()[0], &y, &lp.display().to_string())?;
            Some(y)
        }
    };
    let shape = x.size()[1..].to_vec();
    Ok((x, y, shape))
}
