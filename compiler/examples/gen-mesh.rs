//! Writes a generated mesh for measuring whole `meshc` runs:
//! `cargo run --release -p mesh-compiler --example gen-mesh -- 10000 /tmp/mesh-10k`
//! then `/usr/bin/time -v target/release/meshc check /tmp/mesh-10k`.

use mesh_test_support::synthetic;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(count), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: gen-mesh SERVICES DIR");
        return std::process::ExitCode::from(2);
    };
    let Ok(count) = count.parse::<usize>() else {
        eprintln!("SERVICES must be a number");
        return std::process::ExitCode::from(2);
    };
    let dir = std::path::PathBuf::from(dir);
    if let Err(err) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("mesh.mesh"), synthetic::generate(count)))
    {
        eprintln!("{}: {err}", dir.display());
        return std::process::ExitCode::from(2);
    }
    std::process::ExitCode::SUCCESS
}
