//! What a crash in a process becomes: a synchronous exception taken from process code, or a
//! Rust panic there, ends that process only, with a reason that says what and where:
//! `{fault, Kind, Far, Pc}`, `stack_overflow`, `{panic, Message}`. The core goes on with the
//! next process. The same in kernel code (the kernel context, or a kernel call made by a
//! process) is a kernel bug and stops the machine as before.
//!
//! A translation fault inside the running process's stack slot, above its limit, is not a
//! crash: it maps the next stack page and resumes the faulting instruction.

use super::runtime::kill_current_from_handler;
use super::stack;
use crate::arch::exception::{ExceptionClass, ExceptionFrame, FaultInfo, FaultStatus};
use crate::msg::{Atom, Term, atom};
use crate::process::Process;
use crate::sched::scheduler::{self, KernelCall};
use core::fmt::Write;

/// What became of a synchronous exception taken at EL1t (when the process is killed, the
/// handler does not return at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The stack grew: retry the instruction.
    Resume,
    /// Kernel code faulted (a kernel call, or no process): the kernel's fatal report.
    KernelBug,
}

/// A synchronous exception taken at EL1t while a process runs.
pub fn on_synchronous(frame: &ExceptionFrame, info: &FaultInfo) -> Handled {
    let Some(current) = scheduler::current() else {
        return Handled::KernelBug;
    };
    // SAFETY: the running process's record is live.
    let process: &Process = unsafe { current.as_ref() };
    let top = process.stack_top();
    if info.class == ExceptionClass::DataAbort && stack::in_slot(top, info.far) {
        let _kernel = KernelCall::enter();
        let reason = if info.far >= process.stack_floor()
            && matches!(info.status, Some(FaultStatus::Translation { .. }))
        {
            match process.grow_stack(info.far) {
                Ok(()) => return Handled::Resume,
                Err(reason) => reason,
            }
        } else {
            Term::atom(atom::STACK_OVERFLOW)
        };
        report(process, &reason);
        kill_current_from_handler(reason);
    }
    if scheduler::in_kernel_call() {
        return Handled::KernelBug;
    }
    let _kernel = KernelCall::enter();
    let reason = Term::tuple([
        Term::atom(atom::FAULT),
        Term::atom(kind(info)),
        Term::int(info.far as i64),
        Term::int(frame.elr as i64),
    ]);
    report(process, &reason);
    kill_current_from_handler(reason)
}

/// The reason's kind atom for an exception.
fn kind(info: &FaultInfo) -> Atom {
    match (info.class, info.status) {
        (_, Some(FaultStatus::Alignment)) => atom::ALIGNMENT,
        (ExceptionClass::DataAbort, _) => atom::DATA_ABORT,
        (ExceptionClass::InstructionAbort, _) => atom::INSTRUCTION_ABORT,
        (ExceptionClass::Unknown, _) => atom::UNDEFINED_INSTRUCTION,
        (ExceptionClass::PcAlignment, _) => atom::PC_ALIGNMENT,
        (ExceptionClass::SpAlignment, _) => atom::SP_ALIGNMENT,
        (class, _) => Atom::new(class.name()),
    }
}

/// A panic in process code (outside any kernel call): the process exits with
/// `{panic, <<"message at file:line">>}`.
pub fn on_panic(info: &core::panic::PanicInfo) -> ! {
    let _kernel = KernelCall::enter();
    let mut text = heapless::String::<240>::new();
    let _ = write!(text, "{}", info.message());
    if let Some(at) = info.location() {
        let _ = write!(text, " at {}:{}", at.file(), at.line());
    }
    let reason = Term::tuple([Term::atom(atom::PANIC), Term::binary(text.as_bytes())]);
    if let Some(current) = scheduler::current() {
        // SAFETY: the running process's record is live.
        report(unsafe { current.as_ref() }, &reason);
    }
    core::mem::forget(_kernel);
    crate::process::exit(reason)
}

/// The crash report line, like the BEAM's error logger.
fn report(process: &Process, reason: &Term) {
    log::warn!(
        "process {} crashed on core {}: {}",
        process.pid(),
        crate::arch::cpu::core_index(),
        reason
    );
}
