//! Links the test kernel with the shared linker script.
fn main() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../linker/kernel.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=../boot/entry.s");
}
