//! Build script of the `sluice` command: keeps the optimised binary's code pages that a job
//! does not run out of its resident memory.
//!
//! A job runs 4 to 5 MB of the binary's 70 MB of machine code, spread over all of it. The
//! kernel maps a file's pages around each one touched (fault-around, and whole page-cache
//! folios), so the reference benchmark's job had 50 MB of the binary resident for it.
//! `src/link-order.txt` lists those functions (mangled, one per line, after a `#` line
//! naming the rustc that built them; `benches/run.sh link-order` writes it from real jobs of
//! a dist build under callgrind). In optimised builds this script hands it to the linker as
//! LLD's symbol ordering file: the listed functions come first, together. A name the build
//! does not define is passed over without a warning, so the list only has to be mostly
//! right. Mangled names carry a hash of the crate's build settings: they match the dist
//! profile built by the same rustc, and only partly a release build or another rustc
//! (this script warns about the latter).
//!
//! It also asks LLD to pack the binary's relative relocations (`-z pack-relative-relocs`,
//! DT_RELR): the loader reads every relocation at start, and unpacked they are 4 MB of the
//! file at 24 bytes each.
//!
//! Each option is used only if a small program links with it here (the linker is LLD, as
//! rustc's own linker is on x86-64 Linux from Rust 1.90 on), and the packed relocations only
//! if that program then runs (glibc 2.36 or later). `SLUICE_LINK_ORDER=off` leaves both
//! out; the binary works the same either way, with more of it resident.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/link-order.txt");
    println!("cargo:rerun-if-env-changed=SLUICE_LINK_ORDER");
    if env::var("PROFILE").as_deref() != Ok("release")
        || env::var("SLUICE_LINK_ORDER").as_deref() == Ok("off")
    {
        return;
    }
    let (Some(dir), Some(out)) = (env::var_os("CARGO_MANIFEST_DIR"), env::var_os("OUT_DIR")) else {
        return;
    };
    let order = Path::new(&dir).join("src/link-order.txt");
    let ordering = [
        format!("-Wl,--symbol-ordering-file={}", order.display()),
        "-Wl,--no-warn-symbol-ordering".to_string(),
    ];
    if links(Path::new(&out), &ordering, false) {
        for arg in &ordering {
            println!("cargo:rustc-link-arg-bin=sluice={arg}");
        }
        warn_if_other_rustc(&order);
    }
    let packed = ["-Wl,-z,pack-relative-relocs".to_string()];
    if links(Path::new(&out), &packed, true) {
        println!("cargo:rustc-link-arg-bin=sluice={}", packed[0]);
    }
}

/// Whether an empty program links with the linker arguments `args` for this build's target,
/// with its flags and linker, and (`run`) then runs here.
fn links(out: &Path, args: &[String], run: bool) -> bool {
    let source = out.join("link_probe.rs");
    let binary: PathBuf = out.join("link_probe");
    if fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut rustc = Command::new(rustc());
    rustc
        .arg("--edition=2021")
        .arg("-o")
        .arg(&binary)
        .arg(&source);
    if let Ok(target) = env::var("TARGET") {
        rustc.arg("--target").arg(target);
    }
    if let Ok(linker) = env::var("RUSTC_LINKER") {
        rustc.arg("-C").arg(format!("linker={linker}"));
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    rustc.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    for arg in args {
        rustc.arg("-C").arg(format!("link-arg={arg}"));
    }
    let linked = rustc.output().is_ok_and(|o| o.status.success());
    if !linked || !run {
        return linked;
    }
    env::var("HOST").ok() == env::var("TARGET").ok()
        && Command::new(&binary)
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Warns when the list was written from a build by another rustc: its names then mostly
/// differ from this build's, and the layout is mostly lost.
fn warn_if_other_rustc(order: &Path) {
    let Ok(list) = fs::read_to_string(order) else {
        return;
    };
    let written_by = list
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("# "))
        .and_then(|line| line.split(", ").next())
        .unwrap_or("an unknown rustc");
    let Ok(output) = Command::new(rustc()).arg("--version").output() else {
        return;
    };
    let this = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if this != written_by {
        println!(
            "cargo:warning=src/link-order.txt lists the functions of a build by {written_by}, \
             this is {this}: run benches/run.sh link-order to lay out this build's code"
        );
    }
}

fn rustc() -> String {
    env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string())
}
