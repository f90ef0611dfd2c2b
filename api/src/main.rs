//! Writes the public-API listings `api/<crate>.txt` of the published crates from their
//! sources. Run it after changing a public item, and commit the listings with the change:
//! `cargo run -p discoverable-public-api`.

use std::process::ExitCode;

use discoverable_public_api::{CRATES, listing, listing_path, workspace_root};

fn main() -> ExitCode {
    let root = workspace_root();
    for (package, dir) in CRATES {
        match listing(package, &root.join(dir)) {
            Ok(text) => {
                let path = listing_path(package);
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
                println!("wrote {}", path.display());
            }
            Err(e) => {
                eprintln!("cannot list the API of {package}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
