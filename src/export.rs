//! TorchScript both ways.
//!
//! Export: aelab's Rust forward code is traced (through cpp/aelab_jit.cpp) into a
//! ScriptModule whose parameters are registered by name, so PyTorch sees an
//! ordinary module: `torch.jit.load("autoencoder.pt")(x)`, `.encode(x)`,
//! `.decode(z)`, `.state_dict()`. Traced on the CPU in evaluation mode; no shape
//! depends on the batch, so any batch size works.
//!
//! Import: parameters from a TorchScript module (scripted or traced in PyTorch, or an
//! aelab export), a safetensors file or a run directory, matched by name and shape.
use crate::error::InputError;
use crate::model::Model;
use crate::util::shim_error;
use anyhow::{anyhow, Result};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};
use torch_sys::C_tensor;

type TraceFn = unsafe extern "C" fn(*mut c_void, *mut C_tensor) -> *mut C_tensor;

extern "C" {
    fn aelab_free_str(s: *mut c_char);
    fn aelab_module_new(name: *const c_char, err: *mut *mut c_char) -> *mut c_void;
    fn aelab_module_free(m: *mut c_void);
    fn aelab_module_add_parameter(
        m: *mut c_void,
        name: *const c_char,
        t: *const C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
    fn aelab_module_trace(
        m: *mut c_void,
        method: *const c_char,
        example: *const C_tensor,
        f: TraceFn,
        ctx: *mut c_void,
        err: *mut *mut c_char,
    ) -> c_int;
    fn aelab_module_save(m: *mut c_void, path: *const c_char, err: *mut *mut c_char) -> c_int;
    fn aelab_module_methods(path: *const c_char, err: *mut *mut c_char) -> *mut c_char;
}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| anyhow!("a name contains a NUL byte: {s:?}"))
}

type Method<'a> = &'a dyn Fn(&Tensor) -> Tensor;

unsafe extern "C" fn trampoline(ctx: *mut c_void, input: *mut C_tensor) -> *mut C_tensor {
    let f = &*(ctx as *const Method);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // A new handle on the same tensor: the tracer knows it by its storage.
        let x = Tensor::from_ptr(torch_sys::at_shallow_clone(input));
        let mut out = f(&x);
        let ptr = out.as_mut_ptr();
        std::mem::forget(out);
        ptr
    }));
    result.unwrap_or(std::ptr::null_mut())
}

/// A TorchScript module under construction.
struct ScriptBuilder {
    ptr: *mut c_void,
}

impl Drop for ScriptBuilder {
    fn drop(&mut self) {
        unsafe { aelab_module_free(self.ptr) }
    }
}

impl ScriptBuilder {
    fn new(name: &str) -> Result<Self> {
        let mut err = std::ptr::null_mut();
        let ptr = unsafe { aelab_module_new(cstr(name)?.as_ptr(), &mut err) };
        if ptr.is_null() {
            return Err(shim_error(err));
        }
        Ok(ScriptBuilder { ptr })
    }

    fn parameter(&self, name: &str, t: &Tensor) -> Result<()> {
        let mut err = std::ptr::null_mut();
        if unsafe {
            aelab_module_add_parameter(self.ptr, cstr(name)?.as_ptr(), t.as_ptr(), &mut err)
        } != 0
        {
            return Err(shim_error(err).context(format!("registering parameter {name}")));
        }
        Ok(())
    }

    fn method(&self, name: &str, example: &Tensor, f: Method) -> Result<()> {
        let mut err = std::ptr::null_mut();
        let ctx = &f as *const Method as *mut c_void;
        let rc = unsafe {
            aelab_module_trace(
                self.ptr,
                cstr(name)?.as_ptr(),
                example.as_ptr(),
                trampoline,
                ctx,
                &mut err,
            )
        };
        if rc != 0 {
            return Err(shim_error(err).context(format!("tracing method {name}")));
        }
        Ok(())
    }

    fn save(&self, path: &Path) -> Result<()> {
        crate::util::write_atomic_with(path, |tmp| {
            let mut err = std::ptr::null_mut();
            let p = cstr(&tmp.to_string_lossy())?;
            if unsafe { aelab_module_save(self.ptr, p.as_ptr(), &mut err) } != 0 {
                return Err(shim_error(err));
            }
            Ok(())
        })
    }
}

/// Which methods a saved TorchScript module has.
pub fn module_methods(path: &Path) -> Result<Vec<String>> {
    let mut err = std::ptr::null_mut();
    let p = cstr(&path.to_string_lossy())?;
    let out = unsafe { aelab_module_methods(p.as_ptr(), &mut err) };
    if out.is_null() {
        let e = shim_error(err);
        return Err(InputError::new(format!(
            "{}: not a TorchScript module ({e})",
            path.display()
        ))
        .into());
    }
    let s = unsafe { CStr::from_ptr(out) }.to_string_lossy().to_string();
    unsafe { aelab_free_str(out) };
    Ok(s.lines().map(String::from).collect())
}

/// Write encoder.pt, decoder.pt and autoencoder.pt for a model on the CPU.
/// `example` is a small batch of real inputs [B, *sample].
pub fn export_torchscript(model: &Model, example: &Tensor, dir: &Path) -> Result<Vec<PathBuf>> {
    let x = example.to_device(tch::Device::Cpu).to_kind(Kind::Float);
    let params = model.named_parameters();
    let z = tch::no_grad(|| model.encode(&x));
    let encode = |x: &Tensor| model.encode(x);
    let decode = |z: &Tensor| model.decode(z);
    let forward = |x: &Tensor| model.reconstruct(x);
    let mut written = vec![];
    let files: [(&str, &str, Vec<(&str, Method, &Tensor)>); 3] = [
        (
            "encoder.pt",
            "encoder",
            vec![("forward", &encode, &x), ("encode", &encode, &x)],
        ),
        (
            "decoder.pt",
            "decoder",
            vec![("forward", &decode, &z), ("decode", &decode, &z)],
        ),
        (
            "autoencoder.pt",
            "",
            vec![
                ("forward", &forward, &x),
                ("encode", &encode, &x),
                ("decode", &decode, &z),
            ],
        ),
    ];
    for (file, prefix, methods) in files {
        let class = if prefix.is_empty() {
            "Autoencoder"
        } else if prefix == "encoder" {
            "Encoder"
        } else {
            "Decoder"
        };
        let b = ScriptBuilder::new(class)?;
        for (name, t) in &params {
            if name.starts_with(prefix) {
                b.parameter(name, t)?;
            }
        }
        tch::no_grad(|| -> Result<()> {
            for (name, f, ex) in &methods {
                b.method(name, ex, *f)?;
            }
            Ok(())
        })?;
        let path = dir.join(file);
        b.save(&path)?;
        written.push(path);
    }
    Ok(written)
}

/// Parameters stored in a file: safetensors, a run directory, or TorchScript.
pub fn read_parameters(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.exists() {
        input_err!("model.init_from: {} does not exist", path.display());
    }
    let file = if path.is_dir() {
        path.join("model.safetensors")
    } else {
        path.to_path_buf()
    };
    if path.is_dir() && !file.exists() {
        input_err!(
            "model.init_from: {} is a folder without model.safetensors (not a finished aelab run)",
            path.display()
        );
    }
    let head = std::fs::read(&file)
        .map(|b| b.into_iter().take(8).collect::<Vec<u8>>())
        .unwrap_or_default();
    let is_zip = head.starts_with(b"PK");
    if file.extension().is_some_and(|e| e == "safetensors") || !is_zip {
        return Tensor::read_safetensors(&file).map_err(|e| {
            InputError::new(format!(
                "model.init_from: {} is neither a TorchScript module nor a safetensors file ({})",
                file.display(),
                e.to_string().lines().next().unwrap_or_default()
            ))
            .into()
        });
    }
    let m = crate::model::load_module(&file, tch::Device::Cpu)?;
    Ok(m.named_parameters()?)
}

/// Copy parameters into the model, after checking every name and shape.
pub fn load_parameters(model: &Model, from: &[(String, Tensor)], source: &str) -> Result<()> {
    let mine = model.named_parameters();
    let theirs: std::collections::HashMap<&str, &Tensor> =
        from.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut missing = vec![];
    let mut shaped = vec![];
    for (n, t) in &mine {
        match theirs.get(n.as_str()) {
            None => missing.push(n.clone()),
            Some(o) if o.size() != t.size() => {
                shaped.push(format!("{n} (model {:?}, file {:?})", t.size(), o.size()))
            }
            _ => {}
        }
    }
    let unexpected: Vec<&str> = from
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| !mine.iter().any(|(m, _)| m == n))
        .collect();
    if !(missing.is_empty() && shaped.is_empty() && unexpected.is_empty()) {
        let mut msg =
            format!("model.init_from: the parameters of {source} do not match this model:");
        if !missing.is_empty() {
            msg += &format!("\n  missing: {}", missing.join(", "));
        }
        if !unexpected.is_empty() {
            msg += &format!("\n  unexpected: {}", unexpected.join(", "));
        }
        if !shaped.is_empty() {
            msg += &format!("\n  mis-shaped: {}", shaped.join(", "));
        }
        return Err(InputError::new(msg).into());
    }
    tch::no_grad(|| {
        for (n, t) in &mine {
            if let Some(o) = theirs.get(n.as_str()) {
                let mut t = t.shallow_clone();
                t.copy_(&o.to_device(t.device()).to_kind(t.kind()));
            }
        }
    });
    Ok(())
}
