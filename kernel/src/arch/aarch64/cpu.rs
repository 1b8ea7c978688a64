//! The current core: its logical index and identity, interrupt masking, and the wait/wake
//! instructions (WFI for idle, WFE/SEV for cross-core events).
//!
//! The logical core index lives in TPIDR_EL1, set once per core during bring-up: the boot core
//! is 0, the others are numbered in device-tree order.

use aarch64_cpu::asm;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

/// This core's logical index (0 = the boot core).
#[inline(always)]
pub fn core_index() -> usize {
    TPIDR_EL1.get() as usize
}

/// Called once per core before anything asks for [`core_index`].
pub fn set_core_index(index: usize) {
    TPIDR_EL1.set(index as u64);
}

/// MPIDR_EL1 with the RES1 and MT/U bits removed: the affinity fields only.
pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & AFFINITY_MASK
}

/// Aff3 (bits 39:32) and Aff2..Aff0 (bits 23:0).
pub const AFFINITY_MASK: u64 = 0xff_00ff_ffff;

pub fn midr() -> u64 {
    MIDR_EL1.get()
}

/// The exception level the kernel runs at now (1 after boot).
pub fn current_el() -> u8 {
    CurrentEL.read(CurrentEL::EL) as u8
}

/// Unmask IRQs on this core.
pub fn enable_irqs() {
    DAIF.modify(DAIF::I::Unmasked);
}

pub fn disable_irqs() {
    DAIF.modify(DAIF::I::Masked);
}

/// Sleep until an interrupt is pending (idle). Returns after any interrupt, taken or masked.
#[inline(always)]
pub fn wait_for_interrupt() {
    asm::wfi();
}

/// Sleep until an event (SEV from another core, an exclusive monitor clear, an interrupt).
/// WFE may return for any reason: callers re-check their condition in a loop.
#[inline(always)]
pub fn wait_for_event() {
    asm::wfe();
}

/// Wake every core waiting in WFE. Stores made before this call are visible to them first.
#[inline(always)]
pub fn send_event() {
    barrier::dsb(barrier::ISH);
    asm::sev();
}

/// Stop this core for good: interrupts masked, WFI forever.
pub fn halt() -> ! {
    DAIF.write(DAIF::D::Masked + DAIF::A::Masked + DAIF::I::Masked + DAIF::F::Masked);
    loop {
        asm::wfi();
    }
}
