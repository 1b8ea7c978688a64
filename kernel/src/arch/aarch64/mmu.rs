//! Turning the MMU on and keeping the TLBs honest. The tables themselves are built by the
//! portable `mem::page_table`; this file only loads registers and issues barriers.

use super::boot::SecondaryMmuConfig;
use crate::mem::page_table::{MAIR_VALUE, tcr_value};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

/// SCTLR_EL1 with the MMU, data and instruction caches and SP alignment checks on; RES1 bits
/// set; alignment checks (A) off because Normal memory permits unaligned access; WXN off
/// because W^X is enforced by the tables themselves.
const SCTLR_MMU_ON: u64 = 0x30d0_0800 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12);

/// The register values every core loads to use the tables rooted at `ttbr0`.
pub fn configuration(ttbr0: u64) -> SecondaryMmuConfig {
    let pa_range = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange);
    SecondaryMmuConfig {
        mair: MAIR_VALUE,
        tcr: tcr_value(pa_range),
        ttbr0,
        sctlr: SCTLR_MMU_ON,
    }
}

/// Load `config` and turn the MMU and caches on.
///
/// # Safety
/// The tables must identity-map the code running now, its stack and everything it touches
/// next, and must already be visible to the table walker (written before a `dsb`).
pub unsafe fn enable(config: &SecondaryMmuConfig) {
    MAIR_EL1.set(config.mair);
    TCR_EL1.set(config.tcr);
    TTBR0_EL1.set(config.ttbr0);
    barrier::isb(barrier::SY);
    // SAFETY: discarding TLB entries and the instruction cache is always allowed.
    unsafe { core::arch::asm!("tlbi vmalle1", "ic iallu", "dsb nsh", "isb") };
    SCTLR_EL1.set(config.sctlr);
    barrier::isb(barrier::SY);
}

/// Make new entries (written over invalid ones) visible to the table walkers of all cores.
/// Invalid entries are never cached in a TLB, so no invalidation is needed.
pub fn publish_new_entries() {
    barrier::dsb(barrier::ISHST);
    barrier::isb(barrier::SY);
}

/// Remove the translation of the page at `va` from every core's TLB: required after
/// unmapping or changing a valid entry, before its frame is reused.
pub fn invalidate_page(va: u64) {
    barrier::dsb(barrier::ISHST);
    // SAFETY: TLB invalidation has no effect beyond forcing later walks.
    unsafe { core::arch::asm!("tlbi vae1is, {0}", in(reg) va >> 12) };
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
}
