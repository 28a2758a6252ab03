//! Small helpers shared by every stage: atomic file writes, device choice, and the
//! error messages of the C++ shims (cpp/).
use crate::config::DeviceSpec;
use crate::error::InputError;
use anyhow::{Context, Result};
use std::ffi::{c_char, CStr};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::Device;

extern "C" {
    fn aelab_free_str(s: *mut c_char);
}

/// The error a C++ shim function (cpp/) reported through its `char** err`: the
/// first line of libtorch's message (the rest is a C++ backtrace). Frees the string.
pub fn shim_error(err: *mut c_char) -> anyhow::Error {
    if err.is_null() {
        return anyhow::anyhow!("unknown libtorch error");
    }
    // SAFETY: err was allocated by the shim with malloc and is NUL-terminated.
    let msg = unsafe { CStr::from_ptr(err) }.to_string_lossy().to_string();
    unsafe { aelab_free_str(err) };
    anyhow::anyhow!("{}", msg.lines().next().unwrap_or_default())
}

/// A temporary name beside `path` that keeps its extension (tch picks formats by it).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".tmp-{}-{name}", std::process::id()))
}

/// Write through a temporary file and rename it into place, so an interrupted
/// write never leaves a torn file under the final name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

/// Let `write` produce the file at a temporary path, then rename it into place.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    match write(&tmp).and_then(|_| {
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename into {}", path.display()))
    }) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e.context(format!("cannot write {}", path.display())))
        }
    }
}

/// Resolve the experiment's `device:` to a libtorch device, saying why.
pub fn choose_device(spec: DeviceSpec) -> Result<(Device, String)> {
    match spec {
        DeviceSpec::Cpu => Ok((Device::Cpu, "cpu".into())),
        DeviceSpec::Auto => {
            if tch::Cuda::is_available() {
                Ok((Device::Cuda(0), "cuda:0 (device: auto found CUDA)".into()))
            } else {
                Ok((
                    Device::Cpu,
                    "cpu (device: auto found no CUDA device)".into(),
                ))
            }
        }
        DeviceSpec::Cuda(n) => {
            let count = tch::Cuda::device_count() as usize;
            if count == 0 {
                return Err(InputError::new(
                    "device: cuda was asked for, but CUDA is not available (no GPU, no driver, or a CPU-only libtorch); use device: auto or cpu",
                )
                .into());
            }
            if n >= count {
                return Err(InputError::new(format!(
                    "device: cuda:{n} was asked for, but only {count} CUDA device(s) exist"
                ))
                .into());
            }
            Ok((Device::Cuda(n), format!("cuda:{n}")))
        }
    }
}

pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(n) => format!("cuda:{n}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// The libtorch version aelab was built against (read by build.rs).
pub fn libtorch_version() -> &'static str {
    env!("AELAB_LIBTORCH_VERSION")
}

/// Seed libtorch for one step of one epoch: the random state is a function of
/// (seed, epoch, step) alone, so a resumed run draws the same numbers.
pub fn seed_for(seed: u64, epoch: i64, step: i64) -> i64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [epoch as u64, step as u64] {
        h = (h ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h ^= h >> 31;
    }
    (h >> 1) as i64
}

/// Peak resident memory of this process in MiB (Linux; None elsewhere).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Keep freed tensor memory in the process instead of handing it back to the
/// kernel after every step. glibc serves large blocks with mmap and trims the heap
/// eagerly, so each step's activations would otherwise arrive as fresh pages that
/// fault in one by one (a third of a CPU convolution run's time went there).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 32 << 20);
            mallopt(M_TRIM_THRESHOLD, 1 << 30);
        }
    }
}
