//! `mailsim check PATH...` (issue #14 item 4): loads every scenario file with the loader
//! `run` uses — parse, references between sections, addresses, the server config, key
//! files — without building a world, and prints each error as `file:line:col: message`
//! (the shape editors and CI annotations jump to). Exit 0 all valid, 1 some invalid, 2
//! no files.

use std::path::PathBuf;
use std::process::ExitCode;

pub fn main(paths: Vec<PathBuf>) -> ExitCode {
    let files = match crate::scenario_files(paths) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let mut invalid = 0;
    for (path, name) in &files {
        match mailsim::scenario::load(path, name.clone()) {
            Ok(_) => println!("ok    {}", path.display()),
            Err(e) => {
                invalid += 1;
                println!("{e}");
            }
        }
    }
    println!("{} files checked, {invalid} invalid", files.len());
    if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
