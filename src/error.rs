//! Errors the user can fix by changing their input. `main` maps them to exit code 2;
//! every other error exits with 1, an interrupted run with 130.
use std::fmt;

#[derive(Debug)]
pub struct InputError(pub String);

impl InputError {
    pub fn new(msg: impl Into<String>) -> Self {
        InputError(msg.into())
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// Training stopped by SIGINT/SIGTERM after writing a checkpoint.
#[derive(Debug)]
pub struct Interrupted(pub String);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Return early with an [`InputError`].
#[macro_export]
macro_rules! input_err {
    ($($arg:tt)*) => {
        return Err($crate::error::InputError::new(format!($($arg)*)).into())
    };
}
