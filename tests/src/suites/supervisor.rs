//! Supervisors: strategies, restart types, restart intensity, trees, shutdown timeouts and
//! the supervisor API. Each case runs as a process (the harness waits for it in the kernel
//! context) and is the supervisors' parent; the children report `{started, Id, Pid}`,
//! `{stopping, Id}` and `{ignoring, Id}` to it, so orders can be checked.
use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use kernel::msg::{Atom, Term, TermRef, atom};
use kernel::process::supervisor::{
    self, ChildCounts, ChildSpec, Restart, Shutdown, StartError, Strategy, SupervisorError,
    SupervisorSpec,
};
use kernel::process::{self, Pid, SpawnOpts, Timeout};
use kernel::sched;
use kernel::sync::IrqMutex;
use kernel::testing::Suite;
use kernel::{smp, term, test_cases};

extern crate alloc;

pub const SUITE: Suite = Suite {
    name: "supervisor",
    cases: test_cases![
        one_for_one_restarts_only_the_crashed_child,
        one_for_all_restarts_all_in_order,
        rest_for_one_restarts_the_later_children,
        permanent_child_is_always_restarted,
        transient_child_is_restarted_only_after_abnormal_exit,
        temporary_child_is_never_restarted,
        intensity_exceeded_shuts_the_supervisor_down,
        tree_starts_in_order_and_stops_in_reverse,
        nested_tree_recovers_three_levels_down,
        shutdown_timeout_kills_a_child_that_ignores_shutdown,
        brutal_kill_kills_at_once,
        terminate_restart_and_which_children,
        failed_child_start_stops_the_started_ones,
        unlinked_start_and_stop,
        children_on_other_cores_are_supervised,
        start_from_the_kernel_context,
    ],
};

// ---------------------------------------------------------------------------------------
// Each case's body runs as a process: `super::in_process`.

use super::in_process;

// ---------------------------------------------------------------------------------------
// Children and what they report.

fn at(name: &str) -> Atom {
    Atom::new(name)
}

/// A worker: `{Report, Id, Mode, InitAck}`. Reports `{started, Id, Pid}` (then calls
/// `init_ack` if `InitAck`), then obeys `crash` (exits with `{crashed, Id}`) and
/// `{exit, Reason}`. Mode `plain`: exit signals act on it; `trap`: it traps them, reports
/// `{stopping, Id}` and exits with the signal's reason; `ignore`: it traps them, reports
/// `{ignoring, Id}` and goes on; `fail_init`: it exits with `{init_failed, Id}` at once.
///
/// Reports of children started with `init_ack` arrive in start order: the supervisor starts
/// the next one only after the acknowledgement, which follows the report. Without it, a
/// child preempted before its report can be overtaken by the next one.
fn worker(arg: Term) -> Term {
    let t = arg.as_tuple().unwrap();
    let report = t.get(0).unwrap().as_pid().unwrap();
    let id = t.get(1).unwrap().as_atom().unwrap();
    let mode = t.get(2).unwrap().as_atom().unwrap();
    if mode == at("fail_init") {
        return term!({init_failed, (id)});
    }
    if mode != at("plain") {
        process::trap_exit(true);
    }
    process::send(report, &term!({started, (id), (process::self_pid())}));
    if t.get(3).unwrap().is_atom(atom::TRUE) {
        supervisor::init_ack();
    }
    loop {
        let Some(m) = poll(u64::MAX, |_| true) else {
            continue;
        };
        if is_tagged(m.as_ref(), atom::EXIT) {
            if mode == at("ignore") {
                process::send(report, &term!({ignoring, (id)}));
                continue;
            }
            process::send(report, &term!({stopping, (id)}));
            return m.as_tuple().unwrap().get(2).unwrap().to_owned();
        }
        if m.is_atom(at("crash")) {
            return term!({crashed, (id)});
        }
        if is_tagged(m.as_ref(), at("exit")) {
            return m.as_tuple().unwrap().get(1).unwrap().to_owned();
        }
    }
}

/// A worker child reporting to the calling process, started with `init_ack`.
fn child(id: &str, mode: &str) -> ChildSpec {
    ChildSpec::new(
        at(id),
        worker,
        term!({(process::self_pid()), (at(id)), (at(mode)), true}),
    )
    .init_ack(true)
}

/// The same without `init_ack`: started once spawned.
fn child_no_ack(id: &str, mode: &str) -> ChildSpec {
    ChildSpec::new(
        at(id),
        worker,
        term!({(process::self_pid()), (at(id)), (at(mode)), false}),
    )
}

/// `receive_match` waiting up to `ms` (`u64::MAX`: for ever).
fn poll(ms: u64, accept: impl FnMut(TermRef<'_>) -> bool) -> Option<Term> {
    let timeout = if ms == u64::MAX {
        Timeout::Infinity
    } else {
        Timeout::After(ms)
    };
    process::receive_match(timeout, accept)
}

fn is_tagged(t: TermRef<'_>, tag: Atom) -> bool {
    t.as_tuple()
        .and_then(|s| s.get(0))
        .is_some_and(|first| first.is_atom(tag))
}

/// The next report (`started`, `stopping`, `ignoring`), as `(tag, id)`, within a second.
fn next_report() -> (Atom, Atom) {
    let tags = [at("started"), at("stopping"), at("ignoring")];
    let m = poll(1000, |m| tags.iter().any(|&tag| is_tagged(m, tag)))
        .expect("no report within a second");
    let t = m.as_tuple().unwrap();
    (
        t.get(0).unwrap().as_atom().unwrap(),
        t.get(1).unwrap().as_atom().unwrap(),
    )
}

/// Expect exactly these reports next, in this order: `("started", "a")`, ...
fn expect_reports(expected: &[(&str, &str)]) {
    let got: Vec<(Atom, Atom)> = expected.iter().map(|_| next_report()).collect();
    let want: Vec<(Atom, Atom)> = expected.iter().map(|&(t, i)| (at(t), at(i))).collect();
    assert_eq!(got, want, "reports out of order");
}

/// Expect `{started, Id, Pid}` next among the reports; the pid.
fn expect_started(id: &str) -> Pid {
    let tags = [at("started"), at("stopping"), at("ignoring")];
    let m = poll(1000, |m| tags.iter().any(|&tag| is_tagged(m, tag)))
        .unwrap_or_else(|| panic!("{id} did not start within a second"));
    let t = m.as_tuple().unwrap();
    assert!(t.get(0).unwrap().is_atom(at("started")), "got {m}");
    assert!(t.get(1).unwrap().is_atom(at(id)), "got {m}");
    t.get(2).unwrap().as_pid().unwrap()
}

fn expect_no_message(ms: u64) {
    if let Some(m) = process::receive(Timeout::After(ms)) {
        panic!("unexpected message {m}");
    }
}

/// Wait for the `'DOWN'` of `reference`; the reason.
fn down(reference: kernel::msg::Reference) -> Term {
    let m = poll(2000, |m| {
        m.as_tuple()
            .is_some_and(|t| t.len() == 5 && t.get(1).unwrap().as_reference() == Some(reference))
    })
    .expect("no DOWN within two seconds");
    m.as_tuple().unwrap().get(4).unwrap().to_owned()
}

/// Send `msg` to `pid` and wait until it has exited; its exit reason. When this returns,
/// its supervisor has the EXIT in its inbox ahead of any call made after.
fn send_and_wait_exit(pid: Pid, msg: Term) -> Term {
    let r = process::monitor(pid);
    process::send(pid, &msg);
    down(r)
}

fn pid_of(sup: Pid, id: &str) -> Option<Pid> {
    let children = supervisor::which_children(sup).unwrap();
    children
        .iter()
        .find(|(i, _)| *i == at(id))
        .unwrap_or_else(|| panic!("no child {id} in {children:?}"))
        .1
}

/// Stop `sup` the way its parent does (exit signal `shutdown`) and wait until it is gone.
/// Unlinked first: its exit with `shutdown` would take us (not trapping) down with it.
fn shut_down(sup: Pid) {
    process::unlink(sup);
    let r = process::monitor(sup);
    process::exit_signal(sup, &term!(shutdown));
    assert!(down(r).is_atom(atom::SHUTDOWN));
}

fn spec(strategy: Strategy, children: &[(&str, &str)]) -> SupervisorSpec {
    children
        .iter()
        .fold(SupervisorSpec::new(strategy), |s, &(id, mode)| {
            s.child(child(id, mode))
        })
}

// ---------------------------------------------------------------------------------------
// Strategies.

fn one_for_one_restarts_only_the_crashed_child() {
    in_process(|| {
        let before = supervisor::total_restarts();
        let sup = supervisor::start_link(spec(
            Strategy::OneForOne,
            &[("a", "trap"), ("b", "trap"), ("c", "trap")],
        ))
        .unwrap();
        let (a, b, c) = (
            expect_started("a"),
            expect_started("b"),
            expect_started("c"),
        );
        assert_eq!(
            supervisor::which_children(sup).unwrap(),
            [(at("a"), Some(a)), (at("b"), Some(b)), (at("c"), Some(c))]
        );
        let reason = send_and_wait_exit(b, term!(crash));
        assert_eq!(reason, term!({crashed, b}));
        let b2 = expect_started("b");
        assert_ne!(b, b2);
        expect_no_message(10);
        assert_eq!(
            supervisor::which_children(sup).unwrap(),
            [(at("a"), Some(a)), (at("b"), Some(b2)), (at("c"), Some(c))]
        );
        assert_eq!(supervisor::restart_count(sup), Ok(1));
        assert_eq!(supervisor::total_restarts() - before, 1);
        // Its parent's exit signal: children stopped in reverse order, then it goes.
        shut_down(sup);
        expect_reports(&[("stopping", "c"), ("stopping", "b"), ("stopping", "a")]);
        assert!(![a, b2, c].iter().any(|&p| process::is_alive(p)));
    });
}

fn one_for_all_restarts_all_in_order() {
    in_process(|| {
        let sup = supervisor::start_link(spec(
            Strategy::OneForAll,
            &[("a", "trap"), ("b", "trap"), ("c", "trap")],
        ))
        .unwrap();
        expect_reports(&[("started", "a"), ("started", "b"), ("started", "c")]);
        let b = pid_of(sup, "b").unwrap();
        process::send(b, &term!(crash));
        // The others stopped last first, then all started in order.
        expect_reports(&[
            ("stopping", "c"),
            ("stopping", "a"),
            ("started", "a"),
            ("started", "b"),
            ("started", "c"),
        ]);
        expect_no_message(10);
        assert_eq!(supervisor::restart_count(sup), Ok(1));
        let children = supervisor::which_children(sup).unwrap();
        assert!(
            children
                .iter()
                .all(|(_, p)| p.is_some_and(process::is_alive))
        );
        shut_down(sup);
        expect_reports(&[("stopping", "c"), ("stopping", "b"), ("stopping", "a")]);
    });
}

fn rest_for_one_restarts_the_later_children() {
    in_process(|| {
        let sup = supervisor::start_link(
            spec(
                Strategy::RestForOne,
                &[("a", "trap"), ("b", "trap"), ("c", "trap"), ("d", "trap")],
            )
            .intensity(5, 5),
        )
        .unwrap();
        let a = expect_started("a");
        expect_reports(&[("started", "b"), ("started", "c"), ("started", "d")]);
        let b = pid_of(sup, "b").unwrap();
        process::send(b, &term!(crash));
        expect_reports(&[
            ("stopping", "d"),
            ("stopping", "c"),
            ("started", "b"),
            ("started", "c"),
            ("started", "d"),
        ]);
        expect_no_message(10);
        assert_eq!(pid_of(sup, "a"), Some(a), "a was before b: untouched");
        // The last child: only itself.
        let d = pid_of(sup, "d").unwrap();
        process::send(d, &term!(crash));
        expect_reports(&[("started", "d")]);
        expect_no_message(10);
        assert_eq!(supervisor::restart_count(sup), Ok(2));
        shut_down(sup);
        expect_reports(&[
            ("stopping", "d"),
            ("stopping", "c"),
            ("stopping", "b"),
            ("stopping", "a"),
        ]);
    });
}

// ---------------------------------------------------------------------------------------
// Restart types.

/// A one_for_one supervisor with room for many restarts, and one child of `restart` type.
fn one_child(restart: Restart) -> (Pid, Pid) {
    let sup = supervisor::start_link(
        SupervisorSpec::new(Strategy::OneForOne)
            .intensity(10, 5)
            .child(child_no_ack("x", "plain").restart(restart)),
    )
    .unwrap();
    (sup, expect_started("x"))
}

fn permanent_child_is_always_restarted() {
    in_process(|| {
        let (sup, x) = one_child(Restart::Permanent);
        let mut x = x;
        for reason in [
            term!({exit, normal}),
            term!({exit, shutdown}),
            term!({exit, {shutdown, why}}),
            term!(crash),
        ] {
            send_and_wait_exit(x, reason);
            x = expect_started("x");
        }
        assert_eq!(supervisor::restart_count(sup), Ok(4));
        shut_down(sup);
        assert!(!process::is_alive(x));
    });
}

fn transient_child_is_restarted_only_after_abnormal_exit() {
    in_process(|| {
        let (sup, x) = one_child(Restart::Transient);
        for reason in [
            term!({exit, normal}),
            term!({exit, shutdown}),
            term!({exit, {shutdown, why}}),
        ] {
            let x = pid_of(sup, "x").unwrap();
            send_and_wait_exit(x, reason);
            // Not restarted; the specification stays and can be restarted by hand.
            assert_eq!(supervisor::which_children(sup).unwrap(), [(at("x"), None)]);
            let again = supervisor::restart_child(sup, at("x")).unwrap();
            assert_eq!(expect_started("x"), again);
        }
        let x2 = pid_of(sup, "x").unwrap();
        assert_ne!(x, x2);
        send_and_wait_exit(x2, term!(crash));
        let x3 = expect_started("x");
        assert_eq!(pid_of(sup, "x"), Some(x3));
        send_and_wait_exit(x3, term!({exit, {error, boom}}));
        expect_started("x");
        assert_eq!(supervisor::restart_count(sup), Ok(2));
        shut_down(sup);
    });
}

fn temporary_child_is_never_restarted() {
    in_process(|| {
        let (sup, x) = one_child(Restart::Temporary);
        send_and_wait_exit(x, term!(crash));
        // Gone, specification and all.
        assert!(supervisor::which_children(sup).unwrap().is_empty());
        let sup2 = supervisor::start_link(
            SupervisorSpec::new(Strategy::OneForOne)
                .child(child("y", "plain").restart(Restart::Temporary)),
        )
        .unwrap();
        let y = expect_started("y");
        send_and_wait_exit(y, term!({exit, normal}));
        assert!(supervisor::which_children(sup2).unwrap().is_empty());
        expect_no_message(10);
        assert_eq!(supervisor::restart_count(sup), Ok(0));
        assert_eq!(supervisor::restart_count(sup2), Ok(0));
        // A temporary child stopped by a one_for_all restart is not started again.
        let sup3 = supervisor::start_link(
            SupervisorSpec::new(Strategy::OneForAll)
                .child(child("p", "trap"))
                .child(child("t", "trap").restart(Restart::Temporary)),
        )
        .unwrap();
        let p = expect_started("p");
        expect_started("t");
        process::send(p, &term!(crash));
        expect_reports(&[("stopping", "t"), ("started", "p")]);
        expect_no_message(10);
        let children = supervisor::which_children(sup3).unwrap();
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].0, at("p"));
        for s in [sup, sup2, sup3] {
            shut_down(s);
        }
        expect_reports(&[("stopping", "p")]);
    });
}

// ---------------------------------------------------------------------------------------
// Intensity.

fn intensity_exceeded_shuts_the_supervisor_down() {
    in_process(|| {
        // Its exit (shutdown) would take us down through the link: trap it.
        process::trap_exit(true);
        let before = supervisor::total_restarts();
        let sup = supervisor::start_link(
            SupervisorSpec::new(Strategy::OneForOne)
                .intensity(2, 5)
                .child(child("a", "trap"))
                .child(child("b", "plain")),
        )
        .unwrap();
        let a = expect_started("a");
        let mon = process::monitor(sup);
        let mut b = expect_started("b");
        let mut all_b = Vec::from([b]);
        for _ in 0..2 {
            process::send(b, &term!(crash));
            b = expect_started("b");
            all_b.push(b);
        }
        assert_eq!(supervisor::restart_count(sup), Ok(2));
        // The third crash within 5 s is one restart too many.
        process::send(b, &term!(crash));
        expect_reports(&[("stopping", "a")]);
        assert!(down(mon).is_atom(atom::SHUTDOWN));
        let exit = poll(1000, |m| {
            is_tagged(m, atom::EXIT) && m.as_tuple().unwrap().get(1).unwrap().as_pid() == Some(sup)
        })
        .expect("the EXIT of the supervisor");
        assert!(
            exit.as_tuple()
                .unwrap()
                .get(2)
                .unwrap()
                .is_atom(atom::SHUTDOWN)
        );
        assert!(!process::is_alive(a));
        assert!(!all_b.iter().any(|&p| process::is_alive(p)));
        assert_eq!(supervisor::total_restarts() - before, 2);
        assert_eq!(
            supervisor::which_children(sup),
            Err(SupervisorError::Down(term!(noproc)))
        );
        expect_no_message(10);
        process::trap_exit(false);
    });
}

// ---------------------------------------------------------------------------------------
// Trees.

fn tree_starts_in_order_and_stops_in_reverse() {
    in_process(|| {
        let mid = SupervisorSpec::new(Strategy::OneForOne)
            .child(child("w2", "trap"))
            .child(child("w3", "trap"));
        let top = SupervisorSpec::new(Strategy::OneForOne)
            .child(child("w1", "trap"))
            .child(ChildSpec::supervisor(at("mid"), mid))
            .child(child("w4", "trap"));
        let sup = supervisor::start_link(top).unwrap();
        expect_reports(&[
            ("started", "w1"),
            ("started", "w2"),
            ("started", "w3"),
            ("started", "w4"),
        ]);
        assert_eq!(
            supervisor::count_children(sup),
            Ok(ChildCounts {
                specs: 3,
                active: 3,
                supervisors: 1,
                workers: 2
            })
        );
        shut_down(sup);
        expect_reports(&[
            ("stopping", "w4"),
            ("stopping", "w3"),
            ("stopping", "w2"),
            ("stopping", "w1"),
        ]);
    });
}

fn nested_tree_recovers_three_levels_down() {
    in_process(|| {
        let leaf = SupervisorSpec::new(Strategy::OneForOne)
            .intensity(1, 5)
            .child(child("w", "plain"));
        let mid = SupervisorSpec::new(Strategy::OneForOne)
            .child(ChildSpec::supervisor(at("leaf"), leaf))
            .child(child("m", "plain"));
        let top =
            SupervisorSpec::new(Strategy::OneForOne).child(ChildSpec::supervisor(at("mid"), mid));
        let top = supervisor::start_link(top).unwrap();
        let w1 = expect_started("w");
        let m = expect_started("m");
        let mid = pid_of(top, "mid").unwrap();
        let leaf = pid_of(mid, "leaf").unwrap();
        assert_eq!(pid_of(leaf, "w"), Some(w1));

        // A crash three levels down: the leaf restarts the worker, nobody else moves.
        send_and_wait_exit(w1, term!(crash));
        let w2 = expect_started("w");
        assert_eq!(pid_of(leaf, "w"), Some(w2));
        assert_eq!(pid_of(mid, "leaf"), Some(leaf));
        assert_eq!(pid_of(top, "mid"), Some(mid));
        assert_eq!(supervisor::restart_count(leaf), Ok(1));
        assert_eq!(supervisor::restart_count(mid), Ok(0));

        // Again within the leaf's period: too many for it; it gives up and the mid
        // supervisor restarts the leaf subtree. The top and the mid's other child stay.
        let leaf_down = process::monitor(leaf);
        process::send(w2, &term!(crash));
        assert!(down(leaf_down).is_atom(atom::SHUTDOWN));
        let w3 = expect_started("w");
        let leaf2 = pid_of(mid, "leaf").unwrap();
        assert_ne!(leaf2, leaf);
        assert_eq!(pid_of(leaf2, "w"), Some(w3));
        assert_eq!(pid_of(mid, "m"), Some(m));
        assert_eq!(pid_of(top, "mid"), Some(mid));
        assert_eq!(supervisor::restart_count(mid), Ok(1));
        assert_eq!(supervisor::restart_count(top), Ok(0));
        assert_eq!(supervisor::restart_count(leaf2), Ok(0));
        expect_no_message(10);

        shut_down(top);
        assert!(![mid, leaf2, w3, m].iter().any(|&p| process::is_alive(p)));
    });
}

// ---------------------------------------------------------------------------------------
// Shutdown.

fn shutdown_timeout_kills_a_child_that_ignores_shutdown() {
    in_process(|| {
        let sup = supervisor::start_link(
            SupervisorSpec::new(Strategy::OneForOne)
                .child(child("polite", "trap").shutdown(Shutdown::Timeout(50)))
                .child(child("stubborn", "ignore").shutdown(Shutdown::Timeout(50))),
        )
        .unwrap();
        let polite = expect_started("polite");
        let stubborn = expect_started("stubborn");
        // A child that obeys stops with reason shutdown (not killed: within the timeout).
        let watch = process::monitor(polite);
        supervisor::terminate_child(sup, at("polite")).unwrap();
        expect_reports(&[("stopping", "polite")]);
        assert!(down(watch).is_atom(atom::SHUTDOWN));
        // One that ignores it is killed after the timeout.
        let watch = process::monitor(stubborn);
        let start = kernel::time::now_ns();
        supervisor::terminate_child(sup, at("stubborn")).unwrap();
        let took = kernel::time::now_ns() - start;
        assert!(took >= 50_000_000, "killed after {took} ns");
        assert!(took < 2_000_000_000, "killed after {took} ns");
        expect_reports(&[("ignoring", "stubborn")]);
        assert!(down(watch).is_atom(atom::KILLED));
        assert_eq!(
            supervisor::which_children(sup).unwrap(),
            [(at("polite"), None), (at("stubborn"), None)]
        );
        assert_eq!(supervisor::restart_count(sup), Ok(0));
        shut_down(sup);
        expect_no_message(10);
    });
}

fn brutal_kill_kills_at_once() {
    in_process(|| {
        let sup = supervisor::start_link(
            SupervisorSpec::new(Strategy::OneForOne)
                .child(child("k", "ignore").shutdown(Shutdown::BrutalKill)),
        )
        .unwrap();
        let k = expect_started("k");
        let watch = process::monitor(k);
        supervisor::terminate_child(sup, at("k")).unwrap();
        // No shutdown signal first (it would report ignoring it), no wait: killed.
        assert!(down(watch).is_atom(atom::KILLED));
        expect_no_message(10);
        // At the supervisor's own shutdown too.
        let k = supervisor::restart_child(sup, at("k")).unwrap();
        assert_eq!(expect_started("k"), k);
        let watch = process::monitor(k);
        shut_down(sup);
        assert!(down(watch).is_atom(atom::KILLED));
        expect_no_message(10);
    });
}

// ---------------------------------------------------------------------------------------
// API.

fn terminate_restart_and_which_children() {
    in_process(|| {
        let sup =
            supervisor::start_link(spec(Strategy::OneForOne, &[("a", "trap"), ("b", "trap")]))
                .unwrap();
        let a = expect_started("a");
        let b = expect_started("b");
        assert_eq!(
            supervisor::count_children(sup),
            Ok(ChildCounts {
                specs: 2,
                active: 2,
                supervisors: 0,
                workers: 2
            })
        );
        supervisor::terminate_child(sup, at("b")).unwrap();
        expect_reports(&[("stopping", "b")]);
        assert!(!process::is_alive(b));
        expect_no_message(10);
        assert_eq!(
            supervisor::which_children(sup).unwrap(),
            [(at("a"), Some(a)), (at("b"), None)]
        );
        assert_eq!(supervisor::count_children(sup).unwrap().active, 1);
        // Terminating it again is fine; it is not restarted by itself.
        supervisor::terminate_child(sup, at("b")).unwrap();
        let b2 = supervisor::restart_child(sup, at("b")).unwrap();
        assert_eq!(expect_started("b"), b2);
        assert_eq!(
            supervisor::which_children(sup).unwrap(),
            [(at("a"), Some(a)), (at("b"), Some(b2))]
        );
        assert_eq!(
            supervisor::restart_child(sup, at("a")),
            Err(SupervisorError::Running)
        );
        assert_eq!(
            supervisor::terminate_child(sup, at("nobody")),
            Err(SupervisorError::NotFound)
        );
        assert_eq!(
            supervisor::restart_child(sup, at("nobody")),
            Err(SupervisorError::NotFound)
        );
        assert_eq!(supervisor::restart_count(sup), Ok(0));
        shut_down(sup);
        expect_reports(&[("stopping", "b"), ("stopping", "a")]);
    });
}

fn failed_child_start_stops_the_started_ones() {
    in_process(|| {
        // b cannot be spawned (a stack limit below the minimum).
        let spec = SupervisorSpec::new(Strategy::OneForOne)
            .child(child("a", "trap"))
            .child(child("b", "trap").spawn_opts(SpawnOpts::new().stack_limit(1024)))
            .child(child("c", "trap"));
        let err = supervisor::start_link(spec).unwrap_err();
        let StartError::Failed(reason) = err else {
            panic!("{err}");
        };
        let t = reason.as_tuple().unwrap();
        assert!(t.get(0).unwrap().is_atom(atom::SHUTDOWN), "{reason}");
        let detail = t.get(1).unwrap().as_tuple().unwrap();
        assert!(detail.get(0).unwrap().is_atom(at("failed_to_start_child")));
        assert!(detail.get(1).unwrap().is_atom(at("b")), "{reason}");
        expect_reports(&[("started", "a"), ("stopping", "a")]);
        // An init_ack worker that exits before acknowledging failed to start, with its reason.
        let spec = SupervisorSpec::new(Strategy::OneForAll)
            .child(child("a", "trap"))
            .child(child("f", "fail_init"))
            .child(child("c", "trap"));
        let err = supervisor::start_link(spec).unwrap_err();
        assert_eq!(
            err,
            StartError::Failed(term!({shutdown, {failed_to_start_child, f, {init_failed, f}}}))
        );
        expect_reports(&[("started", "a"), ("stopping", "a")]);
        // A child supervisor that fails takes its parent's start down with it.
        let inner = SupervisorSpec::new(Strategy::OneForOne)
            .child(child("x", "trap").spawn_opts(SpawnOpts::new().stack_limit(1024)));
        let outer = SupervisorSpec::new(Strategy::OneForOne)
            .child(child("a", "trap"))
            .child(ChildSpec::supervisor(at("inner"), inner));
        let err = supervisor::start_link(outer).unwrap_err();
        assert!(
            err.to_string().contains("failed_to_start_child,inner"),
            "{err}"
        );
        expect_reports(&[("started", "a"), ("stopping", "a")]);
        // Bad specifications.
        let dup = spec_with_duplicate();
        let err = supervisor::start_link(dup).unwrap_err();
        assert!(err.to_string().contains("duplicate_child_name"), "{err}");
        let err = supervisor::start_link(SupervisorSpec::new(Strategy::OneForOne).intensity(1, 0))
            .unwrap_err();
        assert!(err.to_string().contains("invalid_period"), "{err}");
        // Unlinked before it exited: we (not trapping) are alive, and nothing came.
        expect_no_message(10);
    });
}

fn spec_with_duplicate() -> SupervisorSpec {
    SupervisorSpec::new(Strategy::OneForOne)
        .child(child("same", "trap"))
        .child(child("same", "trap"))
}

fn unlinked_start_and_stop() {
    in_process(|| {
        let sup =
            supervisor::start(spec(Strategy::OneForOne, &[("a", "trap"), ("b", "trap")])).unwrap();
        expect_reports(&[("started", "a"), ("started", "b")]);
        // Not its parent: our exit signal is ignored.
        process::exit_signal(sup, &term!(shutdown));
        assert_eq!(supervisor::count_children(sup).unwrap().active, 2);
        supervisor::stop(sup).unwrap();
        expect_reports(&[("stopping", "b"), ("stopping", "a")]);
        assert!(!process::is_alive(sup));
        assert_eq!(
            supervisor::stop(sup),
            Err(SupervisorError::Down(term!(noproc)))
        );
    });
}

fn children_on_other_cores_are_supervised() {
    in_process(|| {
        let cores: Vec<usize> = smp::online_cores().collect();
        let ids: Vec<alloc::string::String> = cores.iter().map(|c| format!("on{c}")).collect();
        let spec = cores.iter().zip(&ids).fold(
            SupervisorSpec::new(Strategy::OneForOne).intensity(cores.len() as u32, 5),
            |spec, (&core, id)| {
                spec.child(child(id, "trap").spawn_opts(SpawnOpts::new().core(core)))
            },
        );
        let sup = supervisor::start_link(spec).unwrap();
        // Each on its own core, one after the other (init_ack).
        for id in &ids {
            expect_started(id);
        }
        for id in &ids {
            let pid = pid_of(sup, id).unwrap();
            send_and_wait_exit(pid, term!(crash));
            let again = expect_started(id);
            assert_eq!(pid_of(sup, id), Some(again));
        }
        assert_eq!(supervisor::restart_count(sup), Ok(cores.len() as u64));
        // Stopped one at a time, last first, wherever they run.
        shut_down(sup);
        for id in ids.iter().rev() {
            assert_eq!(next_report(), (at("stopping"), at(id)));
        }
    });
}

/// What the kernel-context case's collector process saw: `(tag, id)` reports.
static KERNEL_REPORTS: IrqMutex<heapless::Vec<(Atom, Atom), 16>> =
    IrqMutex::new(heapless::Vec::new());

fn collector(_: Term) {
    loop {
        let Some(m) = poll(u64::MAX, |_| true) else {
            continue;
        };
        if let Some(t) = m.as_tuple()
            && let (Some(tag), Some(id)) = (t.get(0), t.get(1))
            && let (Some(tag), Some(id)) = (tag.as_atom(), id.as_atom())
        {
            let _ = KERNEL_REPORTS.lock().push((tag, id));
        }
    }
}

fn start_from_the_kernel_context() {
    // No process here: the harness's kernel context starts the supervisor (as the demo
    // does), which returns without waiting for the children. The kernel context counts as
    // its parent: an exit signal from it (sender KERNEL_PID) stops the tree in order.
    let before = process::count();
    KERNEL_REPORTS.lock().clear();
    let report = process::spawn(collector, Term::nil()).unwrap();
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .child(ChildSpec::new(at("k1"), worker, term!({(report), k1, trap, true})).init_ack(true))
        .child(ChildSpec::new(at("k2"), worker, term!({(report), k2, trap, true})).init_ack(true));
    let sup = supervisor::start(spec).unwrap();
    sched::run_until(|| KERNEL_REPORTS.lock().len() == 2);
    process::exit_signal(sup, &term!(shutdown));
    sched::run_until(|| !process::is_alive(sup));
    process::exit_signal(report, &term!(kill));
    sched::run_until(|| process::count() <= before);
    let reports = KERNEL_REPORTS.lock().clone();
    let want = [
        (at("started"), at("k1")),
        (at("started"), at("k2")),
        (at("stopping"), at("k2")),
        (at("stopping"), at("k1")),
    ];
    assert_eq!(reports.as_slice(), want);
}
