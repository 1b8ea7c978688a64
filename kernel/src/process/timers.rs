//! Process timers: one timer wheel per core (`time::wheel`), advanced by the core's tick,
//! behind receive timeouts, `sleep` and `send_after` / `cancel_timer`.
//!
//! The wheel's unit is the core's tick period, aligned with its ticks (`time::period_now`),
//! so a timer fires on the first tick at or after its deadline: never early, at most one
//! tick late. A timer lives in the wheel of the core that armed it; cancelling from another
//! core takes that wheel's lock (the lock is otherwise only contended by the tick).

use super::Pid;
use super::signals;
use crate::MAX_CORES;
use crate::arch::cpu;
use crate::mem::in_kernel_heap;
use crate::msg::TermRef;
use crate::msg::envelope::{self, EnvelopeNode, Signal};
use crate::sync::IrqMutex;
use crate::time::wheel::{TimerHandle, TimerWheel};
use core::fmt;
use core::ptr::NonNull;

/// What a timer does when it fires.
pub(crate) enum Action {
    /// Wake a process waiting in a receive with a timeout (or a sleep).
    Wake(Pid),
    /// Deliver a message prepared at `send_after` time.
    Send {
        to: Pid,
        envelope: NonNull<EnvelopeNode>,
    },
}

// SAFETY: an `Action` owns its envelope exclusively; it moves between cores only inside the
// wheel's lock.
unsafe impl Send for Action {}

static WHEELS: [IrqMutex<TimerWheel<Action>>; MAX_CORES] =
    [const { IrqMutex::new(TimerWheel::new(0)) }; MAX_CORES];

/// A timer started by [`send_after`]: which core's wheel, and the handle there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerRef {
    core: u16,
    handle: TimerHandle,
}

impl fmt::Display for TimerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (index, id) = self.handle.to_raw();
        write!(f, "#Timer<{}.{}.{}>", self.core, index, id)
    }
}

/// The tick, on every core: fire what is due.
pub fn on_tick() {
    let now = crate::time::period_now();
    let mut wheel = WHEELS[cpu::core_index()].lock();
    wheel.advance(now, |_, _, action| fire(action));
}

fn fire(action: Action) {
    match action {
        Action::Wake(pid) => {
            super::runtime::unpark(pid);
        }
        Action::Send { to, envelope } => {
            if let Err(envelope) = signals::deliver(to, envelope) {
                // SAFETY: undelivered: ours, in no list.
                unsafe { envelope::free(envelope) };
            }
        }
    }
}

/// The wheel period in which `ms` milliseconds from now have passed on this core (a receive
/// timeout's or a `send_after`'s deadline).
pub(crate) fn deadline_in(ms: u64) -> u64 {
    crate::time::period_at_or_after(crate::time::counter() + crate::time::ms_to_counter(ms))
}

/// Arm a wake-up of `pid` at `deadline` (a period of this core). `None` if the wheel could
/// not grow (the caller then polls instead).
pub(crate) fn arm_wake(deadline: u64, pid: Pid) -> Option<TimerHandle> {
    let mut wheel = WHEELS[cpu::core_index()].lock();
    in_kernel_heap(|| wheel.insert(deadline, Action::Wake(pid))).ok()
}

/// Disarm a wake-up armed on this core.
pub(crate) fn disarm_wake(handle: TimerHandle) {
    let _ = WHEELS[cpu::core_index()].lock().cancel(handle);
}

/// Whether this core's clock has reached period `deadline`.
pub(crate) fn passed(deadline: u64) -> bool {
    crate::time::period_now() >= deadline
}

/// Why `send_after` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerError;

impl fmt::Display for TimerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no memory for the timer")
    }
}

/// Send a copy of `msg` to `to` after `ms` milliseconds (never earlier; within a tick after).
pub fn send_after(ms: u64, to: Pid, msg: TermRef<'_>) -> Result<TimerRef, TimerError> {
    let _kernel = crate::sched::KernelCall::enter();
    let envelope = envelope::new(Signal::Message, msg).ok_or(TimerError)?;
    let core = cpu::core_index();
    let deadline = deadline_in(ms);
    let mut wheel = WHEELS[core].lock();
    match in_kernel_heap(|| wheel.insert(deadline, Action::Send { to, envelope })) {
        Ok(handle) => Ok(TimerRef {
            core: core as u16,
            handle,
        }),
        Err(_) => {
            drop(wheel);
            // SAFETY: never delivered: ours.
            unsafe { envelope::free(envelope) };
            Err(TimerError)
        }
    }
}

/// Stop a `send_after` timer: the milliseconds it had left, or `None` if it already fired
/// (or was cancelled).
pub fn cancel_timer(timer: TimerRef) -> Option<u64> {
    let _kernel = crate::sched::KernelCall::enter();
    let core = timer.core as usize;
    let (deadline, action) = WHEELS.get(core)?.lock().cancel(timer.handle)?;
    if let Action::Send { envelope, .. } = action {
        // SAFETY: taken back from the wheel before it fired: ours.
        unsafe { envelope::free(envelope) };
    }
    let due = crate::time::period_start(core, deadline);
    let left = due.saturating_sub(crate::time::counter());
    Some(crate::time::counter_to_ns(left).div_ceil(1_000_000))
}

/// When this core's next timer is due (a counter value, never later than the earliest
/// pending deadline), for an idle core that stops its tick; `None` with no timer pending.
pub(crate) fn next_deadline_counter() -> Option<u64> {
    let core = cpu::core_index();
    let next = WHEELS[core].lock().next_deadline()?;
    Some(crate::time::period_start(core, next))
}

/// Timers pending on core `core` (for the console and tests).
pub fn pending(core: usize) -> usize {
    WHEELS[core].lock().len()
}
