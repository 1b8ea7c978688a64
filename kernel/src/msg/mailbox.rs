//! A process's mailbox, the portable core: a lock-free inbox that any core pushes into, and the
//! owner's queue with BEAM-style selective receive over it.
//!
//! Two halves, because the two sides have different rights:
//! - [`Inbox`]: shared. Senders on any core [`push`](Inbox::push) a node onto it (a
//!   compare-and-swap on one head pointer, Treiber style: the inbox is a LIFO stack of
//!   arrivals); the owner [`take_all`](Inbox::take_all)s it in one atomic swap and gets the
//!   nodes back as a [`Chain`] in arrival order.
//! - [`Mailbox`]: the owner's alone (`&mut`, no atomics). A FIFO of received nodes, fed from the
//!   inbox in arrival order, and the *save pointer* of selective receive.
//!
//! # Ordering
//! Messages from one sender to one receiver arrive in the order sent: a sender's pushes are
//! ordered by its program order and each is a read-modify-write of the inbox head, so they sit
//! in the stack newest first; `take_all` reverses the stack, and the owner appends each chain
//! after everything taken before, so the queue is in arrival order (the head's modification
//! order). Receive takes the first accepted node in that order, so a predicate that accepts a
//! sender's messages gets them in the order sent.
//!
//! # Selective receive and the save pointer
//! A receive operation (one `receive ... end` of a process) takes the first message, in
//! arrival order, that its predicate accepts. Messages it skips stay where they are. Waiting
//! must not rescan them: the predicate of one receive operation is fixed, so a message it
//! rejected once it rejects again. The mailbox keeps the BEAM's save pointer:
//! - [`Mailbox::begin_receive`] (the kernel calls it at the start of every receive operation)
//!   sets it to "before the first message";
//! - [`Mailbox::receive`] scans from the save pointer on. When it finds nothing it leaves the
//!   save pointer at the last message it rejected (the end of the queue), so the next call of
//!   the same operation, after the process was woken by a new message, scans only what arrived
//!   since;
//! - when `receive` takes a message the save pointer goes back to the start: the messages
//!   before it were rejected by *this* predicate, and whatever receive runs next (a new
//!   operation, with its own predicate) must see them.
//!
//! An owner that must look at each arrival before it counts as a message (the kernel's exit,
//! link and monitor signals share the inbox with messages, in order) takes arrivals itself
//! with [`Inbox::take_all`], [`append`](Mailbox::append)s the messages, and receives with
//! [`Mailbox::scan`], which is `receive` without the fetch.
//!
//! A caller that changes the predicate without calling `begin_receive` gets no memory unsafety,
//! only the wrong answer (messages before the save pointer are not offered to it).
//! [`Mailbox::receive_bounded`] bounds the work of one call, so the scheduler can charge
//! reductions per message scanned and preempt a long scan; the next call resumes at the save
//! pointer.
//!
//! # Waking the owner
//! [`Inbox::push`] returns whether the inbox was empty just before it (the push *leads* a
//! batch: no arrival since the owner's last take). Only a leading push has to check whether to
//! wake the owner; the others can skip it. This holds under the following protocol, with the
//! process state behind a lock (model-checked in `loom_tests::wake_protocol_loses_no_wakeup`):
//! - the owner, to wait: lock the state; if `inbox.is_empty()` set it to waiting (else receive
//!   again); unlock; sleep until woken;
//! - a sender: `let lead = push(node)`; if `lead`: lock the state; if waiting, make it
//!   runnable; unlock.
//!
//! Why no wakeup is lost: let `L` lead a batch and `F` follow it (their pushes come before the
//! owner's next take, in the head's modification order). If the owner's emptiness check ran in
//! its critical section before `L`'s, `L` sees the state waiting and wakes it. Otherwise `L`'s
//! critical section came first, so `L`'s push happens before the owner's check, which
//! therefore sees a non-empty inbox (or a later value, and only the owner ever empties it) and
//! the owner receives again instead of waiting. Either way the owner takes the batch, `F`'s
//! node included, before it next waits. A follower thus relies on its leader: the leader's push
//! and wake check should not be preempted between them (or the wakeup is late, though never
//! lost). With the lock in place, the emptiness check needs no ordering of its own (it is
//! `Relaxed`).
//!
//! # Nodes
//! The items are intrusive [`Node`]s that the caller allocates (the kernel from its own buffer
//! allocator) and hands in and out as `NonNull<Node<T>>`; the queue never allocates or frees.
//! A node is owned by whoever holds it outside the mailbox; while it is in the inbox or the
//! mailbox, the mailbox owns it. Dropping an `Inbox` or a `Mailbox` that still holds nodes leaks
//! them: at process exit the kernel takes them all back with [`Mailbox::drain_all`].
//!
//! Portable: no `asm!`, no MMIO. Under `--cfg loom` (host tests only) the inbox's atomics are
//! loom's, and `loom_tests` model-checks it (`cargo xtask test` runs them too):
//! `RUSTFLAGS="--cfg loom" cargo test -p kernel --release --lib msg::mailbox`.

use core::marker::PhantomData;
use core::ptr::{self, NonNull};

#[cfg(not(all(loom, test)))]
use core::sync::atomic::{AtomicPtr, Ordering};
#[cfg(all(loom, test))]
use loom::sync::atomic::{AtomicPtr, Ordering};

/// One message in a mailbox: the link and the value. Allocated by the caller.
pub struct Node<T> {
    /// The next node: in the inbox, the one pushed before this; in a [`Chain`] or a
    /// [`Mailbox`], the one that arrived after this. Only ever accessed by the node's exclusive
    /// owner (the sender before its push publishes the node, the owner after `take_all`), with
    /// plain accesses; it is an atomic so that loom checks those accesses against the
    /// publication (`with_mut`), and so that [`Mailbox::iter`] can read it through `&`.
    next: AtomicPtr<Node<T>>,
    pub value: T,
}

impl<T> Node<T> {
    /// A node in no list.
    #[cfg(not(all(loom, test)))]
    pub const fn new(value: T) -> Self {
        Self {
            next: AtomicPtr::new(ptr::null_mut()),
            value,
        }
    }

    /// A node in no list (loom's atomics have no `const fn new`).
    #[cfg(all(loom, test))]
    pub fn new(value: T) -> Self {
        Self {
            next: AtomicPtr::new(ptr::null_mut()),
            value,
        }
    }

    /// The link, read by the node's exclusive owner (a plain access; loom checks that it races
    /// with no atomic one).
    fn owned_next(&mut self) -> Option<NonNull<Node<T>>> {
        #[cfg(not(all(loom, test)))]
        let next = *self.next.get_mut();
        #[cfg(all(loom, test))]
        let next = self.next.with_mut(|p| *p);
        NonNull::new(next)
    }

    /// The link, written by the node's exclusive owner.
    fn set_owned_next(&mut self, next: Option<NonNull<Node<T>>>) {
        let next = next.map_or(ptr::null_mut(), NonNull::as_ptr);
        #[cfg(not(all(loom, test)))]
        {
            *self.next.get_mut() = next;
        }
        #[cfg(all(loom, test))]
        self.next.with_mut(|p| *p = next);
    }
}

/// The owner's view of a node's link.
///
/// # Safety
/// `node` is live and the caller owns it exclusively (no other reference to it exists).
unsafe fn next_of<T>(node: NonNull<Node<T>>) -> Option<NonNull<Node<T>>> {
    // SAFETY: the caller's guarantee.
    unsafe { (*node.as_ptr()).owned_next() }
}

/// # Safety
/// As for [`next_of`].
unsafe fn set_next_of<T>(node: NonNull<Node<T>>, next: Option<NonNull<Node<T>>>) {
    // SAFETY: the caller's guarantee.
    unsafe { (*node.as_ptr()).set_owned_next(next) }
}

/// The shared half of a mailbox: a lock-free multi-producer stack of arrivals.
///
/// Invariant: `head` is null or the most recently pushed node not yet taken, and following
/// `next` from it visits every such node, newest first, ending in null. Nodes reachable from
/// `head` are owned by the inbox.
pub struct Inbox<T> {
    head: AtomicPtr<Node<T>>,
    /// The inbox owns the nodes in it (for `Send`/`Sync`, which depend on `T`).
    _owns: PhantomData<NonNull<Node<T>>>,
}

// SAFETY: through `&Inbox` a thread can move a `T` in (push) or out (take_all), never share
// one: `T: Send` is all it takes for the inbox to be sent or shared. All shared state is the
// atomic head.
unsafe impl<T: Send> Send for Inbox<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Inbox<T> {}

impl<T> Inbox<T> {
    /// An empty inbox.
    #[cfg(not(all(loom, test)))]
    pub const fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// An empty inbox (loom's atomics have no `const fn new`).
    #[cfg(all(loom, test))]
    pub fn new() -> Self {
        Self {
            head: AtomicPtr::new(ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// Add `node` as the newest arrival. Callable from any core, concurrently with other pushes
    /// and with [`take_all`](Self::take_all). Returns whether the inbox was empty just before
    /// (this push leads a batch; see the module comment for what a waker does with it).
    ///
    /// Orderings: the successful CAS is `Release`, so everything the sender wrote to the node
    /// (value and link) happens before the owner's `Acquire` swap in `take_all` that reads this
    /// head or any later one (a later push's CAS is a read-modify-write, so it continues this
    /// push's release sequence). The sender never dereferences the head it reads, so a failed
    /// CAS is `Relaxed`; and since nodes are only ever taken all at once, a head that was taken,
    /// freed and pushed again (ABA) is still the current head: linking to it is correct.
    ///
    /// # Safety
    /// `node` points to a live node that the caller owns exclusively and that is in no list. It
    /// stays live until handed back by `take_all` or a [`Mailbox`], and the caller does not
    /// touch it meanwhile.
    pub unsafe fn push(&self, node: NonNull<Node<T>>) -> bool {
        // No load first: guess "empty" (the usual case when the owner is waiting) and let a
        // failed CAS return the head, so an uncontended push is one exclusive access to the
        // head's cache line, not a shared one then an upgrade. (It also keeps the loom model
        // complete: loom misses interleavings against a load followed by an RMW of the same
        // atomic by one thread, tokio-rs/loom#166 and #392.)
        let mut head = ptr::null_mut();
        loop {
            // SAFETY: the node is still the caller's alone (the caller's guarantee): it is
            // published only by the CAS below.
            unsafe { set_next_of(node, NonNull::new(head)) };
            match self.head.compare_exchange_weak(
                head,
                node.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return head.is_null(),
                Err(current) => head = current,
            }
        }
    }

    /// Whether nothing has arrived since the last take. Only a hint unless synchronised by
    /// other means (the wake protocol's lock): a push may be under way.
    pub fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// Take every arrival, in arrival order. The caller owns the returned nodes. Normally the
    /// owner's [`Mailbox`] calls it; concurrent callers would each get a disjoint chain.
    ///
    /// Orderings: the swap is `Acquire` and reads the newest push's `Release` CAS (or a later
    /// value in the head's release sequences), so every node in the chain, and its link, is
    /// visible. Checking for an empty inbox first with a plain load keeps an idle owner from
    /// taking the head's cache line exclusive for nothing.
    pub fn take_all(&self) -> Chain<T> {
        if self.head.load(Ordering::Relaxed).is_null() {
            return Chain::new();
        }
        let mut newest = NonNull::new(self.head.swap(ptr::null_mut(), Ordering::Acquire));
        // Reverse the stack (newest first) into arrival order.
        let tail = newest;
        let mut head = None;
        let mut len = 0;
        while let Some(node) = newest {
            // SAFETY: the swap detached the stack, so this thread owns its nodes; they are live
            // (push's contract).
            unsafe {
                newest = next_of(node);
                set_next_of(node, head);
            }
            head = Some(node);
            len += 1;
        }
        Chain { head, tail, len }
    }
}

impl<T> Default for Inbox<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Nodes detached from an [`Inbox`], in arrival order; iterating hands them out one by one (the
/// caller owns each). Dropping a chain with nodes in it leaks them.
///
/// Invariant: `head` to `tail` linked through `next`, `len` nodes, `tail.next` null; both ends
/// `None` iff `len == 0`. The chain owns its nodes.
pub struct Chain<T> {
    head: Option<NonNull<Node<T>>>,
    tail: Option<NonNull<Node<T>>>,
    len: usize,
}

// SAFETY: a chain owns its nodes; sending it sends the `T`s.
unsafe impl<T: Send> Send for Chain<T> {}

impl<T> Chain<T> {
    const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<T> Iterator for Chain<T> {
    type Item = NonNull<Node<T>>;

    fn next(&mut self) -> Option<NonNull<Node<T>>> {
        let node = self.head?;
        // SAFETY: the chain owns `node` (invariant); unlinked, it is handed to the caller.
        unsafe {
            self.head = next_of(node);
            set_next_of(node, None);
        }
        if self.head.is_none() {
            self.tail = None;
        }
        self.len -= 1;
        Some(node)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len, Some(self.len))
    }
}

/// What one [`Mailbox::receive_bounded`] call found.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan<T> {
    /// The first accepted message, unlinked; the caller owns it. The save pointer is reset.
    Taken(NonNull<Node<T>>),
    /// Every message was rejected; the save pointer is at the end, so the next call of the
    /// same receive operation scans only new arrivals.
    NoMatch,
    /// The scan limit was reached first; the next call resumes where this one stopped.
    Paused,
}

/// The owner's half of a mailbox: the received messages in arrival order, and the save pointer.
/// Only the owning process (the core running it) uses it, so nothing here is atomic.
///
/// Invariants:
/// - `head` to `tail` are the `len` owned nodes in arrival order, linked through `next`,
///   `tail.next` null; `head` and `tail` are `None` iff `len == 0`;
/// - `save` is `None` ("before the first message") or one of those nodes, and every node from
///   `head` up to and including `save` was rejected by the current receive operation's
///   predicate. Only a node after `save` is ever unlinked while `save` is set (and unlinking
///   resets it), so `save` never dangles.
pub struct Mailbox<T> {
    head: Option<NonNull<Node<T>>>,
    tail: Option<NonNull<Node<T>>>,
    save: Option<NonNull<Node<T>>>,
    len: usize,
}

// SAFETY: the mailbox owns its nodes; moving it to another core (process migration) moves the
// `T`s, and `&Mailbox` only gives out `&T`.
unsafe impl<T: Send> Send for Mailbox<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Mailbox<T> {}

impl<T> Mailbox<T> {
    pub const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            save: None,
            len: 0,
        }
    }

    /// Messages received into this queue (not counting those still in the inbox: call
    /// [`fetch`](Self::fetch) first for an up-to-date count).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Move every arrival from `inbox` to the end of the queue, in arrival order; returns how
    /// many. `receive` does this itself when its scan reaches the end.
    pub fn fetch(&mut self, inbox: &Inbox<T>) -> usize {
        let chain = inbox.take_all();
        let (Some(first), Some(last)) = (chain.head, chain.tail) else {
            return 0;
        };
        match self.tail {
            // SAFETY: `tail` is an owned node (invariant).
            Some(tail) => unsafe { set_next_of(tail, Some(first)) },
            None => self.head = Some(first),
        }
        self.tail = Some(last);
        // The chain's nodes now belong to the queue (a chain frees nothing when dropped).
        self.len += chain.len;
        chain.len
    }

    /// Start a receive operation: the next scan starts at the first message.
    pub fn begin_receive(&mut self) {
        self.save = None;
    }

    /// Take the first message at or after the save pointer that `accept` accepts, fetching new
    /// arrivals from `inbox` when the scan reaches the end. `None` when there is none; then the
    /// save pointer is at the end, so calling again (same receive operation, after a wakeup)
    /// scans only what arrived since. Within one receive operation `accept` must be the same
    /// predicate; see the module comment.
    pub fn receive(
        &mut self,
        inbox: &Inbox<T>,
        accept: impl FnMut(&T) -> bool,
    ) -> Option<NonNull<Node<T>>> {
        match self.receive_bounded(inbox, usize::MAX, accept) {
            Scan::Taken(node) => Some(node),
            Scan::NoMatch | Scan::Paused => None,
        }
    }

    /// [`receive`](Self::receive), offering at most `limit` messages to `accept` (the scheduler
    /// charges reductions for them). [`Scan::Paused`] when the limit ran out first: the save
    /// pointer is at the last rejected message and the next call resumes after it.
    pub fn receive_bounded(
        &mut self,
        inbox: &Inbox<T>,
        limit: usize,
        accept: impl FnMut(&T) -> bool,
    ) -> Scan<T> {
        self.scan_from_save(Some(inbox), limit, accept)
    }

    /// Add `node` as the newest message: for owners that take arrivals from the inbox
    /// themselves and apply some before they count as messages (the kernel's exit, link and
    /// monitor signals travel in the same inbox, in order with the messages). Such an owner
    /// takes arrivals with [`Inbox::take_all`], applies or appends each in arrival order, and
    /// receives with [`scan`](Self::scan), which does not fetch from the inbox.
    ///
    /// # Safety
    /// `node` is live, owned by the caller and in no list (as one a [`Chain`] yields); the
    /// mailbox owns it from now on.
    pub unsafe fn append(&mut self, node: NonNull<Node<T>>) {
        // SAFETY: the caller hands over a node it owns, in no list.
        unsafe { set_next_of(node, None) };
        match self.tail {
            // SAFETY: `tail` is an owned node (invariant).
            Some(tail) => unsafe { set_next_of(tail, Some(node)) },
            None => self.head = Some(node),
        }
        self.tail = Some(node);
        self.len += 1;
    }

    /// [`receive`](Self::receive) over the queued messages only (no fetch from an inbox): the
    /// first at or after the save pointer that `accept` accepts, unlinked; `None` leaves the
    /// save pointer at the end.
    pub fn scan(&mut self, accept: impl FnMut(&T) -> bool) -> Option<NonNull<Node<T>>> {
        match self.scan_from_save(None, usize::MAX, accept) {
            Scan::Taken(node) => Some(node),
            Scan::NoMatch | Scan::Paused => None,
        }
    }

    /// The scan of `receive_bounded` and `scan`: from the save pointer, fetching from `inbox`
    /// (if any) once when it reaches the end of the queue.
    fn scan_from_save(
        &mut self,
        inbox: Option<&Inbox<T>>,
        limit: usize,
        mut accept: impl FnMut(&T) -> bool,
    ) -> Scan<T> {
        let mut budget = limit;
        // `prev`: the last node known rejected (the save pointer), `None` before the first.
        let mut prev = self.save;
        let mut inbox = inbox;
        loop {
            let current = match prev {
                // SAFETY: `prev` is an owned node (invariant on `save`, then the scan's own
                // steps over owned nodes).
                Some(p) => unsafe { next_of(p) },
                None => self.head,
            };
            let Some(node) = current else {
                // End of the queue: scan new arrivals once, or give up.
                if let Some(inbox) = inbox.take()
                    && self.fetch(inbox) > 0
                {
                    continue;
                }
                self.save = prev;
                return Scan::NoMatch;
            };
            if budget == 0 {
                self.save = prev;
                return Scan::Paused;
            }
            budget -= 1;
            // SAFETY: `node` is an owned, live node; the shared borrow ends before any write.
            if accept(unsafe { &node.as_ref().value }) {
                // SAFETY: `node` follows `prev` (or is the head) in the queue.
                unsafe { self.unlink(prev, node) };
                self.save = None;
                return Scan::Taken(node);
            }
            prev = Some(node);
        }
    }

    /// Unlink `node`, whose predecessor is `prev` (`None`: it is the head).
    ///
    /// # Safety
    /// `node` is in the queue, right after `prev`.
    unsafe fn unlink(&mut self, prev: Option<NonNull<Node<T>>>, node: NonNull<Node<T>>) {
        // SAFETY: `node` and `prev` are owned nodes (the caller's guarantee).
        unsafe {
            let after = next_of(node);
            match prev {
                Some(p) => set_next_of(p, after),
                None => self.head = after,
            }
            if after.is_none() {
                self.tail = prev;
            }
            set_next_of(node, None);
        }
        self.len -= 1;
    }

    /// Take the first message (no predicate); resets the save pointer.
    fn pop_front(&mut self) -> Option<NonNull<Node<T>>> {
        let node = self.head?;
        self.save = None;
        // SAFETY: the head is in the queue, with no predecessor.
        unsafe { self.unlink(None, node) };
        Some(node)
    }

    /// Hand back every message, in arrival order: the queue's, then whatever is in `inbox` now
    /// (for process exit: the caller frees them). The save pointer is reset; whatever the
    /// iterator has not yielded when dropped stays queued, in order. Messages pushed after the
    /// call are not included: the kernel must make the process unreachable to senders first,
    /// or drain again once it is.
    pub fn drain_all<'a>(
        &'a mut self,
        inbox: &Inbox<T>,
    ) -> impl Iterator<Item = NonNull<Node<T>>> + 'a {
        self.fetch(inbox);
        self.save = None;
        core::iter::from_fn(move || self.pop_front())
    }

    /// The queued values in arrival order (for inspection; not those still in the inbox).
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        let mut next = self.head;
        core::iter::from_fn(move || {
            let node = next?;
            // SAFETY: queued nodes are live and owned by the mailbox, which `&self` keeps
            // from changing; the link is read atomically because only a shared borrow is held.
            let node = unsafe { node.as_ref() };
            next = NonNull::new(node.next.load(Ordering::Relaxed));
            Some(&node.value)
        })
    }
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    /// A message: (sender, sequence number).
    type Msg = (usize, usize);

    fn node(value: Msg) -> NonNull<Node<Msg>> {
        NonNull::from(Box::leak(Box::new(Node::new(value))))
    }

    /// Frees `node` and returns its value.
    fn free(node: NonNull<Node<Msg>>) -> Msg {
        // SAFETY: every node in these tests comes from `node` and is freed once.
        unsafe { Box::from_raw(node.as_ptr()) }.value
    }

    fn push(inbox: &Inbox<Msg>, value: Msg) -> bool {
        // SAFETY: a fresh node, handed over.
        unsafe { inbox.push(node(value)) }
    }

    fn queued(mb: &Mailbox<Msg>) -> Vec<Msg> {
        mb.iter().copied().collect()
    }

    #[test]
    fn push_reports_a_leading_push_and_take_all_returns_arrival_order() {
        let inbox = Inbox::new();
        assert!(inbox.is_empty());
        assert!(push(&inbox, (0, 0)));
        assert!(!push(&inbox, (0, 1)));
        assert!(!push(&inbox, (1, 0)));
        let chain = inbox.take_all();
        assert!(inbox.is_empty());
        assert_eq!(chain.len(), 3);
        let got: Vec<Msg> = chain.map(free).collect();
        assert_eq!(got, [(0, 0), (0, 1), (1, 0)]);
        assert!(inbox.take_all().is_empty());
        assert!(
            push(&inbox, (0, 2)),
            "the first push after a take leads again"
        );
        assert_eq!(inbox.take_all().map(free).collect::<Vec<_>>(), [(0, 2)]);
    }

    #[test]
    fn selective_receive_skips_and_keeps_order() {
        let inbox = Inbox::new();
        let mut mb = Mailbox::new();
        for i in 1..=6 {
            push(&inbox, (0, i));
        }
        for want in [2, 4, 6] {
            mb.begin_receive();
            let got = mb.receive(&inbox, |&(_, i)| i % 2 == 0).map(free);
            assert_eq!(got, Some((0, want)));
        }
        assert_eq!(queued(&mb), [(0, 1), (0, 3), (0, 5)]);
        assert_eq!(mb.len(), 3);
        mb.begin_receive();
        assert_eq!(mb.receive(&inbox, |&(_, i)| i % 2 == 0), None);
        // Arrivals go after the skipped messages; taking the tail keeps the queue appendable.
        push(&inbox, (0, 7));
        mb.begin_receive();
        assert_eq!(mb.receive(&inbox, |&(_, i)| i == 7).map(free), Some((0, 7)));
        push(&inbox, (0, 8));
        assert_eq!(mb.fetch(&inbox), 1);
        assert_eq!(queued(&mb), [(0, 1), (0, 3), (0, 5), (0, 8)]);
        let rest: Vec<Msg> = core::iter::from_fn(|| {
            mb.begin_receive();
            mb.receive(&inbox, |_| true)
        })
        .map(free)
        .collect();
        assert_eq!(rest, [(0, 1), (0, 3), (0, 5), (0, 8)]);
        assert!(mb.is_empty());
    }

    #[test]
    fn save_pointer_skips_old_messages_within_one_receive() {
        let inbox = Inbox::new();
        let mut mb = Mailbox::new();
        let offered = core::cell::RefCell::new(Vec::new());
        let accept_9 = |&(_, i): &Msg| {
            offered.borrow_mut().push(i);
            i == 9
        };
        for i in 0..3 {
            push(&inbox, (0, i));
        }
        mb.begin_receive();
        assert_eq!(mb.receive(&inbox, accept_9), None);
        assert_eq!(*offered.borrow(), [0, 1, 2]);
        // The process waits; two more arrive, neither matches: only they are scanned.
        push(&inbox, (0, 3));
        push(&inbox, (0, 4));
        assert_eq!(mb.receive(&inbox, accept_9), None);
        assert_eq!(*offered.borrow(), [0, 1, 2, 3, 4]);
        // Woken with nothing new: nothing is scanned at all.
        assert_eq!(mb.receive(&inbox, accept_9), None);
        push(&inbox, (0, 9));
        assert_eq!(mb.receive(&inbox, accept_9).map(free), Some((0, 9)));
        assert_eq!(*offered.borrow(), [0, 1, 2, 3, 4, 9]);
        // A take resets the save pointer: the next receive sees everything again.
        offered.borrow_mut().clear();
        assert_eq!(mb.receive(&inbox, accept_9), None);
        assert_eq!(*offered.borrow(), [0, 1, 2, 3, 4]);
        assert_eq!(mb.drain_all(&inbox).map(free).count(), 5);
    }

    #[test]
    fn begin_receive_rescans_from_the_start() {
        let inbox = Inbox::new();
        let mut mb = Mailbox::new();
        for i in 0..4 {
            push(&inbox, (0, i));
        }
        let mut offered = 0;
        mb.begin_receive();
        assert_eq!(
            mb.receive(&inbox, |_| {
                offered += 1;
                false
            }),
            None
        );
        assert_eq!(offered, 4);
        // Same operation: the old messages are behind the save pointer.
        assert_eq!(mb.receive(&inbox, |&(_, i)| i == 1), None);
        // A new operation with another predicate sees them.
        mb.begin_receive();
        let mut offered = Vec::new();
        let got = mb.receive(&inbox, |&(_, i)| {
            offered.push(i);
            i == 1
        });
        assert_eq!(got.map(free), Some((0, 1)));
        assert_eq!(offered, [0, 1]);
        assert_eq!(queued(&mb), [(0, 0), (0, 2), (0, 3)]);
        assert_eq!(mb.drain_all(&inbox).map(free).count(), 3);
    }

    #[test]
    fn bounded_receive_pauses_and_resumes_where_it_stopped() {
        let inbox = Inbox::new();
        let mut mb = Mailbox::new();
        for i in 0..5 {
            push(&inbox, (0, i));
        }
        let mut offered = Vec::new();
        let mut accept_4 = |&(_, i): &Msg| {
            offered.push(i);
            i == 4
        };
        mb.begin_receive();
        assert_eq!(mb.receive_bounded(&inbox, 2, &mut accept_4), Scan::Paused);
        assert_eq!(mb.receive_bounded(&inbox, 2, &mut accept_4), Scan::Paused);
        assert_eq!(mb.receive_bounded(&inbox, 0, &mut accept_4), Scan::Paused);
        let Scan::Taken(n) = mb.receive_bounded(&inbox, 2, &mut accept_4) else {
            panic!("expected the 5th message")
        };
        assert_eq!(free(n), (0, 4));
        assert_eq!(offered, [0, 1, 2, 3, 4]);
        mb.begin_receive();
        assert_eq!(mb.receive_bounded(&inbox, 3, |_| false), Scan::Paused);
        assert_eq!(mb.receive_bounded(&inbox, 3, |_| false), Scan::NoMatch);
        assert_eq!(mb.receive_bounded(&inbox, 0, |_| false), Scan::NoMatch);
        assert_eq!(mb.drain_all(&inbox).map(free).count(), 4);
    }

    #[test]
    fn drain_all_returns_queued_then_inbox_messages_in_order() {
        let inbox = Inbox::new();
        let mut mb = Mailbox::new();
        for i in 0..3 {
            push(&inbox, (0, i));
        }
        mb.begin_receive();
        assert_eq!(mb.receive(&inbox, |_| false), None);
        push(&inbox, (1, 0));
        push(&inbox, (0, 3));
        assert_eq!(mb.len(), 3);
        // Dropping the iterator early keeps the rest, in order.
        let first: Vec<Msg> = mb.drain_all(&inbox).take(2).map(free).collect();
        assert_eq!(first, [(0, 0), (0, 1)]);
        assert_eq!(queued(&mb), [(0, 2), (1, 0), (0, 3)]);
        let rest: Vec<Msg> = mb.drain_all(&inbox).map(free).collect();
        assert_eq!(rest, [(0, 2), (1, 0), (0, 3)]);
        assert!(mb.is_empty() && inbox.is_empty());
        assert_eq!(mb.iter().count(), 0);
        // Still usable afterwards.
        push(&inbox, (2, 0));
        mb.begin_receive();
        assert_eq!(mb.receive(&inbox, |_| true).map(free), Some((2, 0)));
    }

    #[test]
    fn append_then_scan_does_not_fetch() {
        let inbox = Inbox::new();
        let mut mb = Mailbox::new();
        for i in 0..4 {
            push(&inbox, (0, i));
        }
        // The owner applies "signals" (odd numbers here) itself and appends the rest.
        for node in inbox.take_all() {
            if unsafe { node.as_ref() }.value.1 % 2 == 1 {
                free(node);
            } else {
                // SAFETY: taken from the chain: ours, in no list.
                unsafe { mb.append(node) };
            }
        }
        push(&inbox, (0, 4));
        let mut offered = Vec::new();
        mb.begin_receive();
        assert_eq!(
            mb.scan(|&(_, i)| {
                offered.push(i);
                i == 4
            }),
            None,
            "scan does not fetch"
        );
        assert_eq!(offered, [0, 2]);
        for node in inbox.take_all() {
            // SAFETY: fresh: ours, in no list.
            unsafe { mb.append(node) };
        }
        // Same operation: only the new message is scanned.
        let got = mb.scan(|&(_, i)| {
            offered.push(i);
            i == 4
        });
        assert_eq!(got.map(free), Some((0, 4)));
        assert_eq!(offered, [0, 2, 4]);
        assert_eq!(queued(&mb), [(0, 0), (0, 2)]);
        assert_eq!(mb.drain_all(&inbox).map(free).count(), 2);
    }

    /// 4 senders × 25,000 messages; the owner first takes only sender 2's (selective receive,
    /// each its own receive operation, waiting inside it when nothing matches), then everything
    /// else. Each message is received exactly once, each sender's in the order sent.
    ///
    /// Each sender keeps at most `WINDOW` messages in flight (it waits for the owner to take
    /// some), so the skipped backlog stays bounded: the first phase would be quadratic in it
    /// otherwise, as on the BEAM, where each new receive operation rescans the skipped
    /// messages. That makes the save pointer measurable under concurrency: one receive
    /// operation offers each message to its predicate at most once, however often it waits.
    #[test]
    fn per_sender_order_under_concurrent_senders_and_selective_receive() {
        use std::sync::atomic::{AtomicUsize, Ordering::*};
        const SENDERS: usize = 4;
        const EACH: usize = 25_000;
        const WINDOW: usize = 64;
        const CHOSEN: usize = 2;
        let inbox = Inbox::new();
        let in_flight: [AtomicUsize; SENDERS] = Default::default();
        let mut mb = Mailbox::new();
        let mut next = [0usize; SENDERS];
        let mut offered = 0usize;
        let mut leads = 0;
        std::thread::scope(|s| {
            let senders: Vec<_> = (0..SENDERS)
                .map(|sender| {
                    let (inbox, in_flight) = (&inbox, &in_flight[sender]);
                    s.spawn(move || {
                        let mut leads = 0;
                        for i in 0..EACH {
                            while in_flight.load(Acquire) >= WINDOW {
                                std::thread::yield_now();
                            }
                            in_flight.fetch_add(1, Relaxed);
                            leads += usize::from(push(inbox, (sender, i)));
                        }
                        leads
                    })
                })
                .collect();
            let mut receive_one = |only: Option<usize>| {
                mb.begin_receive();
                let found = loop {
                    let accept = |&(from, _): &Msg| {
                        offered += 1;
                        only.is_none_or(|o| o == from)
                    };
                    match mb.receive(&inbox, accept) {
                        Some(n) => break n,
                        None => std::thread::yield_now(),
                    }
                };
                let (from, i) = free(found);
                in_flight[from].fetch_sub(1, Release);
                assert_eq!(i, next[from], "sender {from} out of order");
                next[from] += 1;
                from
            };
            for _ in 0..EACH {
                assert_eq!(receive_one(Some(CHOSEN)), CHOSEN);
            }
            for _ in 0..(SENDERS - 1) * EACH {
                assert_ne!(receive_one(None), CHOSEN);
            }
            leads = senders.into_iter().map(|h| h.join().unwrap()).sum();
        });
        assert_eq!(next, [EACH; SENDERS]);
        assert!(leads >= 1);
        assert!(mb.is_empty() && inbox.is_empty());
        // Phase 1: per operation, the other senders' messages in flight (each offered once)
        // and the one taken; phase 2: one per operation.
        let bound = EACH * ((SENDERS - 1) * WINDOW + 1) + (SENDERS - 1) * EACH;
        assert!(offered <= bound, "{offered} predicate calls > {bound}");
    }
}

/// Model checks: every interleaving (and every value a load may see under the C++11 memory
/// model) of small scenarios, within a preemption bound where the full space is too large.
/// Payloads are loom `UnsafeCell`s written by the sender after the node is made, so loom also
/// reports a message read without happening after its write, and the owner's plain accesses
/// to the links are checked against the senders' atomic ones.
///
/// Each model returns an outcome per execution, and each test checks that the interesting
/// outcomes were reached: loom's exploration has known holes (tokio-rs/loom#166, #392), and a
/// model that never ran the race it is about would pass vacuously.
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use core::mem::ManuallyDrop;
    use loom::cell::UnsafeCell;
    use loom::sync::{Arc, Mutex};
    use loom::thread;
    use std::boxed::Box;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    /// (sender, sequence number), written by the sender before the push.
    type Msg = UnsafeCell<(usize, usize)>;

    fn send(inbox: &Inbox<Msg>, value: (usize, usize)) -> bool {
        let node = NonNull::from(Box::leak(Box::new(Node::new(UnsafeCell::new((9, 9))))));
        // SAFETY: the node is this thread's alone until pushed.
        let cell = &unsafe { node.as_ref() }.value;
        // SAFETY: as above.
        cell.with_mut(|v| unsafe { *v = value });
        // SAFETY: a fresh node, handed over.
        unsafe { inbox.push(node) }
    }

    fn read(msg: &Msg) -> (usize, usize) {
        // SAFETY: loom checks that this read happens after the sender's write.
        msg.with(|v| unsafe { *v })
    }

    /// Frees a received node and returns its value.
    fn free(node: NonNull<Node<Msg>>) -> (usize, usize) {
        // SAFETY: every node comes from `send` and is freed once.
        read(&unsafe { Box::from_raw(node.as_ptr()) }.value)
    }

    /// Runs `f` in every execution loom explores, with at most `bound` preemptions per
    /// execution (`None`: unbounded) unless LOOM_MAX_PREEMPTIONS says otherwise, and returns the
    /// set of outcomes.
    fn model<R: Ord + Send + 'static>(
        bound: Option<usize>,
        f: impl Fn() -> R + Sync + Send + 'static,
    ) -> BTreeSet<R> {
        let mut builder = loom::model::Builder::new();
        if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
            builder.preemption_bound = bound;
        }
        let outcomes = std::sync::Arc::new(std::sync::Mutex::new((0usize, BTreeSet::new())));
        let sink = outcomes.clone();
        builder.check(move || {
            let outcome = f();
            let mut sink = sink.lock().unwrap();
            sink.0 += 1;
            sink.1.insert(outcome);
        });
        let (runs, set) = std::mem::take(&mut *outcomes.lock().unwrap());
        std::eprintln!("{runs} executions, {} outcomes", set.len());
        set
    }

    /// Checks `got` holds each of `senders` × `each` messages once, each sender's in order.
    fn check_complete(got: &[(usize, usize)], senders: usize, each: usize) {
        let mut next = [0; 2];
        for &(from, i) in got {
            assert_eq!(i, next[from], "sender {from} out of order in {got:?}");
            next[from] += 1;
        }
        assert_eq!(&next[..senders], &[each; 2][..senders], "{got:?}");
    }

    /// Spawns `senders` threads, each sending `each` messages (sender, 0..each).
    fn spawn_senders(
        inbox: &Arc<Inbox<Msg>>,
        senders: usize,
        each: usize,
    ) -> Vec<thread::JoinHandle<()>> {
        (0..senders)
            .map(|sender| {
                let inbox = inbox.clone();
                thread::spawn(move || {
                    for i in 0..each {
                        send(&inbox, (sender, i));
                    }
                })
            })
            .collect()
    }

    /// Two senders push two messages each while the owner makes two receive attempts; the
    /// rest it drains after they finish. All four once, each sender's in order.
    #[test]
    fn two_senders_per_sender_order() {
        let outcomes = model(Some(5), || {
            let inbox = Arc::new(Inbox::new());
            let senders = spawn_senders(&inbox, 2, 2);
            let mut mb = Mailbox::new();
            let mut got = Vec::new();
            for _ in 0..2 {
                mb.begin_receive();
                if let Some(n) = mb.receive(&inbox, |_| true) {
                    got.push(free(n));
                }
            }
            let concurrent = got.clone();
            for s in senders {
                s.join().unwrap();
            }
            got.extend(mb.drain_all(&inbox).map(free));
            check_complete(&got, 2, 2);
            assert_eq!(got.len(), 4);
            concurrent
        });
        // The concurrent attempts got nothing, one or two messages, from either sender.
        let firsts: BTreeSet<_> = outcomes.iter().map(|o| o.first().copied()).collect();
        assert_eq!(firsts, [None, Some((0, 0)), Some((1, 0))].into());
        assert!(outcomes.contains(&vec![(0, 0), (1, 0)]));
        assert!(outcomes.contains(&vec![(1, 0), (1, 1)]));
    }

    /// One sender pushes 0..4 while the owner runs one selective receive operation after
    /// another (accepting odd numbers), waiting inside each (calling `receive` again) when
    /// nothing matches. Takes come in order; within one operation no message is offered twice;
    /// the skipped ones stay, in order.
    #[test]
    fn selective_receive_while_sender_pushes() {
        let outcomes = model(None, || {
            let inbox = Arc::new(Inbox::new());
            let senders = spawn_senders(&inbox, 1, 4);
            let mut mb = Mailbox::new();
            let mut taken = Vec::new();
            // At most 4 `receive` calls concurrently with the sender (loom needs a bound).
            let mut calls = 0;
            'operations: while taken.len() < 2 {
                mb.begin_receive();
                let mut offered = Vec::new();
                loop {
                    if calls == 4 {
                        break 'operations;
                    }
                    calls += 1;
                    let got = mb.receive(&inbox, |m| {
                        let (_, i) = read(m);
                        assert!(!offered.contains(&i), "{i} offered twice in one receive");
                        offered.push(i);
                        i % 2 == 1
                    });
                    if let Some(n) = got {
                        taken.push(free(n).1);
                        break;
                    }
                }
            }
            let concurrent = taken.len();
            for s in senders {
                s.join().unwrap();
            }
            while taken.len() < 2 {
                mb.begin_receive();
                let n = mb.receive(&inbox, |m| read(m).1 % 2 == 1);
                taken.push(free(n.expect("a take left")).1);
            }
            assert_eq!(taken, [1, 3]);
            let rest: Vec<usize> = mb.drain_all(&inbox).map(|n| free(n).1).collect();
            assert_eq!(rest, [0, 2]);
            concurrent
        });
        assert_eq!(outcomes, [0, 1, 2].into());
    }

    /// `drain_all` racing with two senders: what it does not return is in the inbox after
    /// them, and together that is every message once, in per-sender order.
    #[test]
    fn drain_all_racing_senders_loses_nothing() {
        let outcomes = model(None, || {
            let inbox = Arc::new(Inbox::new());
            let senders = spawn_senders(&inbox, 2, 2);
            let mut mb = Mailbox::new();
            let mut got: Vec<_> = mb.drain_all(&inbox).map(free).collect();
            let concurrent = got.len();
            for s in senders {
                s.join().unwrap();
            }
            got.extend(mb.drain_all(&inbox).map(free));
            check_complete(&got, 2, 2);
            assert_eq!(got.len(), 4);
            concurrent
        });
        assert_eq!(outcomes, [0, 1, 2, 3, 4].into());
    }

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum State {
        Running,
        Waiting,
    }

    /// The wake protocol of the module comment: two senders, one message each; a sender
    /// checks whether to wake the owner only if its push led a batch. If a wakeup could be
    /// lost, the owner would park for ever in some execution and loom would report a deadlock.
    /// The outcome: (the owner waited, some push followed another and skipped the check).
    fn wake_model(check_under_lock: bool) -> BTreeSet<(bool, bool)> {
        model(Some(4), move || {
            // Not dropped if the model panics: loom objects cannot be dropped while it unwinds
            // from a deadlock (the negative test below).
            let inbox = ManuallyDrop::new(Arc::new(Inbox::new()));
            let state = ManuallyDrop::new(Arc::new(Mutex::new(State::Running)));
            let owner = thread::current();
            let senders: Vec<_> = (0..2)
                .map(|sender| {
                    let (inbox, state) = (Arc::clone(&inbox), Arc::clone(&state));
                    let owner = owner.clone();
                    thread::spawn(move || {
                        let lead = send(&inbox, (sender, 0));
                        if lead {
                            let mut st = state.lock().unwrap();
                            if *st == State::Waiting {
                                *st = State::Running;
                                drop(st);
                                owner.unpark();
                            }
                        }
                        lead
                    })
                })
                .collect();
            let mut mb = Mailbox::new();
            let mut got = Vec::new();
            let mut waited = false;
            while got.len() < 2 {
                mb.begin_receive();
                if let Some(n) = mb.receive(&inbox, |_| true) {
                    got.push(free(n));
                    continue;
                }
                // Nothing: wait, unless something arrived meanwhile.
                let empty_before_lock = inbox.is_empty();
                let mut st = state.lock().unwrap();
                let empty = if check_under_lock {
                    inbox.is_empty()
                } else {
                    empty_before_lock
                };
                if !empty {
                    continue;
                }
                *st = State::Waiting;
                drop(st);
                waited = true;
                while *state.lock().unwrap() == State::Waiting {
                    thread::park();
                }
            }
            let leads = senders.into_iter().map(|s| s.join().unwrap());
            let skipped = leads.filter(|&lead| !lead).count() > 0;
            check_complete(&got, 2, 1);
            drop(ManuallyDrop::into_inner(inbox));
            drop(ManuallyDrop::into_inner(state));
            (waited, skipped)
        })
    }

    #[test]
    fn wake_protocol_loses_no_wakeup() {
        let outcomes = wake_model(true);
        // Including: the owner slept while a follower skipped the check.
        assert!(outcomes.contains(&(true, true)), "{outcomes:?}");
        assert!(outcomes.contains(&(false, false)), "{outcomes:?}");
    }

    /// The model has teeth: checking for arrivals before taking the lock loses wakeups.
    #[test]
    #[should_panic(expected = "deadlock")]
    fn wake_protocol_checking_outside_the_lock_loses_a_wakeup() {
        wake_model(false);
    }
}
