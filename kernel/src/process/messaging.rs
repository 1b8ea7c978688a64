//! The Erlang API a process uses to talk and to fail together: send and selective receive
//! with timeouts, sleep, links and exit signals, monitors, trapping exits.
//!
//! Every call here is made by a process about itself (the kernel context has no mailbox).
//! The mechanics (envelopes, delivery, how signals are applied) are in `signals`.

use super::registry::{self, RegistryError};
use super::runtime::{self, Process, SpawnError, SpawnOpts};
use super::signals::{self, DeliveryError};
use super::timers;
use super::{ExitReason, Pid};
use crate::msg::envelope::{ExitKind, Signal};
use crate::msg::{Atom, Reference, Term, TermRef, atom};
use crate::sched::KernelCall;
use crate::sched::scheduler;

/// How long a receive waits for a message it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeout {
    /// Until one arrives.
    Infinity,
    /// At most this many milliseconds (`After(0)` looks once and does not wait).
    After(u64),
}

/// Reductions a send costs.
const SEND_REDUCTIONS: u32 = 1;

/// The running process (these calls are made by processes only).
fn me() -> &'static Process {
    let current = scheduler::current().expect("messaging called outside any process");
    // SAFETY: the running process's record is live while it runs; the reference does not
    // outlive the call that made it.
    unsafe { current.as_ptr().as_ref().unwrap_unchecked() }
}

/// Send a copy of `msg` to `to`. Sending to a dead process does nothing, as in Erlang.
/// The copy is the receiver's from now on: the sender may change or drop its own, or exit.
/// Running out of memory for the copy ends the sender with `out_of_memory`.
pub fn send(to: Pid, msg: &Term) {
    send_ref(to, msg.as_ref())
}

/// [`send`] for a borrowed term.
pub fn send_ref(to: Pid, msg: TermRef<'_>) {
    let kernel = KernelCall::enter();
    let result = signals::send_message(to, msg);
    scheduler::count_message();
    scheduler::charge(SEND_REDUCTIONS);
    drop(kernel);
    if result == Err(DeliveryError::OutOfMemory) {
        runtime::exit(Term::atom(atom::OUT_OF_MEMORY));
    }
}

/// Send to a registered name; `Err` (Erlang's `badarg`) if no process has it.
pub fn send_named(name: Atom, msg: &Term) -> Result<(), RegistryError> {
    let pid = registry::whereis(name).ok_or(RegistryError::NotRegistered)?;
    send(pid, msg);
    Ok(())
}

/// Take the first message, in arrival order, that `accept` accepts; wait for one up to
/// `timeout`. Messages it passes over stay in the mailbox, in order; while waiting, only new
/// arrivals are looked at. `None` on timeout. The message is copied into the caller's heap.
pub fn receive_match(
    timeout: Timeout,
    mut accept: impl FnMut(TermRef<'_>) -> bool,
) -> Option<Term> {
    let process = me();
    let deadline = match timeout {
        Timeout::Infinity => None,
        // `after 0` looks once and never waits.
        Timeout::After(0) => Some(0),
        Timeout::After(ms) => Some(timers::deadline_in(ms)),
    };
    // Owner-only mailbox state: no kernel call needed.
    process.signals.begin_receive();
    let result = receive_loop(process, deadline, &mut accept);
    process.signals.end_receive();
    result
}

fn receive_loop(
    process: &Process,
    deadline: Option<u64>,
    accept: &mut impl FnMut(TermRef<'_>) -> bool,
) -> Option<Term> {
    let mut timer = None;
    loop {
        if process.signals.pending() {
            let kernel = KernelCall::enter();
            let outcome = signals::handle_in_receive(process);
            drop(kernel);
            if let Err(reason) = outcome {
                process.signals.end_receive();
                runtime::exit(reason);
            }
        }
        // The predicate is the process's own code: it runs outside any kernel call (its
        // allocations are its own, a panic in it ends only the process).
        let taken = process.signals.take_first(|envelope| {
            matches!(envelope.signal, Signal::Message) && accept(envelope.term())
        });
        if let Some(node) = taken {
            // SAFETY: taken from our mailbox: ours until freed below.
            let term = unsafe { node.as_ref() }.value.term().to_owned();
            if let Some(handle) = timer {
                let _kernel = KernelCall::enter();
                timers::disarm_wake(handle);
            }
            // Freeing needs no kernel call: the slab masks IRQs itself, the count is atomic.
            signals::free(process, node);
            process.signals.count_received();
            return Some(term);
        }
        let _kernel = KernelCall::enter();
        let expired = match deadline {
            None => false,
            Some(deadline) => timers::passed(deadline),
        };
        if expired {
            if let Some(handle) = timer {
                timers::disarm_wake(handle);
            }
            return None;
        }
        if let (Some(deadline), None) = (deadline, timer) {
            timer = timers::arm_wake(deadline, process.pid());
        }
        if !process.signals.pending() {
            runtime::park_current(process);
        }
    }
}

/// Take the first message, whatever it is, waiting up to `timeout`.
pub fn receive(timeout: Timeout) -> Option<Term> {
    receive_match(timeout, |_| true)
}

/// Wait `ms` milliseconds (a receive that accepts nothing, as Erlang's `timer:sleep`).
/// Signals are still applied meanwhile: an exit signal can end a sleeping process.
pub fn sleep(ms: u64) {
    let _ = receive_match(Timeout::After(ms), |_| false);
}

/// Apply the signals that have arrived for the running process; if one ends it, end it.
/// (The kernel does this at the end of every kernel call and at preemption points.)
pub fn apply_pending_signals() {
    if let Some(current) = scheduler::current() {
        // SAFETY: the running process's record.
        apply_signals(unsafe { current.as_ref() });
    }
}

/// Apply the signals that have arrived; if one ends the process, end it.
fn apply_signals(process: &Process) {
    if !process.signals.pending() {
        return;
    }
    let kernel = KernelCall::enter();
    let outcome = signals::handle(process);
    drop(kernel);
    if let Err(reason) = outcome {
        runtime::exit(reason);
    }
}

/// Link the caller and `pid`: when either exits, the other gets an exit signal. Linking to
/// a process that is not alive sends the caller the exit signal `noproc`.
pub fn link(pid: Pid) {
    let process = me();
    {
        let _kernel = KernelCall::enter();
        signals::link(process, pid);
    }
    apply_signals(process);
}

/// Remove the link between the caller and `pid` (if any).
pub fn unlink(pid: Pid) {
    let _kernel = KernelCall::enter();
    signals::unlink(me(), pid);
}

/// Spawn linked to the caller, atomically: the link exists before the child runs.
pub fn spawn_link<R: ExitReason>(entry: fn(Term) -> R, arg: Term) -> Result<Pid, SpawnError> {
    runtime::spawn_opt(entry, arg, SpawnOpts::new().link(true))
}

/// The sender of exit signals sent from the kernel context (the console's `kill`), which
/// has no pid of its own: `<0.4294967295.0>`.
pub const KERNEL_PID: Pid = Pid::new(u32::MAX, 0);

/// Send `pid` an exit signal with `reason` (Erlang's `exit/2`): `kill` cannot be trapped and
/// ends it with `killed`; `normal` is ignored unless it traps exits (or is the caller);
/// anything else ends it with `reason` unless it traps exits, in which case it gets the
/// message `{'EXIT', Caller, Reason}`. From the kernel context the sender is
/// [`KERNEL_PID`].
pub fn exit_signal(pid: Pid, reason: &Term) {
    let kind = if reason.is_atom(atom::KILL) {
        ExitKind::Kill
    } else {
        ExitKind::Exit
    };
    let from = super::current_pid().unwrap_or(KERNEL_PID);
    {
        let _kernel = KernelCall::enter();
        let _ = signals::send_exit(from, pid, reason.as_ref(), kind);
    }
    apply_pending_signals();
}

/// Make exit signals arrive as `{'EXIT', From, Reason}` messages (`true`) or act on the
/// process (`false`, the default). Returns the previous setting. `kill` is never trapped.
pub fn trap_exit(on: bool) -> bool {
    let _kernel = KernelCall::enter();
    signals::set_trap_exit(me(), on)
}

/// Watch `pid`: when it exits (or at once, if it is not alive), the caller gets the message
/// `{'DOWN', Ref, process, Pid, Reason}` once.
pub fn monitor(pid: Pid) -> Reference {
    let _kernel = KernelCall::enter();
    signals::monitor(me(), pid)
}

/// Stop watching; true if the monitor was active. A `'DOWN'` message already delivered
/// stays in the mailbox.
pub fn demonitor(reference: Reference) -> bool {
    let _kernel = KernelCall::enter();
    signals::demonitor(me(), reference)
}

/// Messages waiting in the caller's mailbox (including arrivals not yet looked at).
pub fn message_queue_len() -> usize {
    let process = me();
    apply_signals(process);
    process.signals.queued_messages()
}
