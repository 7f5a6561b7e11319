//! Build script of the `sluice` command: keeps the optimised binary's code pages that a job
//! does not run out of its resident memory.
//!
//! A job runs 4 to 5 MB of the binary's 70 MB of machine code, spread over all of it. The
//! kernel maps a file's pages around each one touched (fault-around, and whole page-cache
//! folios), so the reference benchmark's job had 50 MB of the binary resident for it.
//! `src/link-order.txt` lists those functions (mangled, one per line; `benches/run.sh
//! link-order` writes it from real jobs under callgrind), and in release and dist builds this
//! script hands it to the linker, LLD, as its symbol ordering file: the listed functions come
//! first, together. A name the build does not define (code changed since the list was
//! written) is passed over without a warning; the list only has to be mostly right.
//!
//! It also asks LLD to pack the binary's relative relocations (`-z pack-relative-relocs`,
//! DT_RELR, read by glibc 2.36 and later): the loader reads every relocation at start, and
//! unpacked they are 4 MB of the file at 24 bytes each.
//!
//! LLD is rustc's linker on x86-64 Linux from Rust 1.90 on (in toolchains that ship it, as
//! rustup's do). Elsewhere, with a linker chosen by hand, or with `SLUICE_LINK_ORDER=off`,
//! nothing is added: the binary works the same, with more of it resident.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/link-order.txt");
    println!("cargo:rerun-if-env-changed=SLUICE_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    if env::var("PROFILE").as_deref() != Ok("release") || !links_with_default_lld() {
        return;
    }
    let Ok(dir) = env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = format!("{dir}/src/link-order.txt");
    println!("cargo:rustc-link-arg-bin=sluice=-Wl,--symbol-ordering-file={order}");
    println!("cargo:rustc-link-arg-bin=sluice=-Wl,--no-warn-symbol-ordering");
    println!("cargo:rustc-link-arg-bin=sluice=-Wl,-z,pack-relative-relocs");
}

/// Whether rustc links this build with its own LLD: the target is x86-64 Linux (GNU), rustc
/// is 1.90 or later and ships LLD, no linker was chosen by environment or flags, and the
/// user did not turn the ordering off.
fn links_with_default_lld() -> bool {
    if env::var("SLUICE_LINK_ORDER").as_deref() == Ok("off")
        || env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
        || env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some()
    {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker")
        || flags.contains("fuse-ld")
        || flags.contains("link-self-contained")
    {
        return false;
    }
    rustc_minor().is_some_and(|minor| minor >= 90) && rustc_ships_lld()
}

/// Whether the rustc toolchain has its own LLD (`gcc-ld/ld.lld` in its sysroot), as
/// rustup's toolchains do; a distribution's rustc built without it links with the system's
/// linker.
fn rustc_ships_lld() -> bool {
    rustc_output("--print=sysroot").is_some_and(|sysroot| {
        Path::new(sysroot.trim())
            .join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld")
            .exists()
    })
}

/// What rustc prints given `arg`.
fn rustc_output(arg: &str) -> Option<String> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let output = Command::new(rustc).arg(arg).output().ok()?;
    String::from_utf8(output.stdout).ok()
}

/// The minor version of the rustc this build uses (`rustc 1.95.0 (...)` gives 95).
fn rustc_minor() -> Option<u32> {
    let text = rustc_output("--version")?;
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    if parts.next()? != "1" {
        return None;
    }
    parts.next()?.parse().ok()
}
