//! The life of a process: its record, spawn, the first run, parking, and exit.
//!
//! A process record lives at the top of the process's first stack page (see `stack`), so a
//! process that does nothing costs one frame plus its share of a page table and a 24-byte
//! table slot. The record is freed with the stack at exit: nothing may keep a pointer to it
//! beyond that; everyone else names processes by [`Pid`] and looks them up in the table.
//!
//! Memory rule (written here because spawn and exit are where it is easiest to break): kernel
//! state never points into a process heap. Spawn copies the argument into the child's heap;
//! exit copies the reason into the kernel heap before the process's heap is released.

use super::signals::{self, SignalState};
use super::stack::{self, StackError};
use super::table::{ProcessTable, TableError};
use crate::arch::context::{self, Saved};
use crate::arch::cpu;
use crate::mem::pages::Pages;
use crate::mem::process_heap::{HeapError, ProcessHeap};
use crate::mem::{PAGE_SIZE, pages};
use crate::msg::{Global, Term, TermAlloc, atom};
use crate::process::Pid;
use crate::sched::run_queue::{Priority, RunLink, Runnable};
use crate::sched::scheduler::{self, KernelCall};
use crate::sync::irq;
use core::alloc::Layout;
use core::cell::{Cell, UnsafeCell};
use core::fmt;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Every process, by pid.
pub static TABLE: ProcessTable = ProcessTable::new();

/// Reductions a spawn costs the caller.
const SPAWN_REDUCTIONS: u32 = 20;

/// Where a process is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// In a run queue.
    Runnable = 0,
    /// On a core now.
    Running = 1,
    /// Parked: in no queue until someone wakes it.
    Waiting = 2,
    /// Running, and woken while running: its next park returns at once.
    RunningWoken = 3,
    /// Releasing its resources.
    Exiting = 4,
    /// Gone (a pid no longer in the table).
    Exited = 5,
}

impl State {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Runnable,
            1 => Self::Running,
            2 => Self::Waiting,
            3 => Self::RunningWoken,
            4 => Self::Exiting,
            _ => Self::Exited,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Runnable => "runnable",
            Self::Running | Self::RunningWoken => "running",
            Self::Waiting => "waiting",
            Self::Exiting => "exiting",
            Self::Exited => "exited",
        }
    }
}

/// The process control block.
#[repr(C, align(16))]
pub struct Process {
    /// The saved context's stack pointer and kind, valid while not running.
    pub(crate) saved_sp: UnsafeCell<u64>,
    pub(crate) saved_kind: Cell<Saved>,
    /// The kernel-call depth to restore with the context.
    pub(crate) saved_in_kernel: Cell<u32>,
    state: AtomicU8,
    priority: Priority,
    /// The core whose queue it joins when it becomes runnable.
    home: u16,
    pid: Pid,
    run_link: RunLink<Process>,
    /// Top of the stack slot (exclusive) and the lowest address the stack may use.
    stack_top: u64,
    stack_floor: u64,
    /// Lowest stack page mapped so far.
    stack_low: Cell<u64>,
    heap: ProcessHeap,
    entry: usize,
    run: fn(usize, Term) -> Term,
    /// Reductions charged to it so far (kernel calls and time).
    reductions: Cell<u64>,
    /// Mailbox, links, monitors, name.
    pub(crate) signals: SignalState,
    /// The spawn argument until the first run; then, at exit, the exit reason.
    term: UnsafeCell<MaybeUninit<Term>>,
}

/// Bytes of the first stack page the record takes (the stack starts below).
pub const RECORD_SIZE: usize = core::mem::size_of::<Process>();
const _: () = assert!(RECORD_SIZE <= 384);

// SAFETY: a record is touched by one core at a time: the core it runs on, or the core
// holding the queue lock it sits in; cross-core fields (`state`) are atomic.
unsafe impl Sync for Process {}

// SAFETY: the link is a field of the record and fixed; priority never changes.
unsafe impl Runnable for Process {
    fn run_link(&self) -> &RunLink<Self> {
        &self.run_link
    }
    fn priority(&self) -> Priority {
        self.priority
    }
}

impl Process {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn priority(&self) -> Priority {
        self.priority
    }

    pub fn home_core(&self) -> usize {
        self.home as usize
    }

    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_running(&self) {
        self.state.store(State::Running as u8, Ordering::Release);
    }

    pub(crate) fn set_runnable(&self) {
        self.state.store(State::Runnable as u8, Ordering::Release);
    }

    /// Charge reductions to it (by the core it runs on).
    pub(crate) fn add_reductions(&self, reductions: u32) {
        self.reductions
            .set(self.reductions.get() + reductions as u64);
    }

    /// Reductions charged to it so far.
    pub fn reductions(&self) -> u64 {
        self.reductions.get()
    }

    /// Bytes of stack mapped now.
    pub fn stack_bytes(&self) -> usize {
        (self.stack_top - self.stack_low.get()) as usize
    }

    /// The process heap's reserved bytes.
    pub fn heap_bytes(&self) -> usize {
        self.heap.reserved_bytes()
    }

    /// Make sure a forced frame can be saved below `sp` on this process's stack.
    pub(crate) fn make_room_for_frame(&self, sp: u64) -> Result<(), Term> {
        let low = context::forced_low_water(sp);
        if low < self.stack_floor || sp > self.stack_top {
            return Err(Term::atom(atom::STACK_OVERFLOW));
        }
        let mut page = low & !(PAGE_SIZE as u64 - 1);
        while page < self.stack_low.get() {
            self.grow_stack(page)?;
            page += PAGE_SIZE as u64;
        }
        Ok(())
    }

    pub(crate) fn stack_top(&self) -> u64 {
        self.stack_top
    }

    /// The lowest address the stack may use (its limit).
    pub(crate) fn stack_floor(&self) -> u64 {
        self.stack_floor
    }

    /// Map the stack page holding `va` (at or above the floor).
    pub(crate) fn grow_stack(&self, va: u64) -> Result<(), Term> {
        if crate::boot::translate(va).is_none() {
            match stack::map_page(va) {
                Ok(()) => {}
                Err(StackError::Overflow) => return Err(Term::atom(atom::STACK_OVERFLOW)),
                Err(StackError::OutOfMemory) => return Err(Term::atom(atom::OUT_OF_MEMORY)),
            }
        }
        let page = va & !(PAGE_SIZE as u64 - 1);
        if page < self.stack_low.get() {
            self.stack_low.set(page);
        }
        Ok(())
    }
}

/// Options for [`spawn_opt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpawnOpts {
    pub priority: Priority,
    /// Run on this core; `None`: the caller's core.
    pub core: Option<usize>,
    /// Most stack bytes, including the page that holds the process record
    /// (between [`stack::MIN_LIMIT`] and [`stack::MAX_LIMIT`]).
    pub stack_limit: usize,
    /// The first heap chunk's size.
    pub min_heap_size: usize,
    /// Most heap bytes; beyond it the process exits with `heap_limit`. `None`: no limit.
    pub max_heap_size: Option<usize>,
    /// Link the child to the calling process before it runs (`spawn_link`).
    pub link: bool,
}

impl Default for SpawnOpts {
    fn default() -> Self {
        Self {
            priority: Priority::Normal,
            core: None,
            stack_limit: stack::DEFAULT_LIMIT,
            min_heap_size: PAGE_SIZE,
            max_heap_size: None,
            link: false,
        }
    }
}

impl SpawnOpts {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }
    pub fn core(mut self, core: usize) -> Self {
        self.core = Some(core);
        self
    }
    pub fn stack_limit(mut self, bytes: usize) -> Self {
        self.stack_limit = bytes;
        self
    }
    pub fn min_heap_size(mut self, bytes: usize) -> Self {
        self.min_heap_size = bytes;
        self
    }
    pub fn max_heap_size(mut self, bytes: usize) -> Self {
        self.max_heap_size = Some(bytes);
        self
    }
    pub fn link(mut self, link: bool) -> Self {
        self.link = link;
        self
    }
}

/// Why a spawn failed. Nothing was created and nothing leaked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// No frame for the stack, no kernel heap for the table, or no room in the child's heap
    /// for the argument.
    OutOfMemory,
    /// The process table is full.
    TooManyProcesses,
    /// The core named in the options does not exist or is offline.
    NoSuchCore(usize),
    /// An option out of range (which one, and why).
    BadOption(&'static str),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfMemory => f.write_str("out of memory"),
            Self::TooManyProcesses => f.write_str("process table full"),
            Self::NoSuchCore(core) => write!(f, "core {core} does not exist or is offline"),
            Self::BadOption(what) => write!(f, "bad spawn option: {what}"),
        }
    }
}

/// What an entry function's result means as an exit reason.
pub trait ExitReason {
    fn into_reason(self) -> Term;
}

impl ExitReason for () {
    fn into_reason(self) -> Term {
        Term::atom(atom::NORMAL)
    }
}

impl ExitReason for Term {
    fn into_reason(self) -> Term {
        self
    }
}

impl<E: Into<Term>> ExitReason for Result<(), E> {
    fn into_reason(self) -> Term {
        match self {
            Ok(()) => Term::atom(atom::NORMAL),
            Err(reason) => reason.into(),
        }
    }
}

fn run_entry<R: ExitReason>(entry: usize, arg: Term) -> Term {
    // SAFETY: `entry` was stored by `spawn_opt::<R>` from a `fn(Term) -> R`.
    let entry: fn(Term) -> R = unsafe { core::mem::transmute::<usize, fn(Term) -> R>(entry) };
    entry(arg).into_reason()
}

/// Start a process running `entry(arg)` with default options, on the caller's core.
pub fn spawn<R: ExitReason>(entry: fn(Term) -> R, arg: Term) -> Result<Pid, SpawnError> {
    spawn_opt(entry, arg, SpawnOpts::default())
}

/// Start a process running `entry(arg)`. The argument is copied into the child's heap.
pub fn spawn_opt<R: ExitReason>(
    entry: fn(Term) -> R,
    arg: Term,
    opts: SpawnOpts,
) -> Result<Pid, SpawnError> {
    let _kernel = KernelCall::enter();
    let result = create(entry as usize, run_entry::<R>, &arg, opts);
    drop(arg);
    scheduler::charge(SPAWN_REDUCTIONS);
    result
}

/// The body of spawn (inside a kernel call).
fn create(
    entry: usize,
    run: fn(usize, Term) -> Term,
    arg: &Term,
    opts: SpawnOpts,
) -> Result<Pid, SpawnError> {
    let core = opts.core.unwrap_or_else(cpu::core_index);
    if core >= crate::MAX_CORES || !crate::smp::is_online(core) {
        return Err(SpawnError::NoSuchCore(core));
    }
    if !(stack::MIN_LIMIT..=stack::MAX_LIMIT).contains(&opts.stack_limit) {
        return Err(SpawnError::BadOption(
            "stack_limit must be between 8 KiB and 124 KiB",
        ));
    }
    if opts
        .max_heap_size
        .is_some_and(|max| max < opts.min_heap_size)
    {
        return Err(SpawnError::BadOption(
            "max_heap_size is smaller than min_heap_size",
        ));
    }
    let parent = scheduler::current();
    if opts.link && parent.is_none() {
        return Err(SpawnError::BadOption(
            "link needs a calling process (not the kernel context)",
        ));
    }
    let pid = TABLE.allocate().map_err(|e| match e {
        TableError::Full => SpawnError::TooManyProcesses,
        TableError::OutOfMemory => SpawnError::OutOfMemory,
    })?;
    let top = stack::slot_top(pid.index());
    let first_page = top - PAGE_SIZE as u64;
    if stack::map_page(first_page).is_err() {
        TABLE.release(pid);
        return Err(SpawnError::OutOfMemory);
    }
    let record = (top - RECORD_SIZE as u64) as *mut Process;
    let floor = top - (opts.stack_limit as u64 & !(PAGE_SIZE as u64 - 1));
    // SAFETY: the page was just mapped for this process alone; the record fits in it.
    unsafe {
        record.write(Process {
            saved_sp: UnsafeCell::new(0),
            saved_kind: Cell::new(Saved::Voluntary),
            saved_in_kernel: Cell::new(1),
            state: AtomicU8::new(State::Runnable as u8),
            priority: opts.priority,
            home: core as u16,
            pid,
            run_link: RunLink::new(),
            stack_top: top,
            stack_floor: floor,
            stack_low: Cell::new(first_page),
            heap: ProcessHeap::new(opts.min_heap_size, opts.max_heap_size),
            entry,
            run,
            reductions: Cell::new(0),
            signals: SignalState::new(),
            term: UnsafeCell::new(MaybeUninit::uninit()),
        })
    };
    // SAFETY: initialised just above; nobody else knows of it yet.
    let process = unsafe { &*record };
    let copied = arg.copy_in(&IntoHeap(&process.heap));
    let copied = match copied {
        Ok(term) => term,
        Err(_) => {
            process.heap.release_all(&Pages);
            stack::unmap_range(first_page, top);
            TABLE.release(pid);
            return Err(SpawnError::OutOfMemory);
        }
    };
    // SAFETY: as above: the record is ours until published.
    unsafe {
        (*process.term.get()).write(copied);
        *process.saved_sp.get() = context::initial_block(record as u64, record as u64);
    }
    let record = NonNull::from(process);
    if opts.link
        && let Some(parent) = parent
    {
        // Both ends before the child can run or be seen: the link is atomic with the spawn.
        // SAFETY: the caller's record is live (it is running this call).
        let parent = unsafe { parent.as_ref() };
        signals::add_link(process, parent.pid());
        signals::add_link(parent, pid);
    }
    TABLE.publish(pid, record.cast());
    scheduler::count_spawn(core);
    // SAFETY: live, runnable, in no queue, running nowhere.
    unsafe { scheduler::enqueue(core, record, false) };
    Ok(pid)
}

/// A [`TermAlloc`] over a process heap that is not the running one (the child's, at spawn).
struct IntoHeap<'a>(&'a ProcessHeap);

// SAFETY: blocks from a process heap, which the global allocator frees back to that heap by
// address.
unsafe impl TermAlloc for IntoHeap<'_> {
    fn alloc_words(&self, words: usize) -> Option<NonNull<u64>> {
        let layout = Layout::array::<u64>(words).ok()?;
        // The heap's process is not running (it is being created): this core alone
        // touches it.
        self.0.alloc(layout, &Pages).ok().map(NonNull::cast)
    }
}

/// Where a new process begins (from `process_trampoline`): IRQs masked, inside a kernel
/// call. Leaves the kernel, runs the entry function, exits with its result.
#[unsafe(no_mangle)]
extern "C" fn process_start(record: *const Process) -> ! {
    // SAFETY: the trampoline passes the record `create` built; this process runs now.
    let process = unsafe { &*record };
    // SAFETY: written at spawn, read once here.
    let arg = unsafe { (*process.term.get()).assume_init_read() };
    let (entry, run) = (process.entry, process.run);
    scheduler::begin_process_code();
    let reason = run(entry, arg);
    exit(reason)
}

/// End the calling process with `reason` (`normal` is a normal exit). From the kernel
/// context this is a kernel bug.
pub fn exit(reason: impl Into<Term>) -> ! {
    let reason = reason.into();
    let Some(current) = scheduler::current() else {
        panic!("process::exit called outside any process");
    };
    // Stays entered: the process never runs process code again.
    core::mem::forget(KernelCall::enter());
    let kept = reason
        .copy_in(&Global)
        .unwrap_or_else(|_| Term::atom(atom::OUT_OF_MEMORY));
    drop(reason);
    // SAFETY: the record is live while its process runs; `term` is free after the start.
    unsafe { (*current.as_ref().term.get()).write(kept) };
    irq::save_and_mask();
    // SAFETY: a process is running, IRQs are masked.
    unsafe {
        context::run_on_kernel_stack(
            current.as_ptr() as usize,
            finish_exit_entry,
            scheduler::kernel_sp_slot(),
        )
    }
}

extern "C" fn finish_exit_entry(record: usize) -> ! {
    // SAFETY: `exit` passes the running process's record.
    finish_exit(unsafe { NonNull::new_unchecked(record as *mut Process) })
}

/// End the running process with `reason` (already in the kernel heap) from an exception
/// handler: a fault, or a stack that cannot grow.
pub fn kill_current_from_handler(reason: Term) -> ! {
    let current = scheduler::current().expect("a process is running");
    // SAFETY: live while it runs; `term` is free after the start.
    unsafe { (*current.as_ref().term.get()).write(reason) };
    core::mem::forget(KernelCall::enter());
    irq::save_and_mask();
    finish_exit(current)
}

/// Release everything the process holds and run the next one. Runs on the kernel stack,
/// IRQs masked, inside a kernel call; the reason waits in the record's `term`.
fn finish_exit(record: NonNull<Process>) -> ! {
    // SAFETY: the running process's record, live until its stack is unmapped below.
    let process = unsafe { record.as_ref() };
    process.state.store(State::Exiting as u8, Ordering::Release);
    // SAFETY: written by exit / kill_current_from_handler.
    let reason = unsafe { (*process.term.get()).assume_init_read() };
    let pid = process.pid;
    // Lookups and new pins fail from here on; the index (and with it the stack slot) is
    // reused only after the stack is gone. Senders that pinned the record before finish
    // their delivery first, so the last look at the mailbox below sees everything.
    TABLE.retire(pid);
    TABLE.wait_until_unpinned(pid.index());
    if let Some(hook) = exit_hook() {
        hook(pid, &reason);
    }
    if !is_clean_exit(reason.as_ref()) {
        scheduler::count_crash();
    }
    // Links, monitors, the name, and what is left in the mailbox.
    signals::on_exit(process, reason.as_ref());
    // The process will never run again; its heap's blocks die with it.
    process.heap.release_all(&Pages);
    drop(reason);
    let (low, top) = (process.stack_low.get(), process.stack_top);
    // The record itself goes with the top page: nothing below touches `process`.
    stack::unmap_range(low, top);
    TABLE.recycle(pid.index());
    EXITED.fetch_add(1, Ordering::Relaxed);
    scheduler::switch_after_exit()
}

/// `normal`, `shutdown` or `{shutdown, _}`: the reasons that are not crashes (OTP's view).
pub fn is_clean_exit(reason: crate::msg::TermRef<'_>) -> bool {
    reason.is_atom(atom::NORMAL)
        || reason.is_atom(atom::SHUTDOWN)
        || reason
            .as_tuple()
            .is_some_and(|t| t.len() == 2 && t.get(0).is_some_and(|a| a.is_atom(atom::SHUTDOWN)))
}

/// Total processes that have exited, all cores.
static EXITED: AtomicUsize = AtomicUsize::new(0);

/// The test-only exit hook (until monitors exist): called on the exiting process's core,
/// in a kernel call, with the pid and the reason, before the process's memory is released.
static EXIT_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Install (or remove) the exit hook. It must not block or allocate much; it must copy what
/// it keeps.
pub fn set_exit_hook(hook: Option<fn(Pid, &Term)>) {
    EXIT_HOOK.store(hook.map_or(0, |h| h as usize), Ordering::Release);
}

fn exit_hook() -> Option<fn(Pid, &Term)> {
    match EXIT_HOOK.load(Ordering::Acquire) {
        0 => None,
        // SAFETY: stored from a `fn(Pid, &Term)` by `set_exit_hook`.
        raw => Some(unsafe { core::mem::transmute::<usize, fn(Pid, &Term)>(raw) }),
    }
}

/// The calling process's pid. Panics in the kernel context (which has none).
pub fn self_pid() -> Pid {
    current_pid().expect("self_pid called outside any process")
}

/// The running process's pid, if a process is running on this core.
pub fn current_pid() -> Option<Pid> {
    // SAFETY: the running process's record is live.
    scheduler::current().map(|p| unsafe { p.as_ref() }.pid)
}

/// Let other runnable processes on this core run first (round robin within a priority).
pub fn yield_now() {
    scheduler::yield_now();
}

/// Whether `pid` names a live process.
pub fn is_alive(pid: Pid) -> bool {
    TABLE.lookup(pid).is_some()
}

/// Processes alive now, all cores.
pub fn count() -> usize {
    TABLE.live()
}

/// Processes that have exited since boot, all cores.
pub fn exited_total() -> usize {
    EXITED.load(Ordering::Relaxed)
}

/// Wait until someone calls [`unpark`] with this process's pid (at once if that already
/// happened since the last park). Takes no CPU while waiting. The building block of
/// receive.
pub fn park() {
    let Some(current) = scheduler::current() else {
        panic!("park called outside any process");
    };
    let _kernel = KernelCall::enter();
    // SAFETY: the running process's record.
    park_current(unsafe { current.as_ref() });
}

/// [`park`] for the running `process`, inside a kernel call.
pub(crate) fn park_current(process: &Process) {
    let saved = irq::save_and_mask();
    if process
        .state
        .compare_exchange(
            State::Running as u8,
            State::Waiting as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .is_ok()
    {
        scheduler::block_current();
    }
    process.set_running();
    irq::restore(saved);
}

/// Make a parked process runnable again (or, if it is running, make its next park return
/// at once). Returns false for a pid that is not alive.
pub fn unpark(pid: Pid) -> bool {
    let _kernel = KernelCall::enter();
    let Some(pinned) = TABLE.pin(pid) else {
        return false;
    };
    // SAFETY: pinned: live until the guard drops.
    let process = unsafe { pinned.record().cast::<Process>().as_ref() };
    wake(process, pinned.record().cast());
    true
}

/// Wake `process` (pinned or running, so live): a waiting process becomes runnable on its
/// core; a running one has its next park return at once.
pub(crate) fn wake(process: &Process, record: NonNull<Process>) {
    loop {
        let state = process.state.load(Ordering::Acquire);
        let (to, enqueue) = match State::from_u8(state) {
            State::Waiting => (State::Runnable, true),
            State::Running => (State::RunningWoken, false),
            _ => return,
        };
        if process
            .state
            .compare_exchange(state, to as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            if enqueue {
                // SAFETY: it was Waiting: in no queue, not running; we won the transition.
                unsafe { scheduler::enqueue(process.home_core(), record, true) };
            }
            return;
        }
    }
}

/// The running process's heap, if process code (outside any kernel call) is running here:
/// what the global allocator serves.
#[inline(always)]
pub fn current_heap() -> Option<&'static ProcessHeap> {
    // SAFETY: the running process's record is live while it runs, and only this core
    // touches its heap meanwhile.
    scheduler::current_outside_kernel().map(|p| unsafe { &p.as_ref().heap })
}

/// The global allocator could not serve the running process: it exits with `heap_limit`
/// (over its `max_heap_size`) or `out_of_memory` (no frames left).
pub fn heap_exhausted(error: HeapError) -> ! {
    let reason = match error {
        HeapError::LimitExceeded { .. } => atom::HEAP_LIMIT,
        HeapError::OutOfMemory { .. } | HeapError::TooLarge => atom::OUT_OF_MEMORY,
    };
    exit(Term::atom(reason))
}

/// Reductions charged to the calling process so far (its share of CPU: every kernel call
/// and every tick it ran through).
pub fn self_reductions() -> u64 {
    // SAFETY: the running process's record is live.
    scheduler::current().map_or(0, |p| unsafe { p.as_ref() }.reductions())
}

/// Bytes the calling process's heap holds now (its chunks).
pub fn self_heap_bytes() -> usize {
    // SAFETY: the running process's record is live.
    scheduler::current().map_or(0, |p| unsafe { p.as_ref() }.heap_bytes())
}

/// A snapshot of one process, for the console and for tests (`process_info`).
#[derive(Clone, Copy, Debug)]
pub struct Info {
    pub pid: Pid,
    pub state: State,
    pub priority: Priority,
    pub core: usize,
    pub reductions: u64,
    pub heap_bytes: usize,
    pub stack_bytes: usize,
    /// Bytes of messages and signals delivered and not yet taken.
    pub mailbox_bytes: usize,
    pub messages_received: u64,
    pub registered: Option<crate::msg::Atom>,
    pub trap_exit: bool,
}

/// A snapshot of `pid` (taken while the process may be running elsewhere: the numbers are
/// a moment's, not a consistent set), or `None` if it is not alive.
pub fn info(pid: Pid) -> Option<Info> {
    let _kernel = KernelCall::enter();
    let pinned = TABLE.pin(pid)?;
    // SAFETY: pinned: live while the guard lives. The owner may be changing these plain
    // counters meanwhile; each is a single aligned word read once, for display.
    let p = unsafe { pinned.record().cast::<Process>().as_ref() };
    // SAFETY: as above; volatile, so each is one load of a value another core may write.
    let (reductions, heap_bytes, stack_low) = unsafe {
        (
            core::ptr::read_volatile(p.reductions.as_ptr()),
            p.heap.reserved_bytes(),
            core::ptr::read_volatile(p.stack_low.as_ptr()),
        )
    };
    Some(Info {
        pid,
        state: p.state(),
        priority: p.priority,
        core: p.home_core(),
        reductions,
        heap_bytes,
        stack_bytes: (p.stack_top - stack_low) as usize,
        mailbox_bytes: p.signals.queued_bytes(),
        messages_received: p.signals.received(),
        registered: p.signals.registered_name(),
        trap_exit: p.signals.trapping_exits(),
    })
}

/// Every live pid, in table order (a snapshot).
pub fn pids(mut f: impl FnMut(Pid)) {
    TABLE.for_each(|pid, _| f(pid));
}

/// Free pages, for memory accounting in tests and benchmarks.
pub fn free_pages() -> usize {
    pages::free_pages()
}
