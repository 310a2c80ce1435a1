//! Link settings for the `nexus` binary. On Linux with glibc its relative relocations are
//! packed (`DT_RELR`): the dynamic loader reads a few kilobytes instead of a table of several
//! megabytes at every start, and that table no longer stays resident in every running server.
//! The linker leaves them unpacked where the C library cannot read packed ones.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
