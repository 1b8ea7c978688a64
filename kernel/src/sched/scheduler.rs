//! The per-core scheduler: which context runs on this core, and the switches between them.
//!
//! Every core has one kernel context (the boot stack: boot code, the idle loop, the test
//! harness) and any number of processes in its run queue. Processes switch directly to one
//! another; the kernel context runs only when no process is runnable, and never preempts or
//! is preempted (it hands the core over in [`run_ready`] and gets it back when the queue
//! empties).
//!
//! Invariants, relied on throughout:
//! - a core's [`CoreSched`] fields other than the queue and the atomics are touched only by
//!   that core, with IRQs masked when a handler could touch them too;
//! - a queued or running process belongs to exactly one core; it is in that core's queue,
//!   or it is that core's `current`, or it is exiting there, never two at once;
//! - switches happen with IRQs masked, and no lock is held across one;
//! - `in_kernel > 0` means kernel code is running on behalf of the current process (a kernel
//!   call or an exception handler): the allocator serves the kernel heap, faults are the
//!   kernel's, and the tick only asks for a reschedule, which happens when the count drops
//!   back to zero.

use super::run_queue::{Budget, DEFAULT_SLICE_REDUCTIONS, RunQueue};
use crate::MAX_CORES;
use crate::arch::context::{self, Saved};
use crate::arch::cpu;
use crate::arch::exception::ExceptionFrame;
use crate::process::Process;
use crate::sync::{IrqMutex, irq};
use core::cell::{Cell, UnsafeCell};
use core::ptr::NonNull;
use core::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};

/// Reductions in a slice (boot argument `reductions=`).
static SLICE: AtomicU32 = AtomicU32::new(DEFAULT_SLICE_REDUCTIONS);

/// Per-core counters, readable from any core.
#[derive(Default)]
pub struct CoreStats {
    /// Context switches (process to process, and kernel context to or from a process).
    pub switches: AtomicU64,
    /// Of those, forced by the tick.
    pub preemptions: AtomicU64,
    /// Reductions charged to processes on this core.
    pub reductions: AtomicU64,
    /// Nanoseconds spent asleep with nothing to run.
    pub idle_ns: AtomicU64,
    /// Times the core woke from a tickless sleep.
    pub idle_wakeups: AtomicU64,
    /// Processes spawned to run here, and processes that exited here.
    pub spawned: AtomicU64,
    pub exited: AtomicU64,
    /// Messages sent from this core.
    pub messages: AtomicU64,
    /// Processes that ended here abnormally (a reason other than `normal` or `shutdown`).
    pub crashes: AtomicU64,
}

/// Add to a counter only its own core writes: a plain load and store, no atomic
/// read-modify-write (which is a load-exclusive/store-exclusive loop without LSE).
#[inline(always)]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// A snapshot of [`CoreStats`] plus the queue length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub switches: u64,
    pub preemptions: u64,
    pub reductions: u64,
    pub idle_ns: u64,
    pub idle_wakeups: u64,
    pub spawned: u64,
    pub exited: u64,
    pub messages: u64,
    pub crashes: u64,
    pub runnable: usize,
}

pub struct CoreSched {
    current: Cell<Option<NonNull<Process>>>,
    in_kernel: Cell<u32>,
    need_resched: Cell<bool>,
    budget: Cell<Budget>,
    /// The kernel context's saved stack pointer. While a process runs, SP_EL1 rests here.
    kernel_sp: UnsafeCell<u64>,
    queue: IrqMutex<RunQueue<Process>>,
    queued: AtomicUsize,
    /// Set while the kernel context is about to sleep or sleeping: an enqueue from another
    /// core must wake it.
    sleeping: AtomicBool,
    /// The running process's priority (`Priority as u8`), or `IDLE_PRIORITY` for the kernel
    /// context: a process of higher priority made runnable here preempts it.
    running_priority: AtomicU8,
    /// Set by another core that queued a process of higher priority than the one running
    /// here (with an IPI): the next preemption point reschedules.
    preempt_requested: AtomicBool,
    pub stats: CoreStats,
}

/// `running_priority` while the kernel context runs.
const IDLE_PRIORITY: u8 = 0xff;

// SAFETY: the Cell fields are touched only by the owning core (module invariants); the
// rest are atomics or behind the queue's lock.
unsafe impl Sync for CoreSched {}

static CORES: [CoreSched; MAX_CORES] = [const {
    CoreSched {
        current: Cell::new(None),
        in_kernel: Cell::new(0),
        need_resched: Cell::new(false),
        budget: Cell::new(Budget::full(DEFAULT_SLICE_REDUCTIONS)),
        kernel_sp: UnsafeCell::new(0),
        queue: IrqMutex::new(RunQueue::new()),
        queued: AtomicUsize::new(0),
        sleeping: AtomicBool::new(false),
        running_priority: AtomicU8::new(IDLE_PRIORITY),
        preempt_requested: AtomicBool::new(false),
        stats: CoreStats {
            switches: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
            reductions: AtomicU64::new(0),
            idle_ns: AtomicU64::new(0),
            idle_wakeups: AtomicU64::new(0),
            spawned: AtomicU64::new(0),
            exited: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            crashes: AtomicU64::new(0),
        },
    }
}; MAX_CORES];

#[inline(always)]
pub fn this_core() -> &'static CoreSched {
    &CORES[cpu::core_index()]
}

pub fn core(index: usize) -> &'static CoreSched {
    &CORES[index]
}

pub fn set_slice_reductions(reductions: u32) {
    SLICE.store(reductions.max(1), Ordering::Relaxed);
}

pub fn slice_reductions() -> u32 {
    SLICE.load(Ordering::Relaxed)
}

/// The process running on this core, if process code (not the kernel context) is running.
#[inline(always)]
pub fn current() -> Option<NonNull<Process>> {
    this_core().current.get()
}

/// The running process, if this core runs process code outside any kernel call: then the
/// global allocator serves that process's heap.
#[inline(always)]
pub fn current_outside_kernel() -> Option<NonNull<Process>> {
    let core = this_core();
    if core.in_kernel.get() == 0 {
        core.current.get()
    } else {
        None
    }
}

/// Kernel code running for the current process (see the module comment). Nests.
pub struct KernelCall {
    _not_send: core::marker::PhantomData<*const ()>,
}

impl KernelCall {
    #[inline(always)]
    pub fn enter() -> Self {
        let core = this_core();
        core.in_kernel.set(core.in_kernel.get() + 1);
        Self {
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Drop for KernelCall {
    #[inline(always)]
    fn drop(&mut self) {
        let core = this_core();
        let depth = core.in_kernel.get() - 1;
        core.in_kernel.set(depth);
        if depth == 0
            && let Some(current) = core.current.get()
        {
            // SAFETY: the running process's record is live.
            let signals = unsafe { current.as_ref() }.signals.due();
            if signals || core.need_resched.get() {
                leaving_kernel(signals);
            }
        }
    }
}

/// A process leaves its last kernel call with work waiting: signals to apply (an exit
/// signal may end it here), or a reschedule the tick or its reductions asked for.
#[cold]
fn leaving_kernel(signals: bool) {
    if signals {
        crate::process::apply_pending_signals();
    }
    if this_core().need_resched.get() {
        yield_now();
    }
}

/// End the kernel call an IRQ handler made for the interrupted process, without the
/// reschedule a kernel call would do on its way out (the caller's preemption point does it).
pub fn leave_handler(call: KernelCall) {
    core::mem::forget(call);
    let core = this_core();
    core.in_kernel.set(core.in_kernel.get() - 1);
}

/// Inside a kernel call or handler on behalf of a process (faults there are the kernel's).
pub fn in_kernel_call() -> bool {
    this_core().in_kernel.get() > 0
}

/// Charge the current process `reductions` (a kernel call's cost); when its slice is used
/// up it yields at the end of the kernel call.
pub fn charge(reductions: u32) {
    // Masked: the tick updates the same budget and counters from its handler.
    let saved = irq::save_and_mask();
    let core = this_core();
    if let Some(current) = core.current.get() {
        // SAFETY: the running process's record is live.
        unsafe { current.as_ref() }.add_reductions(reductions);
        bump(&core.stats.reductions, reductions as u64);
        let mut budget = core.budget.get();
        if budget.charge(reductions) {
            core.need_resched.set(true);
        }
        core.budget.set(budget);
    }
    irq::restore(saved);
}

/// Count a message sent from this core (atomic: timers send from the tick handler too).
pub fn count_message() {
    this_core().stats.messages.fetch_add(1, Ordering::Relaxed);
}

/// Count an abnormal exit on this core.
pub fn count_crash() {
    bump(&this_core().stats.crashes, 1);
}

/// Count a process spawned to run on `core_index` (from any core: an atomic add).
pub fn count_spawn(core_index: usize) {
    CORES[core_index]
        .stats
        .spawned
        .fetch_add(1, Ordering::Relaxed);
}

/// Put `process` on `core_index`'s run queue and wake that core if it sleeps. With
/// `preempt` (a process woken from a wait), a process more urgent than the one running
/// there preempts it at once instead of at the end of its slice; a spawn just queues.
///
/// # Safety
/// `process` is live, runnable, in no queue and not running anywhere.
pub unsafe fn enqueue(core_index: usize, process: NonNull<Process>, preempt: bool) {
    let target = &CORES[core_index];
    // SAFETY: per the caller.
    let priority = unsafe { process.as_ref() }.priority() as u8;
    {
        let mut queue = target.queue.lock();
        // SAFETY: per the caller.
        unsafe { queue.push(process) };
        target.queued.store(queue.len(), Ordering::Relaxed);
    }
    // A process more urgent than the running one preempts it at once (wake-up preemption),
    // not at the end of its slice. The kernel context counts as less urgent than anything.
    let running = target.running_priority.load(Ordering::Relaxed);
    let urgent = preempt && running != IDLE_PRIORITY && priority > running;
    if core_index == cpu::core_index() {
        if urgent {
            target.need_resched.set(true);
        }
    } else {
        if urgent {
            target.preempt_requested.store(true, Ordering::Relaxed);
        }
        // Pairs with the fence in `idle`: either the sleeper sees the queued process before
        // it sleeps, or we see it sleeping and ring.
        fence(Ordering::SeqCst);
        if urgent || target.sleeping.load(Ordering::Relaxed) {
            crate::smp::ring_doorbell(core_index);
        }
    }
}

/// Put the running process at the back of this core's queue and take the next one, which
/// is `None` when that is the running process itself (round robin: it goes behind its
/// equals, and a low process counts a pass when others are waiting).
///
/// # Safety
/// `current` is this core's running process.
unsafe fn requeue_and_pop(core: &CoreSched, current: NonNull<Process>) -> Option<NonNull<Process>> {
    // IRQs are masked by every caller.
    let mut queue = core.queue.lock_irqs_already_masked();
    // SAFETY: the running process is live and in no queue.
    unsafe { queue.push(current) };
    let next = queue.pop();
    core.queued.store(queue.len(), Ordering::Relaxed);
    match next {
        Some(next) if next == current => None,
        next => next,
    }
}

fn pop(core: &CoreSched) -> Option<NonNull<Process>> {
    // IRQs are masked by every caller.
    let mut queue = core.queue.lock_irqs_already_masked();
    let next = queue.pop();
    core.queued.store(queue.len(), Ordering::Relaxed);
    next
}

/// Make `next` this core's running process (bookkeeping before a switch to it).
fn install(core: &CoreSched, next: NonNull<Process>) {
    // SAFETY: `next` was just taken off this core's queue: live and ours.
    let process = unsafe { next.as_ref() };
    core.current.set(Some(next));
    core.in_kernel.set(process.saved_in_kernel.get());
    core.need_resched.set(false);
    core.budget.set(Budget::full(slice_reductions()));
    core.running_priority
        .store(process.priority() as u8, Ordering::Relaxed);
    process.set_running();
    bump(&core.stats.switches, 1);
}

/// Make `next` this core's running process and switch to it, saving the running context's
/// stack pointer at `save`. Returns when the saved context is resumed.
///
/// # Safety
/// IRQs masked; `next` was just taken off this core's queue (a saved context that only we
/// resume); `save` stays valid until the saved context is resumed.
unsafe fn switch_to(core: &CoreSched, save: *mut u64, next: NonNull<Process>) {
    install(core, next);
    // SAFETY: per the caller.
    unsafe {
        let next = next.as_ref();
        context::switch(
            save,
            *next.saved_sp.get(),
            next.saved_kind.get(),
            core.kernel_sp.get(),
        )
    }
}

/// Make `next` this core's running process and resume it, abandoning the current context.
///
/// # Safety
/// As for [`switch_to`]; nothing of the current context is needed again.
unsafe fn resume_next(core: &CoreSched, next: NonNull<Process>) -> ! {
    install(core, next);
    // SAFETY: per the caller.
    unsafe {
        let next = next.as_ref();
        context::resume(
            *next.saved_sp.get(),
            next.saved_kind.get(),
            core.kernel_sp.get(),
        )
    }
}

/// Give up the rest of the slice if another process is runnable on this core (one
/// reduction; the budget starts afresh either way). In the kernel context: run whatever is
/// runnable.
pub fn yield_now() {
    let core = this_core();
    let Some(current) = core.current.get() else {
        run_ready();
        return;
    };
    let saved = irq::save_and_mask();
    // SAFETY: `current` runs here: live, and in no queue.
    let process = unsafe { current.as_ref() };
    process.add_reductions(1);
    bump(&core.stats.reductions, 1);
    process.saved_kind.set(Saved::Voluntary);
    process.saved_in_kernel.set(core.in_kernel.get());
    process.set_runnable();
    // SAFETY: as above. If it comes straight back off the queue, nothing else was runnable.
    match unsafe { requeue_and_pop(core, current) } {
        None => {
            process.set_running();
            core.need_resched.set(false);
            core.budget.set(Budget::full(slice_reductions()));
        }
        Some(next) => {
            // SAFETY: `next` is a saved context that only we resume; `current` sits in our
            // queue, and only this core pops it, after this switch has saved it.
            unsafe { switch_to(core, process.saved_sp.get(), next) };
        }
    }
    irq::restore(saved);
}

/// The current process's first step into its own code: leave the kernel call it was
/// created in and let interrupts in.
pub fn begin_process_code() {
    let core = this_core();
    core.in_kernel.set(0);
    cpu::enable_irqs();
}

/// The current process has marked itself waiting: run something else until it is woken.
/// Returns at once if it was woken (and queued) already. IRQs masked.
pub fn block_current() {
    let core = this_core();
    let current = core.current.get().expect("block_current from a process");
    let next = pop(core);
    if next == Some(current) {
        return;
    }
    // SAFETY: the running process's record.
    let process = unsafe { current.as_ref() };
    process.saved_kind.set(Saved::Voluntary);
    process.saved_in_kernel.set(core.in_kernel.get());
    match next {
        Some(next) => {
            // SAFETY: as in yield_now. A wake-up that queues `current` meanwhile is only
            // popped by this core, after this switch has saved it.
            unsafe { switch_to(core, process.saved_sp.get(), next) };
        }
        None => {
            core.current.set(None);
            core.running_priority
                .store(IDLE_PRIORITY, Ordering::Relaxed);
            core.in_kernel.set(0);
            bump(&core.stats.switches, 1);
            // SAFETY: a process runs, so the kernel context is saved at `kernel_sp`.
            unsafe {
                context::switch(
                    process.saved_sp.get(),
                    *core.kernel_sp.get(),
                    Saved::Kernel,
                    core.kernel_sp.get(),
                )
            };
        }
    }
}

/// From the kernel context: hand the core to runnable processes until none is left.
/// Returns whether anything ran.
pub fn run_ready() -> bool {
    let core = this_core();
    debug_assert!(core.current.get().is_none(), "run_ready from a process");
    let saved = irq::save_and_mask();
    let ran = match pop(core) {
        None => false,
        Some(next) => {
            // SAFETY: as in yield_now; the kernel context saves itself in `kernel_sp`.
            unsafe { switch_to(core, core.kernel_sp.get(), next) };
            true
        }
    };
    irq::restore(saved);
    ran
}

/// The kernel context with nothing else to do: run processes, or sleep until an interrupt.
/// While it sleeps the core's periodic tick is off: its timer goes off only when its next
/// process timer is due (tickless idle), so an idle core takes no periodic interrupts.
pub fn idle() {
    sleep_until_work(true);
}

/// From the kernel context: run processes and sleep until `done()` holds. The condition may
/// depend on other cores (which do not wake this one when it becomes true), so the tick
/// stays on: `done()` is checked at least once per tick.
pub fn run_until(mut done: impl FnMut() -> bool) {
    while !done() {
        sleep_until_work(false);
    }
}

fn sleep_until_work(tickless: bool) {
    if run_ready() {
        return;
    }
    let core = this_core();
    let saved = irq::save_and_mask();
    core.sleeping.store(true, Ordering::Relaxed);
    fence(Ordering::SeqCst);
    if core.queued.load(Ordering::Relaxed) == 0 {
        let start = crate::time::now_ns();
        if tickless {
            crate::time::suspend_tick(crate::process::timers::next_deadline_counter());
        }
        // With IRQs masked, a pending interrupt still ends WFI; it is taken after the
        // restore below.
        cpu::wait_for_interrupt();
        if tickless {
            crate::time::resume_tick();
            bump(&core.stats.idle_wakeups, 1);
            // What woke us may be a timer deadline: fire what is due (it may queue work).
            crate::process::timers::on_tick();
        }
        bump(&core.stats.idle_ns, crate::time::now_ns() - start);
    }
    core.sleeping.store(false, Ordering::Relaxed);
    irq::restore(saved);
}

/// The timer tick, in its interrupt handler: charge the running process for the time.
pub fn on_tick() {
    let core = this_core();
    if let Some(current) = core.current.get() {
        let slice = slice_reductions();
        let charge = Budget::tick_charge(slice);
        // SAFETY: the running process's record is live.
        unsafe { current.as_ref() }.add_reductions(charge);
        bump(&core.stats.reductions, charge as u64);
        let mut budget = core.budget.get();
        if budget.charge(charge) {
            core.need_resched.set(true);
        }
        core.budget.set(budget);
    }
}

/// An IRQ taken from process code is about to return: preempt the process if its slice is
/// over and another is runnable. Returns if the process goes on running.
///
/// # Safety
/// Called from the exception handler for an IRQ taken at EL1t, with `frame` its saved frame.
pub unsafe fn preempt_point(frame: &ExceptionFrame) {
    let core = this_core();
    let Some(current) = core.current.get() else {
        return;
    };
    if core.in_kernel.get() != 0 {
        return;
    }
    // SAFETY: the current process is live while it runs.
    if unsafe { current.as_ref() }.signals.due() {
        // Exit signals reach even a process that never makes a kernel call.
        let kernel = KernelCall::enter();
        // SAFETY: as above.
        let outcome = crate::process::signals::handle(unsafe { current.as_ref() });
        leave_handler(kernel);
        if let Err(reason) = outcome {
            crate::process::kill_current_from_handler(reason);
        }
    }
    if core.preempt_requested.swap(false, Ordering::Relaxed) {
        core.need_resched.set(true);
    }
    if !core.need_resched.get() {
        return;
    }
    if core.queued.load(Ordering::Relaxed) == 0 {
        core.need_resched.set(false);
        core.budget.set(Budget::full(slice_reductions()));
        return;
    }
    // SAFETY: the current process is live while it runs.
    let process = unsafe { current.as_ref() };
    if let Err(reason) = process.make_room_for_frame(frame.sp_el0) {
        crate::process::kill_current_from_handler(reason);
    }
    process.set_runnable();
    // SAFETY: `current` is this core's running process.
    let Some(next) = (unsafe { requeue_and_pop(core, current) }) else {
        // Only low processes passed over, or nothing else: it runs another slice.
        process.set_running();
        core.need_resched.set(false);
        core.budget.set(Budget::full(slice_reductions()));
        return;
    };
    // SAFETY: the room below SP_EL0 was just checked and mapped. `current` sits in our
    // queue, and only this core pops it, after the save below.
    let at = unsafe { context::save_forced(frame) };
    // SAFETY: this core holds `current`; its context is saved before anything resumes it.
    unsafe { *process.saved_sp.get() = at };
    process.saved_kind.set(Saved::Forced);
    process.saved_in_kernel.set(0);
    bump(&core.stats.preemptions, 1);
    // SAFETY: `next` is a saved context only we resume; the handler's frames are abandoned.
    unsafe { resume_next(core, next) }
}

/// The current process has ended (its resources are gone): run the next one, or the kernel
/// context. Called on the kernel stack with IRQs masked.
pub fn switch_after_exit() -> ! {
    let core = this_core();
    core.current.set(None);
    core.running_priority
        .store(IDLE_PRIORITY, Ordering::Relaxed);
    core.in_kernel.set(0);
    bump(&core.stats.exited, 1);
    match pop(core) {
        Some(next) => {
            // SAFETY: a saved context only we resume.
            unsafe { resume_next(core, next) }
        }
        // SAFETY: a process was running, so the kernel context is saved at `kernel_sp`.
        None => unsafe {
            context::resume(*core.kernel_sp.get(), Saved::Kernel, core.kernel_sp.get())
        },
    }
}

/// This core's kernel-context slot, for leaving a dying process's stack.
pub fn kernel_sp_slot() -> *const u64 {
    this_core().kernel_sp.get()
}

pub fn snapshot(core_index: usize) -> Snapshot {
    let core = &CORES[core_index];
    let s = &core.stats;
    Snapshot {
        switches: s.switches.load(Ordering::Relaxed),
        preemptions: s.preemptions.load(Ordering::Relaxed),
        reductions: s.reductions.load(Ordering::Relaxed),
        idle_ns: s.idle_ns.load(Ordering::Relaxed),
        idle_wakeups: s.idle_wakeups.load(Ordering::Relaxed),
        spawned: s.spawned.load(Ordering::Relaxed),
        exited: s.exited.load(Ordering::Relaxed),
        messages: s.messages.load(Ordering::Relaxed),
        crashes: s.crashes.load(Ordering::Relaxed),
        runnable: core.queued.load(Ordering::Relaxed),
    }
}
