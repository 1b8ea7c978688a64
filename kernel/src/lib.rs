//! The kernel library: everything the demo image (`src/main.rs`) and the on-target test kernel
//! (`tests/`) are built from.
//!
//! Two kinds of code live here, kept apart (see ../shared/DESIGN.md):
//! - portable logic (`devicetree`, `bootargs`, `mem::page_table`, `mem::regions`, `mem::frames`,
//!   `sync`): no `asm!`, no MMIO; compiled and unit-tested on the host too;
//! - machine code (`arch`, `platform`, `boot`, and everything that needs them): built only for
//!   `aarch64-unknown-none` and tested on target in QEMU.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod bootargs;
pub mod devicetree;
pub mod mem;
pub mod msg;
pub mod process;
pub mod sched;
pub mod sync;
pub mod time;

#[cfg(test)]
mod test_rng;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod platform;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
pub mod testing;

/// The most cores the kernel brings up (boot stacks and per-core data are sized by it).
/// M1 Ultra has 20; QEMU virt with GICv2 at most 8.
pub const MAX_CORES: usize = 32;

/// A panic in kernel code is a kernel bug: report what and where, let a running test record
/// its failure, and stop. A panic in process code ends that process only.
#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // In process code (not in a kernel call) a panic ends that process only.
    if sched::scheduler::current_outside_kernel().is_some() {
        process::fault::on_panic(info);
    }
    let core = arch::cpu::core_index();
    match info.location() {
        Some(at) => boot::die(format_args!(
            "panic on core {core} at {}:{}: {}",
            at.file(),
            at.line(),
            info.message()
        )),
        None => boot::die(format_args!("panic on core {core}: {}", info.message())),
    }
}
