//! Link settings for the `nexus` binary. On Linux with glibc 2.36 or later its relative
//! relocations are packed (`DT_RELR`): the dynamic loader reads a few kilobytes instead of a
//! table of several megabytes at every start, and that table no longer stays resident in every
//! running server. A C library that cannot read packed relocations (older glibc) is detected
//! by the symbol version it would lack, `GLIBC_ABI_DT_RELR`, and the binary is then linked as
//! before: some linkers require that version whenever they pack, whatever the C library has.

use std::path::Path;

/// Where the build machine's C library may live.
const LIBC: [&str; 4] = [
    "/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/lib64/libc.so.6",
    "/usr/lib64/libc.so.6",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    // Only for a native build: the C library read here is the one the binary will run on.
    let native = var("TARGET") == var("HOST");
    if native && var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" && libc_reads_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the C library defines the `GLIBC_ABI_DT_RELR` symbol version (glibc 2.36+).
fn libc_reads_relr() -> bool {
    let needle = b"GLIBC_ABI_DT_RELR";
    LIBC.iter().map(Path::new).filter(|path| path.is_file()).take(1).any(|path| {
        println!("cargo:rerun-if-changed={}", path.display());
        std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|window| window == needle))
    })
}
