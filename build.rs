//! Link aelab against libtorch so that the binary needs no LD_LIBRARY_PATH and
//! really loads libtorch's CUDA library when there is one, and compile the small
//! C++ shim (cpp/aelab_jit.cpp) that traces aelab's models into TorchScript, and
//! the fused training kernels (cpp/aelab_kernels.cpp).
//!
//! torch-sys finds libtorch (LIBTORCH, or LIBTORCH_USE_PYTORCH=1 with a Python
//! that has torch) and hands its lib folder to us as DEP_TCH_LIBTORCH_LIB.
use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=cpp/aelab_jit.cpp");
    println!("cargo:rerun-if-changed=cpp/aelab_kernels.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let Ok(lib) = env::var("DEP_TCH_LIBTORCH_LIB") else {
        // torch-sys failed earlier with its own message; nothing more to add.
        println!("cargo:rustc-env=AELAB_LIBTORCH_VERSION=unknown");
        return;
    };
    let lib = PathBuf::from(lib);
    let root = lib
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| lib.clone());
    println!(
        "cargo:rustc-env=AELAB_LIBTORCH_VERSION={}",
        libtorch_version(&root)
    );
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".to_string());

    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .flag("-O3")
        .file("cpp/aelab_jit.cpp")
        .file("cpp/aelab_kernels.cpp")
        .compile("aelab_jit");

    // The run-time search path, so `aelab` starts without LD_LIBRARY_PATH.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // Keep libtorch.so (and through it libtorch_cuda.so) as a real dependency even
    // though no symbol is used from it directly; otherwise the linker drops it and
    // CUDA is never registered, so Cuda::is_available() is false on a GPU machine.
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    println!("cargo:rustc-link-arg=-ltorch");
    for cuda in ["libtorch_cuda.so", "libc10_cuda.so"] {
        if lib.join(cuda).exists() {
            let name = cuda.trim_start_matches("lib").trim_end_matches(".so");
            println!("cargo:rustc-link-arg=-l{name}");
        }
    }
}

/// libtorch's version: `build-version` in a libtorch zip, `version.py` in a torch wheel.
fn libtorch_version(root: &std::path::Path) -> String {
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return v.trim().to_string();
    }
    if let Ok(py) = std::fs::read_to_string(root.join("version.py")) {
        for line in py.lines() {
            if let Some(rest) = line.strip_prefix("__version__") {
                let v = rest.trim_start_matches([' ', '=', ':']).trim();
                let v = v.rsplit('=').next().unwrap_or(v).trim();
                return v.trim_matches(['\'', '"']).to_string();
            }
        }
    }
    "unknown".to_string()
}
