//! Data-cache maintenance by virtual address, for the few places where memory is observed with
//! the MMU or caches off: data a secondary core reads before its MMU is on (clean to PoC), and
//! the boot core's image before it turns its caches on (invalidate stale lines).

use aarch64_cpu::asm::barrier;

fn line_size() -> usize {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 (cache type) has no side effects; aarch64-cpu lacks it.
    unsafe { core::arch::asm!("mrs {0}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    // CTR_EL0.DminLine: log2 of the number of words in the smallest data cache line.
    4 << ((ctr >> 16) & 0xf)
}

fn for_each_line(start: usize, len: usize, op: impl Fn(usize)) {
    let line = line_size();
    let mut addr = start & !(line - 1);
    while addr < start + len {
        op(addr);
        addr += line;
    }
    barrier::dsb(barrier::SY);
}

/// Clean [start, start+len) to the point of coherency.
pub fn clean_to_poc(start: usize, len: usize) {
    // SAFETY: cleaning writes back dirty lines; it never changes the memory's contents.
    for_each_line(start, len, |a| unsafe {
        core::arch::asm!("dc cvac, {0}", in(reg) a)
    });
}

/// Invalidate [start, start+len) to the point of coherency.
///
/// # Safety
/// Discards any dirty lines in the range: only for memory whose up-to-date contents are
/// already in RAM (written with the caches off).
pub unsafe fn invalidate_to_poc(start: usize, len: usize) {
    // SAFETY: forwarded to the caller.
    for_each_line(start, len, |a| unsafe {
        core::arch::asm!("dc ivac, {0}", in(reg) a)
    });
}
