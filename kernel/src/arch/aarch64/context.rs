//! Context switching (context.s): the two kinds of saved process state and the calls that
//! move a core from one context to another. Policy (which context runs next) is the
//! scheduler's; this file only knows how.
//!
//! - A **voluntary** context was saved by [`switch`] inside a kernel call (yield, exit of
//!   the previous process, later receive): only the callee-saved registers, 160 bytes.
//! - A **forced** context was saved by the timer interrupt: the full 800-byte
//!   [`ExceptionFrame`], copied onto the process's own stack.
//! - The per-core **kernel context** (boot, idle loop, test harness) is a voluntary context
//!   on SP_EL1.

use super::exception::ExceptionFrame;

/// What a saved stack pointer points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Saved {
    /// A callee-saved block on a process stack (EL1t).
    Voluntary = 0,
    /// The kernel context's callee-saved block (EL1h).
    Kernel = 1,
    /// A full exception frame on a process stack.
    Forced = 2,
}

/// Bytes of a voluntary block.
pub const VOLUNTARY_SIZE: usize = 160;
/// Bytes of a forced frame.
pub const FORCED_SIZE: usize = core::mem::size_of::<ExceptionFrame>();

core::arch::global_asm!(include_str!("context.s"));

unsafe extern "C" {
    fn context_switch(save: *mut u64, sp: u64, kind: Saved, kernel_sp: *const u64);
    fn context_resume(_unused: u64, sp: u64, kind: Saved, kernel_sp: *const u64) -> !;
    fn call_on_kernel_stack(arg: usize, f: extern "C" fn(usize) -> !, kernel_sp: *const u64) -> !;
    /// Where a new process's initial voluntary block returns to.
    pub fn process_trampoline();
}

/// Save the running context as voluntary (its stack pointer into `*save`) and resume
/// `(sp, kind)`. Returns when the saved context is resumed.
///
/// # Safety
/// IRQs masked. `(sp, kind)` is a context saved by this module (or built by
/// [`initial_block`]) that nothing else will resume, `kernel_sp` is this core's kernel
/// context slot, and `save` stays valid until this context is resumed.
#[inline(always)]
pub unsafe fn switch(save: *mut u64, sp: u64, kind: Saved, kernel_sp: *const u64) {
    // SAFETY: per the caller.
    unsafe { context_switch(save, sp, kind, kernel_sp) }
}

/// Resume `(sp, kind)`, abandoning whatever runs now (an exception handler's frames, or the
/// kernel stack of an exiting process).
///
/// # Safety
/// As for [`switch`]; nothing of the current context may be needed again.
pub unsafe fn resume(sp: u64, kind: Saved, kernel_sp: *const u64) -> ! {
    // SAFETY: per the caller.
    unsafe { context_resume(0, sp, kind, kernel_sp) }
}

/// Call `f(arg)` on the kernel context's resting stack (SP_EL1), leaving the current stack
/// for good.
///
/// # Safety
/// A process is running (so the kernel context is saved at `*kernel_sp`), IRQs masked.
pub unsafe fn run_on_kernel_stack(
    arg: usize,
    f: extern "C" fn(usize) -> !,
    kernel_sp: *const u64,
) -> ! {
    // SAFETY: per the caller.
    unsafe { call_on_kernel_stack(arg, f, kernel_sp) }
}

/// Write a new process's first voluntary block just below `stack_top` (16-byte aligned) and
/// return the stack pointer to save: resuming it enters `process_start(arg)` through the
/// trampoline.
///
/// # Safety
/// `[stack_top - VOLUNTARY_SIZE, stack_top)` is mapped, writable and owned by the caller.
pub unsafe fn initial_block(stack_top: u64, arg: u64) -> u64 {
    let sp = (stack_top & !15) - VOLUNTARY_SIZE as u64;
    let block = sp as *mut u64;
    // SAFETY: per the caller; 20 words = 160 bytes. x19 (slot 0) carries the argument, x30
    // (slot 11) the trampoline; the rest start at zero.
    unsafe {
        core::ptr::write_bytes(block, 0, VOLUNTARY_SIZE / 8);
        block.write(arg);
        block.add(11).write(process_trampoline as *const () as u64);
    }
    sp
}

/// Copy the exception frame `frame` onto the interrupted process's stack, just below its
/// stack pointer, and return the address to save as a [`Saved::Forced`] context.
///
/// # Safety
/// `frame` was taken from EL1t; `[frame.sp_el0 - FORCED_SIZE - 15, frame.sp_el0)` is mapped
/// and writable.
pub unsafe fn save_forced(frame: &ExceptionFrame) -> u64 {
    let at = (frame.sp_el0 - FORCED_SIZE as u64) & !15;
    // SAFETY: per the caller; the areas cannot overlap (one is on SP_EL1, one on SP_EL0).
    unsafe {
        core::ptr::copy_nonoverlapping(
            frame as *const ExceptionFrame as *const u8,
            at as *mut u8,
            FORCED_SIZE,
        )
    };
    at
}

/// The lowest address [`save_forced`] writes for a process interrupted with `sp_el0`.
pub fn forced_low_water(sp_el0: u64) -> u64 {
    (sp_el0 - FORCED_SIZE as u64) & !15
}
