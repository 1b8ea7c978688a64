//! Processes: spawn, run and exit on every core; pids that go stale; terms that survive
//! their creator; stacks that grow and overflow; heaps that grow, hit their limit and stay
//! bounded; faults and panics that kill only their process. Exit reasons are observed
//! through the test-only exit hook (monitors come with messages).
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use kernel::mem::heap::KERNEL_HEAP;
use kernel::msg::{Term, View, atom};
use kernel::process::{self, Pid, SpawnError, SpawnOpts};
use kernel::sched::{self, Priority};
use kernel::sync::IrqMutex;
use kernel::testing::Suite;
use kernel::{smp, term, test_cases};

extern crate alloc;

pub const SUITE: Suite = Suite {
    name: "process",
    cases: test_cases![
        spawn_runs_the_entry_with_its_argument_and_exits_normal,
        exit_reasons_from_return_and_exit_call,
        stale_pid_never_reaches_a_new_process,
        spawn_options_out_of_range_are_errors,
        ten_thousand_processes_per_core_all_run_and_exit,
        spawn_exit_cycles_return_to_baseline,
        term_argument_survives_its_creator,
        yield_round_robin_within_a_priority,
        max_before_high_before_normal,
        tight_loop_is_preempted,
        four_hogs_share_one_core_fairly,
        low_gets_an_eighth_of_normal_turns,
        recursion_to_48k_succeeds,
        stack_overflow_kills_only_that_process,
        heap_of_10m_under_16m_limit_succeeds,
        heap_limit_exceeded_kills_with_heap_limit,
        alloc_free_loop_stays_within_a_few_chunks,
        null_dereference_kills_with_data_abort,
        undefined_instruction_kills_with_undefined_instruction,
        write_to_kernel_text_kills_with_data_abort,
        jump_to_data_page_kills_with_instruction_abort,
        panic_kills_with_panic_message,
        spawn_when_memory_is_exhausted_is_an_error,
        park_and_unpark_across_cores,
        counters_show_switches_and_reductions,
    ],
};

// ---------------------------------------------------------------------------------------
// Observing exits.

/// The last exits seen by the hook (pid and a kernel-heap copy of the reason).
static EXITS: IrqMutex<Vec<(Pid, Term)>> = IrqMutex::new(Vec::new());
const KEEP_EXITS: usize = 256;
static EXIT_COUNT: AtomicUsize = AtomicUsize::new(0);

fn record_exit(pid: Pid, reason: &Term) {
    EXIT_COUNT.fetch_add(1, Ordering::Relaxed);
    // The hook runs inside a kernel call: the clone lands in the kernel heap.
    let reason = reason.clone();
    let mut exits = EXITS.lock();
    if exits.len() == KEEP_EXITS {
        exits.remove(0);
    }
    exits.push((pid, reason));
}

fn observe() {
    process::set_exit_hook(Some(record_exit));
}

fn exit_reason(pid: Pid) -> Option<Term> {
    EXITS
        .lock()
        .iter()
        .rev()
        .find(|(p, _)| *p == pid)
        .map(|(_, r)| r.clone())
}

/// Run processes until `pid` has exited; its reason.
fn wait_exit(pid: Pid) -> Term {
    observe();
    sched::run_until(|| !process::is_alive(pid));
    exit_reason(pid).unwrap_or_else(|| panic!("no exit recorded for {pid}"))
}

fn spawn_and_wait<R: process::ExitReason>(entry: fn(Term) -> R, arg: Term) -> Term {
    observe();
    let pid = process::spawn(entry, arg).expect("spawn");
    wait_exit(pid)
}

fn assert_normal(reason: &Term) {
    assert!(reason.is_atom(atom::NORMAL), "exit reason {reason}");
}

/// `{fault, Kind, Far, Pc}`: the kind and the faulting address.
fn fault_of(reason: &Term) -> (kernel::msg::Atom, u64) {
    let t = reason
        .as_tuple()
        .unwrap_or_else(|| panic!("not a fault: {reason}"));
    assert_eq!(t.len(), 4, "{reason}");
    assert!(t.get(0).unwrap().is_atom(atom::FAULT), "{reason}");
    (
        t.get(1).unwrap().as_atom().unwrap(),
        t.get(2).unwrap().as_int().unwrap() as u64,
    )
}

/// A process that runs to completion (the core carries on after a crash).
fn still_works() {
    assert_normal(&spawn_and_wait(|_| (), Term::nil()));
}

// ---------------------------------------------------------------------------------------

static SEEN_ARG: AtomicU64 = AtomicU64::new(0);
static SEEN_SELF: AtomicU64 = AtomicU64::new(0);

fn spawn_runs_the_entry_with_its_argument_and_exits_normal() {
    let before = process::count();
    let pid = process::spawn(
        |arg| {
            SEEN_ARG.store(arg.as_int().unwrap() as u64, Ordering::SeqCst);
            SEEN_SELF.store(process::self_pid().to_bits(), Ordering::SeqCst);
        },
        Term::int(4242),
    )
    .unwrap();
    assert!(process::is_alive(pid));
    assert_eq!(process::count(), before + 1);
    assert_normal(&wait_exit(pid));
    assert_eq!(SEEN_ARG.load(Ordering::SeqCst), 4242);
    assert_eq!(Pid::from_bits(SEEN_SELF.load(Ordering::SeqCst)), pid);
    assert!(!process::is_alive(pid));
    assert_eq!(process::count(), before);
}

fn deep_exit(depth: u32) -> ! {
    if depth == 0 {
        process::exit(term!({shutdown, (depth as i64)}))
    }
    deep_exit(core::hint::black_box(depth - 1))
}

fn exit_reasons_from_return_and_exit_call() {
    let reason = spawn_and_wait(|_| Err::<(), Term>(term!({error, because})), Term::nil());
    assert_eq!(alloc::format!("{reason}"), "{error,because}");
    let reason = spawn_and_wait(|_| -> () { deep_exit(5) }, Term::nil());
    assert_eq!(alloc::format!("{reason}"), "{shutdown,0}");
    let reason = spawn_and_wait(|arg| arg, term!({returned, [1, 2, 3]}));
    assert_eq!(alloc::format!("{reason}"), "{returned,[1,2,3]}");
}

fn stale_pid_never_reaches_a_new_process() {
    let old = process::spawn(|_| (), Term::nil()).unwrap();
    wait_exit(old);
    let new = process::spawn(|_| (), Term::nil()).unwrap();
    assert_eq!(new.index(), old.index(), "slots are reused");
    assert_ne!(new, old);
    assert!(!process::is_alive(old));
    assert!(process::is_alive(new));
    assert!(!process::unpark(old), "a stale pid reaches nothing");
    wait_exit(new);
}

fn spawn_options_out_of_range_are_errors() {
    let before = (process::count(), process::free_pages());
    let e = process::spawn_opt(|_| (), Term::nil(), SpawnOpts::new().core(99));
    assert_eq!(e, Err(SpawnError::NoSuchCore(99)));
    let e = process::spawn_opt(|_| (), Term::nil(), SpawnOpts::new().stack_limit(4096));
    assert!(matches!(e, Err(SpawnError::BadOption(_))), "{e:?}");
    let e = process::spawn_opt(|_| (), Term::nil(), SpawnOpts::new().stack_limit(1 << 20));
    assert!(matches!(e, Err(SpawnError::BadOption(_))), "{e:?}");
    // An argument that does not fit the child's heap limit: an error, nothing leaked.
    let big = Term::binary(&vec![7u8; 64 * 1024]);
    let e = process::spawn_opt(|_| (), big, SpawnOpts::new().max_heap_size(16 * 1024));
    assert_eq!(e, Err(SpawnError::OutOfMemory));
    assert_eq!((process::count(), process::free_pages()), before);
}

// ---------------------------------------------------------------------------------------
// Many processes.

const PER_CORE: usize = 10_000;
static RAN: [AtomicUsize; kernel::MAX_CORES] = [const { AtomicUsize::new(0) }; kernel::MAX_CORES];
static WRONG_CORE: AtomicUsize = AtomicUsize::new(0);

fn child(arg: Term) {
    let core = arg.as_int().unwrap() as usize;
    if kernel::arch::cpu::core_index() != core {
        WRONG_CORE.fetch_add(1, Ordering::Relaxed);
    }
    RAN[core].fetch_add(1, Ordering::Relaxed);
}

fn spawner(arg: Term) {
    for _ in 0..PER_CORE {
        process::spawn(child, arg.clone()).expect("spawn child");
    }
}

fn ten_thousand_processes_per_core_all_run_and_exit() {
    let baseline = process::count();
    let cores: Vec<usize> = smp::online_cores().collect();
    for &core in &cores {
        RAN[core].store(0, Ordering::Relaxed);
        process::spawn_opt(spawner, Term::int(core as i64), SpawnOpts::new().core(core)).unwrap();
    }
    sched::run_until(|| {
        cores
            .iter()
            .all(|&c| RAN[c].load(Ordering::Relaxed) == PER_CORE)
            && process::count() == baseline
    });
    assert_eq!(
        WRONG_CORE.load(Ordering::Relaxed),
        0,
        "a child ran off its core"
    );
    for &core in &cores {
        let s = sched::snapshot(core);
        assert!(s.spawned >= PER_CORE as u64, "core {core}: {s:?}");
    }
}

fn spawn_exit_cycles_return_to_baseline() {
    // Warm up: the first cycle maps page tables and fills the page cache.
    let warm = process::spawn(|_| (), Term::nil()).unwrap();
    sched::run_until(|| !process::is_alive(warm));
    let frames = process::free_pages();
    let heap = KERNEL_HEAP.stats().used;
    for _ in 0..100_000 {
        let pid = process::spawn(|_| (), Term::nil()).unwrap();
        sched::run_until(|| !process::is_alive(pid));
    }
    assert_eq!(process::free_pages(), frames, "frames back to baseline");
    assert_eq!(
        KERNEL_HEAP.stats().used,
        heap,
        "kernel heap back to baseline"
    );
}

fn big_term() -> Term {
    let items: Vec<Term> = (0..200)
        .map(|i| term!({item, (i as i64), "some text", [1.5, (Term::binary(&[i as u8; 40]))]}))
        .collect();
    Term::tuple([Term::atom(atom::OK), Term::list(items)])
}

static TERM_OK: AtomicBool = AtomicBool::new(false);

fn term_argument_survives_its_creator() {
    fn receiver(arg: Term) {
        let creator = arg.as_tuple().unwrap().get(0).unwrap().as_pid().unwrap();
        while process::is_alive(creator) {
            process::yield_now();
        }
        // Scribble over the creator's freed memory by allocating and filling a lot.
        let junk = vec![0xa5u8; 256 * 1024];
        core::hint::black_box(&junk);
        let expected = big_term();
        let got = arg.as_tuple().unwrap().get(1).unwrap().to_owned();
        TERM_OK.store(got == expected, Ordering::SeqCst);
    }
    fn creator(_: Term) {
        let t = Term::tuple([Term::pid(process::self_pid()), big_term()]);
        process::spawn(receiver, t).unwrap();
    }
    let before = process::count();
    process::spawn(creator, Term::nil()).unwrap();
    sched::run_until(|| process::count() == before);
    assert!(
        TERM_OK.load(Ordering::SeqCst),
        "the copy differs from the original"
    );
}

// ---------------------------------------------------------------------------------------
// Scheduling.

/// Fixed capacity: processes push into it, and a growable `Vec` would put its buffer in the
/// pushing process's heap, which goes away when that process exits.
static ORDER: IrqMutex<heapless::Vec<u8, 32>> = IrqMutex::new(heapless::Vec::new());

fn yield_round_robin_within_a_priority() {
    fn worker(arg: Term) {
        let id = arg.as_int().unwrap() as u8;
        for _ in 0..3 {
            ORDER.lock().push(id).unwrap();
            process::yield_now();
        }
    }
    ORDER.lock().clear();
    let before = process::count();
    for id in 0..3 {
        process::spawn(worker, Term::int(id)).unwrap();
    }
    sched::run_until(|| process::count() == before);
    assert_eq!(ORDER.lock()[..], [0, 1, 2, 0, 1, 2, 0, 1, 2]);
}

fn max_before_high_before_normal() {
    fn record(arg: Term) {
        ORDER.lock().push(arg.as_int().unwrap() as u8).unwrap();
    }
    fn parent(_: Term) {
        for p in [
            Priority::Normal,
            Priority::Low,
            Priority::High,
            Priority::Max,
        ] {
            let opts = SpawnOpts::new().priority(p);
            process::spawn_opt(record, Term::int(p as i64), opts).unwrap();
        }
        process::yield_now();
        ORDER.lock().push(100).unwrap();
    }
    ORDER.lock().clear();
    let before = process::count();
    process::spawn(parent, Term::nil()).unwrap();
    sched::run_until(|| process::count() == before);
    let max = Priority::Max as u8;
    let high = Priority::High as u8;
    let normal = Priority::Normal as u8;
    let low = Priority::Low as u8;
    // The parent (normal) yields to max and high at once, then takes its turn in normal's
    // queue behind the normal child; the low child runs last (only low work left).
    assert_eq!(ORDER.lock()[..], [max, high, normal, 100, low]);
}

static STOP: AtomicBool = AtomicBool::new(false);
static LOOPS: AtomicU64 = AtomicU64::new(0);

fn tight_loop_is_preempted() {
    fn hog(_: Term) {
        while !STOP.load(Ordering::Relaxed) {
            LOOPS.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn stopper(_: Term) {
        STOP.store(true, Ordering::Relaxed);
    }
    STOP.store(false, Ordering::Relaxed);
    let before = process::count();
    let preemptions = sched::snapshot(0).preemptions;
    process::spawn(hog, Term::nil()).unwrap();
    process::spawn(stopper, Term::nil()).unwrap();
    // Without preemption the hog would run for ever and this would never return.
    sched::run_until(|| process::count() == before);
    assert!(LOOPS.load(Ordering::Relaxed) > 0);
    assert!(sched::snapshot(0).preemptions > preemptions);
}

/// Hogs: CPU-bound processes on core 0 that make no kernel call until the deadline tick,
/// then report the reductions charged to them (their share of the core: every tick they
/// ran through charged them).
static HOG_REDUCTIONS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static DEADLINE_TICK: AtomicU64 = AtomicU64::new(0);

fn hog_until_deadline(arg: Term) {
    let me = arg.as_int().unwrap() as usize;
    let mut spins = 0u64;
    while kernel::time::ticks(0) < DEADLINE_TICK.load(Ordering::Relaxed) {
        spins = core::hint::black_box(spins + 1);
    }
    HOG_REDUCTIONS[me].store(process::self_reductions(), Ordering::SeqCst);
}

fn run_hogs(priorities: &[Priority], ticks: u64) -> Vec<u64> {
    DEADLINE_TICK.store(kernel::time::ticks(0) + ticks, Ordering::Relaxed);
    let before = process::count();
    for (i, &p) in priorities.iter().enumerate() {
        let opts = SpawnOpts::new().priority(p).core(0);
        process::spawn_opt(hog_until_deadline, Term::int(i as i64), opts).unwrap();
    }
    sched::run_until(|| process::count() == before);
    (0..priorities.len())
        .map(|i| HOG_REDUCTIONS[i].load(Ordering::SeqCst))
        .collect()
}

fn four_hogs_share_one_core_fairly() {
    // 40 slices of 2 ticks: 10 each.
    let shares = run_hogs(&[Priority::Normal; 4], 80);
    let mean = shares.iter().sum::<u64>() / 4;
    for (i, &share) in shares.iter().enumerate() {
        assert!(
            share * 10 >= mean * 8 && share * 10 <= mean * 12,
            "hog {i} was charged {share} reductions, mean {mean}: {shares:?}"
        );
    }
}

fn low_gets_an_eighth_of_normal_turns() {
    // 8 rounds of 8 normal slices and 1 low slice, 2 ticks each.
    let shares = run_hogs(&[Priority::Normal, Priority::Low], 8 * 9 * 2);
    let (normal, low) = (shares[0], shares[1]);
    assert!(
        low * 8 * 10 >= normal * 7 && low * 8 * 10 <= normal * 13,
        "normal was charged {normal} reductions, low {low}: not about 1/8"
    );
}

// ---------------------------------------------------------------------------------------
// Stacks.

#[inline(never)]
fn recurse(depth: usize) -> u64 {
    let frame = core::hint::black_box([depth as u8; 1024]);
    if depth == 0 {
        return frame[0] as u64;
    }
    recurse(depth - 1) + frame[100] as u64
}

fn recursion_to_48k_succeeds() {
    let reason = spawn_and_wait(
        |_| {
            core::hint::black_box(recurse(46));
        },
        Term::nil(),
    );
    assert_normal(&reason);
}

fn stack_overflow_kills_only_that_process() {
    observe();
    STOP.store(false, Ordering::Relaxed);
    let bystander = process::spawn(
        |_| {
            for _ in 0..100 {
                process::yield_now();
            }
        },
        Term::nil(),
    )
    .unwrap();
    let deep = process::spawn(
        |_| {
            core::hint::black_box(recurse(200));
        },
        Term::nil(),
    )
    .unwrap();
    let reason = wait_exit(deep);
    assert!(reason.is_atom(atom::STACK_OVERFLOW), "{reason}");
    assert_normal(&wait_exit(bystander));
    still_works();
}

// ---------------------------------------------------------------------------------------
// Heaps.

const MIB: usize = 1 << 20;

fn heap_of_10m_under_16m_limit_succeeds() {
    fn big(_: Term) {
        let mut v: Vec<u8> = Vec::with_capacity(10 * MIB);
        v.resize(10 * MIB, 0x5a);
        assert!(v.iter().step_by(4096).all(|&b| b == 0x5a));
        let mut small = Vec::new();
        for i in 0..10_000u32 {
            small.push(alloc::boxed::Box::new(i));
        }
        assert!(small.iter().enumerate().all(|(i, b)| **b == i as u32));
    }
    observe();
    let before = process::free_pages();
    let pid =
        process::spawn_opt(big, Term::nil(), SpawnOpts::new().max_heap_size(16 * MIB)).unwrap();
    assert_normal(&wait_exit(pid));
    assert_eq!(process::free_pages(), before, "the heap went back whole");
}

fn heap_limit_exceeded_kills_with_heap_limit() {
    fn greedy(_: Term) {
        let v: Vec<u8> = vec![1u8; 32 * MIB];
        core::hint::black_box(v);
    }
    observe();
    let before = process::free_pages();
    let pid = process::spawn_opt(
        greedy,
        Term::nil(),
        SpawnOpts::new().max_heap_size(16 * MIB),
    )
    .unwrap();
    let reason = wait_exit(pid);
    assert!(reason.is_atom(atom::HEAP_LIMIT), "{reason}");
    assert_eq!(process::free_pages(), before);
    still_works();
}

static PEAK_HEAP: AtomicUsize = AtomicUsize::new(0);

fn alloc_free_loop_stays_within_a_few_chunks() {
    fn churn(_: Term) {
        let mut keep: Vec<alloc::boxed::Box<[u8]>> = Vec::with_capacity(8);
        let mut peak = 0;
        for i in 0..1_000_000usize {
            let size = 16 + (i * 7919) % 2000;
            let block = vec![i as u8; size].into_boxed_slice();
            if keep.len() == 8 {
                keep.remove(i % 8);
            }
            keep.push(block);
            if i % 1024 == 0 {
                peak = peak.max(process::self_heap_bytes());
            }
        }
        PEAK_HEAP.store(peak, Ordering::SeqCst);
    }
    assert_normal(&spawn_and_wait(churn, Term::nil()));
    let peak = PEAK_HEAP.load(Ordering::SeqCst);
    assert!(
        peak > 0 && peak <= 256 * 1024,
        "heap peaked at {peak} bytes"
    );
}

// ---------------------------------------------------------------------------------------
// Faults.

fn null_dereference_kills_with_data_abort() {
    let reason = spawn_and_wait(
        |_| {
            let p = core::hint::black_box(core::ptr::null::<u64>());
            // SAFETY: not safe at all: this process is meant to die here.
            core::hint::black_box(unsafe { p.read_volatile() });
        },
        Term::nil(),
    );
    assert_eq!(fault_of(&reason), (atom::DATA_ABORT, 0), "{reason}");
    still_works();
}

fn undefined_instruction_kills_with_undefined_instruction() {
    let reason = spawn_and_wait(
        |_| {
            // SAFETY: meant to fault.
            unsafe { core::arch::asm!("udf #0") };
        },
        Term::nil(),
    );
    assert_eq!(fault_of(&reason).0, atom::UNDEFINED_INSTRUCTION, "{reason}");
    still_works();
}

fn write_to_kernel_text_kills_with_data_abort() {
    let reason = spawn_and_wait(
        |_| {
            let text = core::hint::black_box(still_works as *const () as *mut u32);
            // SAFETY: meant to fault: text is mapped read-only.
            unsafe { text.write_volatile(0) };
        },
        Term::nil(),
    );
    let text = still_works as *const () as u64;
    assert_eq!(fault_of(&reason), (atom::DATA_ABORT, text), "{reason}");
    still_works();
}

static DATA_PAGE: [u32; 1024] = [0xd503201f; 1024]; // NOPs, in a never-executable page

fn jump_to_data_page_kills_with_instruction_abort() {
    let reason = spawn_and_wait(
        |_| {
            let target = core::hint::black_box(DATA_PAGE.as_ptr());
            // SAFETY: meant to fault: data pages are execute-never.
            let f: extern "C" fn() = unsafe { core::mem::transmute(target) };
            f();
        },
        Term::nil(),
    );
    let data = DATA_PAGE.as_ptr() as u64;
    assert_eq!(
        fault_of(&reason),
        (atom::INSTRUCTION_ABORT, data),
        "{reason}"
    );
    still_works();
}

fn panic_kills_with_panic_message() {
    let reason = spawn_and_wait(
        |arg| -> () {
            let n = arg.as_int().unwrap();
            panic!("deliberate panic number {n}");
        },
        Term::int(7),
    );
    match reason.view() {
        View::Tuple(t) if t.len() == 2 && t.get(0).unwrap().is_atom(atom::PANIC) => {
            let text = core::str::from_utf8(t.get(1).unwrap().as_binary().unwrap()).unwrap();
            assert!(text.starts_with("deliberate panic number 7 at "), "{text}");
            assert!(text.contains("process.rs"), "{text}");
        }
        _ => panic!("not a panic reason: {reason}"),
    }
    still_works();
}

// ---------------------------------------------------------------------------------------
// Exhaustion.

/// Take every free frame from the buddy allocator (what the page caches hold stays there).
fn take_all_frames() -> Vec<(u64, usize)> {
    use kernel::mem::frames::FRAMES;
    let mut taken = Vec::new();
    for count in [512, 64, 1] {
        while let Ok(address) = FRAMES.allocate(count) {
            taken.push((address, count));
        }
    }
    taken
}

fn give_back(taken: Vec<(u64, usize)>) {
    for (address, count) in taken {
        kernel::mem::frames::FRAMES.free(address, count);
    }
}

fn spawn_when_memory_is_exhausted_is_an_error() {
    fn idle(_: Term) {
        PARKED.fetch_add(1, Ordering::SeqCst);
        while !STOP.load(Ordering::SeqCst) {
            process::park();
        }
    }
    fn grow(_: Term) {
        let v: Vec<u8> = vec![3u8; 64 * 1024];
        core::hint::black_box(v);
    }
    observe();
    PARKED.store(0, Ordering::SeqCst);
    STOP.store(false, Ordering::SeqCst);
    let before = process::count();
    let taken = take_all_frames();
    let mut pids = Vec::new();
    let error = loop {
        match process::spawn(idle, Term::nil()) {
            Ok(pid) => pids.push(pid),
            Err(e) => break e,
        }
        assert!(pids.len() < 100_000, "spawn never failed");
    };
    assert_eq!(error, SpawnError::OutOfMemory);
    let spawned = pids.len();
    sched::run_until(|| PARKED.load(Ordering::SeqCst) == spawned);
    assert!(
        pids.iter().all(|&p| process::is_alive(p)),
        "every spawned process lives"
    );
    give_back(taken);
    // Memory back: the same kernel spawns again, and a heap that cannot grow ends only its
    // process.
    let pid = process::spawn(grow, Term::nil()).unwrap();
    assert_normal(&wait_exit(pid));
    let taken = take_all_frames();
    let pid = process::spawn(grow, Term::nil());
    give_back(taken);
    if let Ok(pid) = pid {
        let reason = wait_exit(pid);
        assert!(
            reason.is_atom(atom::OUT_OF_MEMORY) || reason.is_atom(atom::NORMAL),
            "{reason}"
        );
    }
    STOP.store(true, Ordering::SeqCst);
    for &pid in &pids {
        assert!(process::unpark(pid));
    }
    sched::run_until(|| process::count() == before);
    still_works();
}

// ---------------------------------------------------------------------------------------

static PARKED: AtomicUsize = AtomicUsize::new(0);
static WOKEN: AtomicUsize = AtomicUsize::new(0);

fn park_and_unpark_across_cores() {
    fn sleeper(_: Term) {
        PARKED.fetch_add(1, Ordering::SeqCst);
        process::park();
        WOKEN.fetch_add(1, Ordering::SeqCst);
    }
    PARKED.store(0, Ordering::SeqCst);
    WOKEN.store(0, Ordering::SeqCst);
    let before = process::count();
    let cores: Vec<usize> = smp::online_cores().collect();
    let pids: Vec<Pid> = cores
        .iter()
        .map(|&c| process::spawn_opt(sleeper, Term::nil(), SpawnOpts::new().core(c)).unwrap())
        .collect();
    sched::run_until(|| PARKED.load(Ordering::SeqCst) == cores.len());
    // Parked processes take no CPU: every core goes idle (core 0 is here, so it is).
    assert!(crate::suites::wait_until(1000, || {
        cores.iter().all(|&c| sched::snapshot(c).runnable == 0)
    }));
    assert_eq!(WOKEN.load(Ordering::SeqCst), 0);
    for &pid in &pids {
        assert!(process::unpark(pid));
    }
    sched::run_until(|| process::count() == before);
    assert_eq!(WOKEN.load(Ordering::SeqCst), cores.len());
}

fn counters_show_switches_and_reductions() {
    let before = sched::snapshot(0);
    let pid = process::spawn(
        |_| {
            for _ in 0..10 {
                process::yield_now();
            }
        },
        Term::nil(),
    )
    .unwrap();
    wait_exit(pid);
    let after = sched::snapshot(0);
    assert!(after.switches > before.switches, "{before:?} {after:?}");
    assert!(
        after.reductions >= before.reductions + 10,
        "{before:?} {after:?}"
    );
    assert!(after.spawned > before.spawned);
    assert!(after.exited > before.exited);
}
