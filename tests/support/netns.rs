//! Network namespaces the tests make themselves, standing in for hosts: iproute2 calls, a
//! program started inside one, and the set of namespaces deleted when dropped.

use std::process::{Command, Stdio};

/// Runs `ip args..`; the error is its stderr (or why it could not run).
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `ip netns exec <ns> <program>`: the program runs in that namespace (same pid).
pub fn exec(ns: &str, program: &std::path::Path) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns]).arg(program);
    cmd
}

/// Namespaces made so far, deleted in reverse order when dropped (also when a test fails).
#[derive(Default)]
pub struct Namespaces {
    created: Vec<String>,
}

impl Namespaces {
    /// Makes namespace `name` (`ip netns add`).
    pub fn add(&mut self, name: &str) -> Result<(), String> {
        ip(&["netns", "add", name])?;
        self.created.push(name.to_owned());
        Ok(())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            if let Err(e) = ip(&["netns", "delete", &ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}
