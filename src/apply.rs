//! `aelab encode | decode | reconstruct`: apply a trained model to new data, from a
//! run directory or from any TorchScript module that has the method asked for.
use crate::error::InputError;
use crate::model::Model;
use anyhow::Result;
use std::path::Path;
use tch::{CModule, Device, Kind, Tensor};

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Op {
    Encode,
    Decode,
    Reconstruct,
}

enum Source {
    Run(Model),
    Script(CModule),
}

fn read_input(path: &Path) -> Result<Tensor> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if !path.exists() {
        input_err!("--input: {} does not exist", path.display());
    }
    match ext.as_str() {
        "npy" => {
            let t = crate::data::read_array(path)?;
            let is_bytes = t.kind() == Kind::Uint8;
            let t = t.to_kind(Kind::Float);
            Ok(if is_bytes { t / 255.0 } else { t })
        }
        "csv" => {
            let text = std::fs::read_to_string(path)?;
            let mut rows: Vec<Vec<f32>> = vec![];
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let cells: Result<Vec<f32>, _> =
                    line.split(',').map(|c| c.trim().parse::<f32>()).collect();
                match cells {
                    Ok(r) => rows.push(r),
                    Err(_) if i == 0 => continue, // a header
                    Err(_) => input_err!(
                        "{}: line {}: not all cells are numbers",
                        path.display(),
                        i + 1
                    ),
                }
            }
            let w = rows.first().map(|r| r.len()).unwrap_or(0);
            if w == 0 || rows.iter().any(|r| r.len() != w) {
                input_err!(
                    "{}: expected a table of numbers with the same number of cells in every row",
                    path.display()
                );
            }
            let flat: Vec<f32> = rows.concat();
            Ok(Tensor::from_slice(&flat).view([rows.len() as i64, w as i64]))
        }
        "yaml" | "yml" => {
            let exp = crate::config::load(path, &[])?;
            Ok(crate::data::load(&exp, path.parent())?.val_x)
        }
        _ => input_err!(
            "--input: {} should be .npy, .csv or an experiment .yaml",
            path.display()
        ),
    }
}

fn write_output(path: &Path, t: &Tensor) -> Result<()> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
    match ext.as_str() {
        "npy" => crate::run::write_npy(path, &t)?,
        "csv" => {
            let flat = t.flatten(1, -1);
            let w = flat.size()[1] as usize;
            let v = Vec::<f32>::try_from(&flat.view([-1]))?;
            let mut s = String::new();
            for row in v.chunks(w.max(1)) {
                s += &row
                    .iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",");
                s.push('\n');
            }
            crate::util::write_atomic(path, s.as_bytes())?;
        }
        _ => input_err!("--output: {} should end in .npy or .csv", path.display()),
    }
    Ok(())
}

pub fn apply(op: Op, model: &Path, input: &Path, output: &Path) -> Result<()> {
    if !model.exists() {
        input_err!("--model: {} does not exist", model.display());
    }
    let src = if model.is_dir() {
        Source::Run(crate::run::load_run(model)?.1)
    } else {
        let methods = crate::export::module_methods(model)?;
        let need = match op {
            Op::Encode => "encode",
            Op::Decode => "decode",
            Op::Reconstruct => "forward",
        };
        if !methods.iter().any(|m| m == need) {
            input_err!(
                "--model: {} has no `{need}` method (it has: {}); aelab's autoencoder.pt has forward, encode and decode",
                model.display(),
                methods.join(", ")
            );
        }
        Source::Script(crate::model::load_module(model, Device::Cpu)?)
    };
    let mut x = read_input(input)?;
    let out = tch::no_grad(|| -> Result<Tensor> {
        Ok(match &src {
            Source::Run(m) => {
                if op != Op::Decode {
                    let per: i64 = m.sample_shape.iter().product();
                    let n = x.size()[0];
                    if x.numel() as i64 != n * per {
                        input_err!("--input: samples of shape {:?} do not fit this model, which takes {:?}", &x.size()[1..], m.sample_shape);
                    }
                    let mut shape = vec![n];
                    shape.extend_from_slice(&m.sample_shape);
                    x = x.reshape(&shape);
                } else if x.dim() != 2 || x.size()[1] != m.latent {
                    input_err!(
                        "--input: codes of shape {:?}; this model's codes are [N, {}]",
                        x.size(),
                        m.latent
                    );
                }
                match op {
                    Op::Encode => m.encode(&x),
                    Op::Decode => m.decode(&x),
                    Op::Reconstruct => m.reconstruct(&x),
                }
            }
            Source::Script(c) => {
                if op != Op::Decode && x.dim() == 3 {
                    x = x.unsqueeze(1);
                }
                let name = match op {
                    Op::Encode => "encode",
                    Op::Decode => "decode",
                    Op::Reconstruct => "forward",
                };
                c.method_ts(name, &[&x]).map_err(|e| {
                    InputError::new(format!(
                        "{}: `{name}` failed on input of shape {:?}: {}",
                        model.display(),
                        x.size(),
                        e.to_string().lines().next().unwrap_or_default()
                    ))
                })?
            }
        })
    })?;
    write_output(output, &out)?;
    println!("wrote {} (shape {:?})", output.display(), out.size());
    Ok(())
}
