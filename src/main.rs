//! aelab's binary: parse the command line, call the library, print the whole
//! error chain, exit 2 for input the user can fix, 130 when interrupted, 1 otherwise.
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // libtorch errors inside tch's infallible calls surface as panics: print them as
    // one line, like every other error, never as a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("unknown failure");
        let first = msg.lines().next().unwrap_or(msg);
        eprintln!("aelab: error: {first}");
    }));
    aelab::util::keep_freed_memory();
    let cli = aelab::cli::Cli::parse();
    let result = match std::panic::catch_unwind(|| aelab::commands::dispatch(cli)) {
        Ok(r) => r,
        Err(_) => return ExitCode::from(1), // the hook has printed it
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(i) = e.downcast_ref::<aelab::error::Interrupted>() {
                eprintln!("aelab: {i}");
                return ExitCode::from(130);
            }
            eprintln!("aelab: error: {e:#}");
            if e.chain().any(|c| c.is::<aelab::error::InputError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
