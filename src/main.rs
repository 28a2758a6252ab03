//! aelab's binary: parse the command line, call the library, print the whole
//! error chain, exit 2 for input the user can fix, 130 when interrupted, 1 otherwise.
use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = aelab::cli::Cli::parse();
    match aelab::commands::dispatch(cli) {
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
