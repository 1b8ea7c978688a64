//! Signals between processes: messages, exit signals, links and monitors, delivered through
//! each process's mailbox, in the order each sender sent them.
//!
//! Everything one process does to another goes through the target's inbox as an envelope:
//! a message, an exit signal, a link or unlink request, a monitor or demonitor request. The
//! sender never touches the target's state; the target applies the signals itself, on its own
//! core, when it next looks (a receive, the end of a kernel call, or a preemption point), so a
//! process's links, monitors and mailbox are only ever changed by the core running it.
//!
//! Exit signals follow Erlang's rules:
//!
//! | signal | receiver traps exits | receiver does not trap |
//! | --- | --- | --- |
//! | from a link, reason `normal` | message `{'EXIT', From, normal}` | ignored |
//! | from a link, other reason R | message `{'EXIT', From, R}` | dies with R |
//! | `exit(pid, normal)` | message | ignored |
//! | `exit(pid, R)` | message | dies with R |
//! | `exit(pid, kill)` | dies with `killed` | dies with `killed` |
//!
//! A target that is gone when a signal is sent answers for it: a link request gets the
//! `noproc` exit signal, a monitor request the `{'DOWN', Ref, process, Pid, noproc}` message,
//! anything else is dropped. One that dies with signals still unread answers the link and
//! monitor requests among them with its real exit reason.
//!
//! Delivery pins the target's record (see `table::ProcessTable::pin`), so an exit on another
//! core cannot free it while a sender pushes; the exiting core waits for the pins before it
//! drains the mailbox a last time.

use super::Pid;
use super::registry::RegistryError;
use super::runtime::{Process, TABLE};
use crate::mem::in_kernel_heap;
use crate::msg::envelope::{self, Envelope, EnvelopeNode, ExitKind, Signal};
use crate::msg::mailbox::{Inbox, Mailbox};
use crate::msg::{Atom, Reference, Term, TermRef, atom};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::{Cell, UnsafeCell};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

/// The signal half of a process record.
pub struct SignalState {
    inbox: Inbox<Envelope>,
    /// Owner only.
    mailbox: UnsafeCell<Mailbox<Envelope>>,
    /// Links and monitors, allocated on first use (kernel heap). Owner only.
    relations: Cell<Option<NonNull<Relations>>>,
    trap_exit: Cell<bool>,
    /// Registered name: atom index + 1, or 0. Set under the registry's lock.
    registered: AtomicU32,
    /// Bytes of envelopes delivered and not yet freed (what its mailbox costs).
    queued_bytes: AtomicUsize,
    /// Messages received (taken from the mailbox), for the counters.
    received: Cell<u64>,
    /// A receive is under way: signals are applied by the receive loop only, not from the
    /// tick or the end of a kernel call (the predicate may make one). Otherwise they could
    /// change the mailbox under a scan, or move a message into the mailbox between the
    /// receive's last look and its decision to wait (a lost wake-up).
    receiving: Cell<bool>,
}

#[derive(Default)]
struct Relations {
    links: Vec<Pid>,
    /// Who monitors this process: (reference, watcher).
    monitored_by: Vec<(Reference, Pid)>,
    /// Whom this process monitors: (reference, target).
    monitoring: Vec<(Reference, Pid)>,
}

impl SignalState {
    pub const fn new() -> Self {
        Self {
            inbox: Inbox::new(),
            mailbox: UnsafeCell::new(Mailbox::new()),
            relations: Cell::new(None),
            trap_exit: Cell::new(false),
            registered: AtomicU32::new(0),
            queued_bytes: AtomicUsize::new(0),
            received: Cell::new(0),
            receiving: Cell::new(false),
        }
    }

    /// Whether signals wait in the inbox (a hint: senders may be pushing).
    pub fn pending(&self) -> bool {
        !self.inbox.is_empty()
    }

    /// Whether the kernel should apply signals at the end of a kernel call or at a
    /// preemption point: some are pending and no receive (which applies them itself) is
    /// under way.
    pub fn due(&self) -> bool {
        self.pending() && !self.receiving.get()
    }

    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes.load(Ordering::Relaxed)
    }

    /// Messages in the mailbox (received but not taken). Owner only.
    pub fn queued_messages(&self) -> usize {
        // SAFETY: owner only (the caller is the process itself).
        unsafe { (*self.mailbox.get()).len() }
    }

    pub fn trapping_exits(&self) -> bool {
        self.trap_exit.get()
    }

    /// Its registered name, if any.
    pub fn registered_name(&self) -> Option<Atom> {
        match self.registered.load(Ordering::Acquire) {
            0 => None,
            n => Some(Atom::from_index(n - 1)),
        }
    }

    /// Messages taken by receives so far.
    pub fn received(&self) -> u64 {
        self.received.get()
    }

    pub(crate) fn count_received(&self) {
        self.received.set(self.received.get() + 1);
    }

    /// Start a receive operation: its first scan starts at the oldest message, and until
    /// [`end_receive`](Self::end_receive) only the receive applies signals. Owner only.
    pub(crate) fn begin_receive(&self) {
        self.receiving.set(true);
        self.mailbox().begin_receive();
    }

    pub(crate) fn end_receive(&self) {
        self.receiving.set(false);
    }

    /// Take the first message at or after the save point that `accept` accepts (signals
    /// already applied: this does not look at the inbox). Owner only.
    pub(crate) fn take_first(
        &self,
        accept: impl FnMut(&Envelope) -> bool,
    ) -> Option<NonNull<EnvelopeNode>> {
        self.mailbox().scan(accept)
    }

    /// The owner's links and monitors, created on first use. Owner only.
    #[allow(clippy::mut_from_ref)]
    fn relations(&self) -> &mut Relations {
        let relations = match self.relations.get() {
            Some(r) => r,
            None => {
                let fresh =
                    in_kernel_heap(|| NonNull::from(Box::leak(Box::new(Relations::default()))));
                self.relations.set(Some(fresh));
                fresh
            }
        };
        // SAFETY: owner only; no other reference to it lives across this call's use.
        unsafe { &mut *relations.as_ptr() }
    }

    /// Owner only.
    #[allow(clippy::mut_from_ref)]
    fn mailbox(&self) -> &mut Mailbox<Envelope> {
        // SAFETY: owner only, and no other reference to it is live during the call.
        unsafe { &mut *self.mailbox.get() }
    }
}

impl Default for SignalState {
    fn default() -> Self {
        Self::new()
    }
}

// ---------------------------------------------------------------------------------------
// Sending.

/// Why a signal could not be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// The target is not alive (the envelope came back).
    NoProc,
    /// No memory for the envelope.
    OutOfMemory,
}

/// Put `node` in `to`'s inbox and wake `to` if it waits. `Err(node)` if `to` is gone.
pub(crate) fn deliver(to: Pid, node: NonNull<EnvelopeNode>) -> Result<(), NonNull<EnvelopeNode>> {
    let Some(pinned) = TABLE.pin(to) else {
        return Err(node);
    };
    // SAFETY: pinned: the record lives until the guard drops.
    let process = unsafe { pinned.record().cast::<Process>().as_ref() };
    // SAFETY: the node is ours and in no list.
    let bytes = unsafe { node.as_ref() }.value.bytes();
    process
        .signals
        .queued_bytes
        .fetch_add(bytes, Ordering::Relaxed);
    // SAFETY: as above; from here the target owns it.
    unsafe { process.signals.inbox.push(node) };
    super::runtime::wake(process, pinned.record().cast());
    Ok(())
}

/// Build and deliver a signal; a target that is gone gets `on_noproc` run instead.
fn signal(to: Pid, signal: Signal, term: TermRef<'_>) -> Result<(), DeliveryError> {
    let node = envelope::new(signal, term).ok_or(DeliveryError::OutOfMemory)?;
    deliver(to, node).map_err(|node| {
        // SAFETY: it came back undelivered: ours, in no list.
        unsafe { envelope::free(node) };
        DeliveryError::NoProc
    })
}

/// Send `msg` to `to` (a copy). A dead `to` drops it silently, as in Erlang.
pub fn send_message(to: Pid, msg: TermRef<'_>) -> Result<(), DeliveryError> {
    match signal(to, Signal::Message, msg) {
        Err(DeliveryError::NoProc) => Ok(()),
        other => other,
    }
}

/// `{'EXIT', From, Reason}`, in the kernel heap.
fn exit_tuple(from: Pid, reason: TermRef<'_>) -> Term {
    in_kernel_heap(|| Term::tuple([Term::atom(atom::EXIT), Term::pid(from), reason.to_owned()]))
}

/// `{'DOWN', Ref, process, Pid, Reason}`, in the kernel heap.
fn down_tuple(reference: Reference, pid: Pid, reason: TermRef<'_>) -> Term {
    in_kernel_heap(|| {
        Term::tuple([
            Term::atom(atom::DOWN),
            Term::reference(reference),
            Term::atom(atom::PROCESS),
            Term::pid(pid),
            reason.to_owned(),
        ])
    })
}

/// Send an exit signal from `from` to `to`.
pub(crate) fn send_exit(
    from: Pid,
    to: Pid,
    reason: TermRef<'_>,
    kind: ExitKind,
) -> Result<(), DeliveryError> {
    let tuple = exit_tuple(from, reason);
    let result = signal(to, Signal::Exit { from, kind }, tuple.as_ref());
    in_kernel_heap(|| drop(tuple));
    result
}

fn send_down(to: Pid, reference: Reference, of: Pid, reason: TermRef<'_>) {
    let tuple = down_tuple(reference, of, reason);
    let _ = signal(to, Signal::Down { reference }, tuple.as_ref());
    in_kernel_heap(|| drop(tuple));
}

/// The caller links to `to`.
pub(crate) fn link(me: &Process, to: Pid) {
    if to == me.pid() {
        return;
    }
    let links = &mut me.signals.relations().links;
    if !links.contains(&to) {
        in_kernel_heap(|| links.push(to));
    }
    if signal(to, Signal::Link { from: me.pid() }, Term::nil().as_ref())
        == Err(DeliveryError::NoProc)
    {
        // Linking to a dead process: the noproc exit signal, to ourselves.
        let _ = send_exit(
            to,
            me.pid(),
            Term::atom(atom::NOPROC).as_ref(),
            ExitKind::Link,
        );
    }
}

/// Record a link made at spawn (both ends set before the child runs).
pub(crate) fn add_link(process: &Process, other: Pid) {
    let links = &mut process.signals.relations().links;
    if !links.contains(&other) {
        in_kernel_heap(|| links.push(other));
    }
}

pub(crate) fn unlink(me: &Process, to: Pid) {
    me.signals.relations().links.retain(|&p| p != to);
    let _ = signal(to, Signal::Unlink { from: me.pid() }, Term::nil().as_ref());
}

pub(crate) fn monitor(me: &Process, target: Pid) -> Reference {
    let reference = Reference::new_unique();
    let sent = signal(
        target,
        Signal::Monitor {
            from: me.pid(),
            reference,
        },
        Term::nil().as_ref(),
    );
    // The watcher's record of the monitor, until its DOWN arrives or `demonitor`: also for a
    // dead target, whose noproc DOWN is accepted only while the record exists.
    let monitoring = &mut me.signals.relations().monitoring;
    in_kernel_heap(|| monitoring.push((reference, target)));
    match sent {
        Ok(()) => {}
        Err(_) => send_down(
            me.pid(),
            reference,
            target,
            Term::atom(atom::NOPROC).as_ref(),
        ),
    }
    reference
}

pub(crate) fn demonitor(me: &Process, reference: Reference) -> bool {
    let monitoring = &mut me.signals.relations().monitoring;
    let Some(at) = monitoring.iter().position(|&(r, _)| r == reference) else {
        return false;
    };
    let (_, target) = monitoring.swap_remove(at);
    let _ = signal(
        target,
        Signal::Demonitor {
            from: me.pid(),
            reference,
        },
        Term::nil().as_ref(),
    );
    true
}

pub(crate) fn set_trap_exit(me: &Process, on: bool) -> bool {
    me.signals.trap_exit.replace(on)
}

/// Record `name` (or none) as `pid`'s registered name. Called under the registry's lock.
pub(super) fn set_registered_name(pid: Pid, name: Option<Atom>) -> Result<(), RegistryError> {
    let pinned = TABLE.pin(pid).ok_or(RegistryError::NotAlive)?;
    // SAFETY: pinned.
    let process = unsafe { pinned.record().cast::<Process>().as_ref() };
    let slot = &process.signals.registered;
    match name {
        Some(name) => slot
            .compare_exchange(0, name.index() + 1, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|_| RegistryError::AlreadyNamed),
        None => {
            slot.store(0, Ordering::Release);
            Ok(())
        }
    }
}

// ---------------------------------------------------------------------------------------
// Receiving: the owner applies its signals.

/// Apply every signal that has arrived, in arrival order: messages join the mailbox, the
/// rest change links and monitors or end the process. `Err(reason)` when an exit signal
/// kills it (the reason is in the kernel heap; the caller ends the process with it). Inside
/// a kernel call, on the owner's core.
pub(crate) fn handle(me: &Process) -> Result<(), Term> {
    if me.signals.receiving.get() {
        return Ok(());
    }
    handle_in_receive(me)
}

/// [`handle`] from the receive loop itself.
pub(crate) fn handle_in_receive(me: &Process) -> Result<(), Term> {
    let state = &me.signals;
    let mut chain = state.inbox.take_all();
    while let Some(mut node) = chain.next() {
        // SAFETY: handed to us by the inbox: ours, in no list.
        let envelope = unsafe { &mut node.as_mut().value };
        let keep = match envelope.signal {
            Signal::Message => true,
            Signal::Down { reference } => {
                let monitoring = &mut state.relations().monitoring;
                match monitoring.iter().position(|&(r, _)| r == reference) {
                    Some(at) => {
                        monitoring.swap_remove(at);
                        envelope.make_message();
                        true
                    }
                    // Demonitored meanwhile: no DOWN after demonitor returns.
                    None => false,
                }
            }
            Signal::Exit { from, kind } => match exit_effect(me, from, kind, envelope.term()) {
                ExitEffect::Ignore => false,
                ExitEffect::Message => {
                    envelope.make_message();
                    true
                }
                ExitEffect::Die(reason) => {
                    free(me, node);
                    // Unread signals stay queued for the exit path to answer.
                    for rest in chain.by_ref() {
                        // SAFETY: from the chain: ours, in no list.
                        unsafe { state.mailbox().append(rest) };
                    }
                    return Err(reason);
                }
            },
            Signal::Link { from } => {
                add_link(me, from);
                false
            }
            Signal::Unlink { from } => {
                state.relations().links.retain(|&p| p != from);
                false
            }
            Signal::Monitor { from, reference } => {
                let monitored_by = &mut state.relations().monitored_by;
                in_kernel_heap(|| monitored_by.push((reference, from)));
                false
            }
            Signal::Demonitor { from, reference } => {
                state
                    .relations()
                    .monitored_by
                    .retain(|&(r, p)| !(r == reference && p == from));
                false
            }
        };
        if keep {
            // SAFETY: from the chain: ours, in no list.
            unsafe { state.mailbox().append(node) };
        } else {
            free(me, node);
        }
    }
    Ok(())
}

enum ExitEffect {
    Ignore,
    Message,
    Die(Term),
}

/// Erlang's table (module comment) for one exit signal; `term` is `{'EXIT', From, Reason}`.
fn exit_effect(me: &Process, from: Pid, kind: ExitKind, term: TermRef<'_>) -> ExitEffect {
    let reason = term.as_tuple().and_then(|t| t.get(2));
    let normal = reason.is_none_or(|r| r.is_atom(atom::NORMAL));
    let owned_reason =
        || in_kernel_heap(|| reason.map_or(Term::atom(atom::NORMAL), |r| r.to_owned()));
    let trapping = me.signals.trap_exit.get();
    match kind {
        ExitKind::Kill => ExitEffect::Die(Term::atom(atom::KILLED)),
        ExitKind::Link => {
            let links = &mut me.signals.relations().links;
            if !links.contains(&from) {
                // Unlinked since: the signal no longer concerns us.
                return ExitEffect::Ignore;
            }
            links.retain(|&p| p != from);
            if trapping {
                ExitEffect::Message
            } else if normal {
                ExitEffect::Ignore
            } else {
                ExitEffect::Die(owned_reason())
            }
        }
        ExitKind::Exit => {
            if trapping {
                ExitEffect::Message
            } else if normal && from != me.pid() {
                ExitEffect::Ignore
            } else {
                // `exit(self(), normal)` ends the caller, as in Erlang.
                ExitEffect::Die(owned_reason())
            }
        }
    }
}

/// Free an envelope the owner took out of its inbox or mailbox.
pub(crate) fn free(me: &Process, node: NonNull<EnvelopeNode>) {
    // SAFETY: ours, in no list.
    let bytes = unsafe { node.as_ref() }.value.bytes();
    me.signals.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    // SAFETY: ours, in no list, nothing borrows it.
    unsafe { envelope::free(node) };
}

// ---------------------------------------------------------------------------------------
// Exit.

/// The last of a process's signal life, on its core in `finish_exit`, after its pid was
/// retired and every pin on it released (so nothing more can arrive): free its name, answer
/// the link and monitor requests it never read, signal its links and monitors with
/// `reason`, tell the processes it monitored, and free every envelope.
pub(crate) fn on_exit(me: &Process, reason: TermRef<'_>) {
    let state = &me.signals;
    let pid = me.pid();
    let name = state.registered.swap(0, Ordering::AcqRel);
    if name != 0 {
        super::registry::release(Atom::from_index(name - 1), pid);
    }
    let unread: Vec<NonNull<EnvelopeNode>> =
        in_kernel_heap(|| state.mailbox().drain_all(&state.inbox).collect());
    for node in unread {
        // SAFETY: drained: ours, in no list.
        match unsafe { node.as_ref().value.signal } {
            Signal::Link { from } => {
                let _ = send_exit(pid, from, reason, ExitKind::Link);
            }
            Signal::Monitor { from, reference } => send_down(from, reference, pid, reason),
            _ => {}
        }
        free(me, node);
    }
    if let Some(relations) = state.relations.take() {
        // SAFETY: allocated by `relations()` with Box in the kernel heap; owner only.
        let relations = in_kernel_heap(|| unsafe { Box::from_raw(relations.as_ptr()) });
        for &link in &relations.links {
            let _ = send_exit(pid, link, reason, ExitKind::Link);
        }
        for &(reference, watcher) in &relations.monitored_by {
            send_down(watcher, reference, pid, reason);
        }
        for &(reference, target) in &relations.monitoring {
            let _ = signal(
                target,
                Signal::Demonitor {
                    from: pid,
                    reference,
                },
                Term::nil().as_ref(),
            );
        }
        in_kernel_heap(|| drop(relations));
    }
}
