//! Messages and failure together: send and selective receive, timeouts and timers, names,
//! links and exit signals, monitors. Each case runs as a process (the harness waits for it in
//! the kernel context); a case fails by panicking, which ends its process with
//! `{panic, Message}`, reported here.
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use kernel::msg::{Atom, Term, TermRef, View, atom};
use kernel::process::{self, Pid, RegistryError, SpawnOpts, Timeout};
use kernel::sched;
use kernel::testing::Suite;
use kernel::{smp, term, test_cases};

extern crate alloc;

pub const SUITE: Suite = Suite {
    name: "messages",
    cases: test_cases![
        send_and_receive_in_order,
        selective_receive_skips_and_keeps_order,
        receive_timeouts_zero_finite_infinity,
        per_sender_order_from_every_core,
        flood_of_100k_messages_none_lost,
        large_term_survives_its_sender,
        sleep_is_never_early_and_at_most_a_tick_late,
        send_after_and_cancel_timer,
        hundred_thousand_pending_timers,
        registry_names_and_errors,
        link_exit_reasons_without_trap,
        link_exit_reasons_with_trap,
        kill_cannot_be_trapped,
        exit_signal_from_a_process,
        links_across_cores,
        spawn_link_is_atomic,
        link_to_dead_process_gives_noproc,
        monitor_normal_exit_and_crash,
        monitor_dead_pid_gives_noproc,
        demonitor_before_exit_sends_nothing,
        many_monitors_on_one_process,
        exit_signal_ends_a_busy_loop,
        waiting_process_takes_no_cpu,
    ],
};

// ---------------------------------------------------------------------------------------
// Each case's body runs as a process: `super::in_process`.

use super::in_process;

fn recv() -> Term {
    process::receive(Timeout::Infinity).unwrap()
}

fn recv_within(ms: u64) -> Term {
    process::receive(Timeout::After(ms)).unwrap_or_else(|| panic!("nothing arrived within {ms} ms"))
}

fn expect_nothing(ms: u64) {
    if let Some(m) = process::receive(Timeout::After(ms)) {
        panic!("unexpected message {m}");
    }
}

fn is_tuple_tagged(t: TermRef<'_>, tag: Atom) -> bool {
    t.as_tuple()
        .and_then(|s| s.get(0))
        .is_some_and(|first| first.is_atom(tag))
}

/// A process that waits for `stop` (any message) and then returns `arg` as its exit reason.
fn waiter(arg: Term) -> Term {
    let _ = recv();
    arg
}

// ---------------------------------------------------------------------------------------

fn send_and_receive_in_order() {
    in_process(|| {
        let me = process::self_pid();
        for i in 0..10 {
            process::send(me, &Term::int(i));
        }
        for i in 0..10 {
            assert_eq!(recv(), Term::int(i));
        }
        // A copy: the sender keeps its own.
        let t = term!({hello, [1, 2, 3], "bin"});
        process::send(me, &t);
        assert_eq!(recv(), t);
    });
}

fn selective_receive_skips_and_keeps_order() {
    in_process(|| {
        let me = process::self_pid();
        for m in [
            term!({a, 1}),
            term!({b, 1}),
            term!({a, 2}),
            term!({b, 2}),
            term!({c, 1}),
        ] {
            process::send(me, &m);
        }
        let c = process::receive_match(Timeout::Infinity, |m| is_tuple_tagged(m, Atom::new("c")));
        assert_eq!(c.unwrap(), term!({c, 1}));
        let b = Atom::new("b");
        assert_eq!(
            process::receive_match(Timeout::Infinity, |m| is_tuple_tagged(m, b)).unwrap(),
            term!({b, 1})
        );
        // What was skipped is still there, in arrival order.
        assert_eq!(recv(), term!({a, 1}));
        assert_eq!(recv(), term!({a, 2}));
        assert_eq!(recv(), term!({b, 2}));
        assert_eq!(process::message_queue_len(), 0);
    });
}

fn receive_timeouts_zero_finite_infinity() {
    in_process(|| {
        let me = process::self_pid();
        // after 0: polls.
        assert!(process::receive(Timeout::After(0)).is_none());
        process::send(me, &term!(x));
        assert_eq!(process::receive(Timeout::After(0)).unwrap(), term!(x));
        // A finite timeout waits at least that long.
        let start = kernel::time::now_ns();
        assert!(process::receive(Timeout::After(20)).is_none());
        assert!(kernel::time::now_ns() - start >= 20_000_000);
        // Infinity: a message from another process ends the wait.
        process::spawn(
            |arg| {
                process::sleep(5);
                process::send(arg.as_pid().unwrap(), &term!(late));
            },
            Term::pid(me),
        )
        .unwrap();
        assert_eq!(recv(), term!(late));
        // A message that is not accepted does not end a finite wait early.
        process::send(me, &term!(other));
        let start = kernel::time::now_ns();
        assert!(process::receive_match(Timeout::After(10), |m| m.is_atom(atom::OK)).is_none());
        assert!(kernel::time::now_ns() - start >= 10_000_000);
        assert_eq!(recv(), term!(other));
    });
}

const PER_SENDER: i64 = 2_000;

fn per_sender_order_from_every_core() {
    in_process(|| {
        let me = process::self_pid();
        let cores: Vec<usize> = smp::online_cores().collect();
        let senders = cores.len() * 2;
        for (i, &core) in cores.iter().chain(cores.iter()).enumerate() {
            process::spawn_opt(
                |arg| {
                    let t = arg.as_tuple().unwrap();
                    let to = t.get(0).unwrap().as_pid().unwrap();
                    let id = t.get(1).unwrap().as_int().unwrap();
                    for n in 0..PER_SENDER {
                        process::send(to, &Term::tuple([Term::int(id), Term::int(n)]));
                    }
                },
                Term::tuple([Term::pid(me), Term::int(i as i64)]),
                SpawnOpts::new().core(core),
            )
            .unwrap();
        }
        let mut next = vec_of(senders, 0i64);
        for _ in 0..senders as i64 * PER_SENDER {
            let m = recv();
            let t = m.as_tuple().unwrap();
            let id = t.get(0).unwrap().as_int().unwrap() as usize;
            let n = t.get(1).unwrap().as_int().unwrap();
            assert_eq!(n, next[id], "sender {id} out of order");
            next[id] += 1;
        }
        assert!(next.iter().all(|&n| n == PER_SENDER));
        expect_nothing(0);
    });
}

fn vec_of<T: Clone>(n: usize, v: T) -> Vec<T> {
    core::iter::repeat_n(v, n).collect()
}

fn flood_of_100k_messages_none_lost() {
    in_process(|| {
        let me = process::self_pid();
        let cores: Vec<usize> = smp::online_cores().collect();
        let per = 100_000 / cores.len() as i64;
        for &core in &cores {
            process::spawn_opt(
                |arg| {
                    let t = arg.as_tuple().unwrap();
                    let to = t.get(0).unwrap().as_pid().unwrap();
                    let base = t.get(1).unwrap().as_int().unwrap();
                    let per = t.get(2).unwrap().as_int().unwrap();
                    for n in base..base + per {
                        process::send(to, &Term::int(n));
                    }
                },
                Term::tuple([Term::pid(me), Term::int(core as i64 * per), Term::int(per)]),
                SpawnOpts::new().core(core),
            )
            .unwrap();
        }
        let total = per as usize * cores.len();
        let mut seen = vec_of(total, false);
        for _ in 0..total {
            let n = recv().as_int().unwrap() as usize;
            assert!(!seen[n], "message {n} received twice");
            seen[n] = true;
        }
        assert!(seen.iter().all(|&s| s));
        expect_nothing(0);
    });
}

fn big() -> Term {
    Term::list((0..2000).map(|i| term!({(i as i64), "payload payload payload", [1.5, x]})))
}

fn large_term_survives_its_sender() {
    in_process(|| {
        let me = process::self_pid();
        let sender = process::spawn(
            |arg| process::send(arg.as_pid().unwrap(), &big()),
            Term::pid(me),
        )
        .unwrap();
        let mon = process::monitor(sender);
        // Wait until the sender has exited (and its heap is gone) before reading.
        let down =
            process::receive_match(Timeout::Infinity, |m| is_tuple_tagged(m, atom::DOWN)).unwrap();
        assert_eq!(
            down.as_tuple().unwrap().get(1).unwrap().as_reference(),
            Some(mon)
        );
        let junk = alloc::vec![0x5au8; 512 * 1024];
        core::hint::black_box(&junk);
        assert_eq!(recv(), big());
    });
}

// ---------------------------------------------------------------------------------------
// Timers.

fn tick_ns() -> u64 {
    1_000_000_000 / kernel::time::tick_hz() as u64
}

fn sleep_is_never_early_and_at_most_a_tick_late() {
    in_process(|| {
        for ms in [1u64, 2, 5, 13] {
            let start = kernel::time::now_ns();
            process::sleep(ms);
            let slept = kernel::time::now_ns() - start;
            assert!(slept >= ms * 1_000_000, "slept {slept} ns for {ms} ms");
            // Within one tick after the deadline where time is exact (icount: the tick
            // rounds the deadline up, so two tick lengths bound it); under real-time
            // emulation on a shared host the vCPU may be descheduled: a gross bound only.
            let slack = if kernel::boot::info().args.flag("icount") {
                2 * tick_ns()
            } else {
                200_000_000
            };
            assert!(
                slept <= ms * 1_000_000 + slack,
                "slept {slept} ns for {ms} ms"
            );
        }
    });
}

fn send_after_and_cancel_timer() {
    in_process(|| {
        let me = process::self_pid();
        let start = kernel::time::now_ns();
        process::send_after(10, me, term!(ding).as_ref()).unwrap();
        assert_eq!(recv_within(1000), term!(ding));
        assert!(kernel::time::now_ns() - start >= 10_000_000, "fired early");
        // Cancelled before firing: the time left, and no message.
        let t = process::send_after(50, me, term!(never).as_ref()).unwrap();
        let left = process::cancel_timer(t).expect("pending");
        // At most 50 ms, plus the rounding of the deadline up to a tick.
        let tick_ms = 1000 / kernel::time::tick_hz() as u64;
        assert!(left > 0 && left <= 50 + tick_ms, "{left} ms left");
        expect_nothing(80);
        // Cancelled after firing: None, and the message stays.
        let t = process::send_after(1, me, term!(fired).as_ref()).unwrap();
        process::sleep(5);
        assert_eq!(process::cancel_timer(t), None);
        assert_eq!(recv_within(0), term!(fired));
    });
}

fn hundred_thousand_pending_timers() {
    in_process(|| {
        let me = process::self_pid();
        let core = kernel::arch::cpu::core_index();
        let before = process::timers::pending(core);
        let timers: Vec<process::TimerRef> = (0..100_000u64)
            .map(|i| process::send_after(60_000 + i, me, Term::int(i as i64).as_ref()).unwrap())
            .collect();
        assert_eq!(process::timers::pending(core), before + 100_000);
        // One more fires on time among them.
        process::send_after(2, me, term!(soon).as_ref()).unwrap();
        assert_eq!(recv_within(1000), term!(soon));
        for t in timers {
            assert!(process::cancel_timer(t).is_some());
        }
        assert_eq!(process::timers::pending(core), before);
        expect_nothing(0);
    });
}

// ---------------------------------------------------------------------------------------
// Names.

fn registry_names_and_errors() {
    in_process(|| {
        let me = process::self_pid();
        let name = Atom::new("test_registry_name");
        assert_eq!(process::whereis(name), None);
        assert_eq!(
            process::send_named(name, &term!(x)),
            Err(RegistryError::NotRegistered)
        );
        process::register(name, me).unwrap();
        assert_eq!(process::whereis(name), Some(me));
        assert_eq!(process::register(name, me), Err(RegistryError::NameTaken));
        assert_eq!(
            process::register(Atom::new("second_name"), me),
            Err(RegistryError::AlreadyNamed)
        );
        process::send_named(name, &term!(by_name)).unwrap();
        assert_eq!(recv(), term!(by_name));
        // A dead pid cannot be registered.
        let dead = process::spawn(|_| (), Term::nil()).unwrap();
        let m = process::monitor(dead);
        let _ = process::receive_match(Timeout::Infinity, |t| is_tuple_tagged(t, atom::DOWN));
        let _ = m;
        assert_eq!(
            process::register(Atom::new("dead_name"), dead),
            Err(RegistryError::NotAlive)
        );
        // A name is freed when its process exits.
        let other = Atom::new("freed_at_exit");
        let pid = process::spawn(waiter, term!(normal)).unwrap();
        process::register(other, pid).unwrap();
        let m = process::monitor(pid);
        process::send(pid, &term!(stop));
        let _ = process::receive_match(Timeout::Infinity, |t| is_tuple_tagged(t, atom::DOWN));
        let _ = m;
        assert_eq!(process::whereis(other), None);
        process::unregister(name).unwrap();
        assert_eq!(process::whereis(name), None);
        assert_eq!(process::unregister(name), Err(RegistryError::NotRegistered));
    });
}

// ---------------------------------------------------------------------------------------
// Links and exit signals.

fn link_exit_reasons_without_trap() {
    in_process(|| {
        for (reason, dies) in [
            (term!(normal), false),
            (term!(shutdown), true),
            (term!({error, boom}), true),
        ] {
            match linked_pair(reason.clone(), false) {
                LinkResult::Died(r) => {
                    assert!(dies, "died with {r} on a {reason} exit");
                    assert_eq!(r, reason);
                }
                LinkResult::WentOn => assert!(!dies, "survived a {reason} exit"),
                LinkResult::Message(m) => panic!("non-trapping process got {m}"),
            }
        }
    });
}

fn link_exit_reasons_with_trap() {
    in_process(|| {
        for reason in [term!(normal), term!(shutdown), term!({error, boom})] {
            match linked_pair(reason.clone(), true) {
                LinkResult::Message(m) => {
                    let t = m.as_tuple().unwrap();
                    assert!(t.get(0).unwrap().is_atom(atom::EXIT), "{m}");
                    assert_eq!(t.get(2).unwrap().to_owned(), reason);
                }
                other => panic!("trapping process: {other:?} on {reason}"),
            }
        }
    });
}

#[derive(Debug)]
enum LinkResult {
    Died(Term),
    WentOn,
    Message(Term),
}

/// Spawn B (trapping or not) and A linked to B; A exits with `reason`. What became of B?
fn linked_pair(reason: Term, trap: bool) -> LinkResult {
    fn b_body(arg: Term) {
        let t = arg.as_tuple().unwrap();
        let parent = t.get(0).unwrap().as_pid().unwrap();
        process::trap_exit(t.get(1).unwrap().is_atom(atom::TRUE));
        process::send(parent, &term!(ready));
        match process::receive(Timeout::After(100)) {
            Some(m) => process::send(parent, &term!({got, (m)})),
            None => process::send(parent, &term!(nothing)),
        }
        let _ = process::receive(Timeout::Infinity); // wait to be told to stop
    }
    fn a_body(arg: Term) -> Term {
        let t = arg.as_tuple().unwrap();
        process::link(t.get(0).unwrap().as_pid().unwrap());
        t.get(1).unwrap().to_owned()
    }
    let me = process::self_pid();
    let b = process::spawn(b_body, Term::tuple([Term::pid(me), Term::from(trap)])).unwrap();
    let mon = process::monitor(b);
    assert_eq!(recv(), term!(ready));
    process::spawn(a_body, Term::tuple([Term::pid(b), reason])).unwrap();
    let m = recv();
    let result = match m.view() {
        View::Tuple(t) if t.get(0).unwrap().is_atom(atom::DOWN) => {
            LinkResult::Died(t.get(4).unwrap().to_owned())
        }
        View::Tuple(t) if t.get(0).unwrap().is_atom(Atom::new("got")) => {
            LinkResult::Message(t.get(1).unwrap().to_owned())
        }
        _ if m.is_atom(Atom::new("nothing")) => LinkResult::WentOn,
        _ => panic!("unexpected {m}"),
    };
    if !matches!(result, LinkResult::Died(_)) {
        process::send(b, &term!(stop));
        let _ = process::receive_match(Timeout::Infinity, |t| is_tuple_tagged(t, atom::DOWN));
    }
    let _ = mon;
    result
}

fn kill_cannot_be_trapped() {
    in_process(|| {
        fn trapper(_: Term) {
            process::trap_exit(true);
            loop {
                let _ = recv();
            }
        }
        let t = process::spawn(trapper, Term::nil()).unwrap();
        let mon = process::monitor(t);
        process::sleep(2);
        process::exit_signal(t, &term!(kill));
        let down =
            process::receive_match(Timeout::Infinity, |m| is_tuple_tagged(m, atom::DOWN)).unwrap();
        let d = down.as_tuple().unwrap();
        assert_eq!(d.get(1).unwrap().as_reference(), Some(mon));
        assert!(d.get(4).unwrap().is_atom(atom::KILLED), "{down}");
    });
}

fn exit_signal_from_a_process() {
    in_process(|| {
        // Not trapping: normal is ignored, other reasons kill.
        let p = process::spawn(waiter, term!(normal)).unwrap();
        let mon = process::monitor(p);
        process::exit_signal(p, &term!(normal));
        expect_nothing(20);
        process::exit_signal(p, &term!(custom_reason));
        let down = recv();
        assert_eq!(
            down.as_tuple().unwrap().get(1).unwrap().as_reference(),
            Some(mon)
        );
        assert!(
            down.as_tuple()
                .unwrap()
                .get(4)
                .unwrap()
                .is_atom(Atom::new("custom_reason"))
        );
        // Trapping: a message {'EXIT', From, Reason}.
        let me = process::self_pid();
        let p = process::spawn(
            |arg| {
                process::trap_exit(true);
                let parent = arg.as_pid().unwrap();
                process::send(parent, &term!(ready));
                let m = recv();
                process::send(parent, &m);
            },
            Term::pid(me),
        )
        .unwrap();
        assert_eq!(recv(), term!(ready));
        process::exit_signal(p, &term!(please));
        let m = recv();
        assert_eq!(
            m,
            Term::tuple([Term::atom(atom::EXIT), Term::pid(me), term!(please)])
        );
    });
}

fn links_across_cores() {
    in_process(|| {
        let cores: Vec<usize> = smp::online_cores().collect();
        let me = process::self_pid();
        process::trap_exit(true);
        let mut pids = Vec::new();
        for &core in &cores {
            let pid = process::spawn_opt(
                waiter,
                term!({crashed_on, (core as i64)}),
                SpawnOpts::new().core(core).link(true),
            )
            .unwrap();
            pids.push(pid);
        }
        for (&pid, &core) in pids.iter().zip(&cores) {
            process::send(pid, &term!(stop));
            let m = recv();
            assert_eq!(
                m,
                Term::tuple([
                    Term::atom(atom::EXIT),
                    Term::pid(pid),
                    term!({crashed_on, (core as i64)})
                ]),
                "from core {core}"
            );
        }
        let _ = me;
        process::trap_exit(false);
    });
}

static SPAWNED_LINKED: AtomicBool = AtomicBool::new(false);

fn spawn_link_is_atomic() {
    in_process(|| {
        // A child that dies at once still takes its parent (trapping here) with it: the link
        // existed before it ran.
        process::trap_exit(true);
        let child =
            process::spawn_link(|_| Err::<(), Term>(term!(instant_death)), Term::nil()).unwrap();
        let m = recv_within(1000);
        assert_eq!(
            m,
            Term::tuple([
                Term::atom(atom::EXIT),
                Term::pid(child),
                term!(instant_death)
            ])
        );
        process::trap_exit(false);
        SPAWNED_LINKED.store(true, Ordering::SeqCst);
    });
    assert!(SPAWNED_LINKED.load(Ordering::SeqCst));
}

fn link_to_dead_process_gives_noproc() {
    in_process(|| {
        let dead = process::spawn(|_| (), Term::nil()).unwrap();
        process::sleep(2);
        assert!(!process::is_alive(dead));
        process::trap_exit(true);
        process::link(dead);
        assert_eq!(
            recv_within(100),
            Term::tuple([
                Term::atom(atom::EXIT),
                Term::pid(dead),
                Term::atom(atom::NOPROC)
            ])
        );
        process::trap_exit(false);
    });
}

// ---------------------------------------------------------------------------------------
// Monitors.

fn down_reason(reference: kernel::msg::Reference, pid: Pid) -> Term {
    let m = process::receive_match(Timeout::After(1000), |m| {
        m.as_tuple()
            .is_some_and(|t| t.len() == 5 && t.get(1).unwrap().as_reference() == Some(reference))
    })
    .expect("no DOWN");
    let t = m.as_tuple().unwrap();
    assert!(t.get(0).unwrap().is_atom(atom::DOWN));
    assert!(t.get(2).unwrap().is_atom(atom::PROCESS));
    assert_eq!(t.get(3).unwrap().as_pid(), Some(pid));
    t.get(4).unwrap().to_owned()
}

fn monitor_normal_exit_and_crash() {
    in_process(|| {
        let p = process::spawn(waiter, term!(normal)).unwrap();
        let r = process::monitor(p);
        process::send(p, &term!(go));
        assert!(down_reason(r, p).is_atom(atom::NORMAL));
        let p = process::spawn(
            |_| -> () {
                let _ = recv();
                panic!("crash on purpose");
            },
            Term::nil(),
        )
        .unwrap();
        let r = process::monitor(p);
        process::send(p, &term!(go));
        let reason = down_reason(r, p);
        assert!(is_tuple_tagged(reason.as_ref(), atom::PANIC), "{reason}");
        expect_nothing(10);
    });
}

fn monitor_dead_pid_gives_noproc() {
    in_process(|| {
        let dead = process::spawn(|_| (), Term::nil()).unwrap();
        process::sleep(2);
        let r = process::monitor(dead);
        assert!(down_reason(r, dead).is_atom(atom::NOPROC));
    });
}

fn demonitor_before_exit_sends_nothing() {
    in_process(|| {
        let p = process::spawn(waiter, term!(normal)).unwrap();
        let r = process::monitor(p);
        assert!(process::demonitor(r));
        assert!(!process::demonitor(r), "already gone");
        let watch = process::monitor(p);
        process::send(p, &term!(go));
        down_reason(watch, p);
        // Only the second monitor's DOWN came.
        expect_nothing(10);
    });
}

fn many_monitors_on_one_process() {
    in_process(|| {
        let p = process::spawn(waiter, term!({ bye })).unwrap();
        let refs: Vec<_> = (0..500).map(|_| process::monitor(p)).collect();
        process::send(p, &term!(go));
        for r in refs {
            assert_eq!(down_reason(r, p), term!({ bye }));
        }
        expect_nothing(10);
    });
}

static SPINS: AtomicU64 = AtomicU64::new(0);

fn exit_signal_ends_a_busy_loop() {
    in_process(|| {
        fn spinner(_: Term) {
            loop {
                SPINS.fetch_add(1, Ordering::Relaxed);
            }
        }
        // On another core when there is one: the signal crosses cores and stops native code.
        let core = smp::online_cores().last().unwrap();
        let p = process::spawn_opt(spinner, Term::nil(), SpawnOpts::new().core(core)).unwrap();
        let r = process::monitor(p);
        while SPINS.load(Ordering::Relaxed) == 0 {
            process::yield_now();
        }
        process::exit_signal(p, &term!(stop_spinning));
        assert_eq!(down_reason(r, p), term!(stop_spinning));
    });
}

static WAITER_WOKE: AtomicUsize = AtomicUsize::new(0);

fn waiting_process_takes_no_cpu() {
    in_process(|| {
        let me = process::self_pid();
        let p = process::spawn(
            |arg| {
                let _ = recv();
                WAITER_WOKE.fetch_add(1, Ordering::SeqCst);
                process::send(arg.as_pid().unwrap(), &term!(woke));
            },
            Term::pid(me),
        )
        .unwrap();
        process::sleep(2);
        let before = sched::snapshot(0).switches;
        process::sleep(20);
        // Only our own sleep's switches: the waiter was not scheduled.
        assert!(sched::snapshot(0).switches - before <= 4);
        assert_eq!(WAITER_WOKE.load(Ordering::SeqCst), 0);
        process::send(p, &term!(wake));
        assert_eq!(recv(), term!(woke));
    });
}
