//! One core's run queue: BEAM's four priorities and its rule for `low`, over an intrusive
//! list threaded through the process records (no allocation on enqueue or dequeue, so the
//! scheduler's hot path never touches a heap).
//!
//! The rules, as the BEAM has them:
//! - `max` runs before `high`, which runs before `normal` and `low`;
//! - `low` shares `normal`'s queue, but a low process that reaches the front is sent to the
//!   back again unless it has been passed over [`LOW_SKIPS`] times already, so with normal
//!   work around it runs once per 8 passes. With only low processes queued, they run in turn;
//! - round robin within a queue: [`RunQueue::push`] appends at the back.
//!
//! Portable: the items are raw pointers to records that embed a [`RunLink`]; the caller (the
//! per-core scheduler) guarantees a record is in at most one queue and outlives its stay.

use core::cell::Cell;
use core::ptr::NonNull;

/// A process's scheduling priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Priority {
    Low = 0,
    Normal = 1,
    High = 2,
    Max = 3,
}

impl Priority {
    pub const ALL: [Priority; 4] = [Self::Low, Self::Normal, Self::High, Self::Max];

    pub fn name(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Max => "max",
        }
    }
}

/// How many times a low-priority process is passed over before it runs (the BEAM's
/// `RESCHEDULE_LOW` is 8: it runs on the 8th pass).
pub const LOW_SKIPS: u8 = 7;

/// The queue's bookkeeping inside each record. Only the core that owns the queue (holding its
/// lock) touches it.
pub struct RunLink<T> {
    next: Cell<Option<NonNull<T>>>,
    low_skips: Cell<u8>,
}

impl<T> RunLink<T> {
    pub const fn new() -> Self {
        Self {
            next: Cell::new(None),
            low_skips: Cell::new(0),
        }
    }
}

impl<T> Default for RunLink<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A record that can sit in a [`RunQueue`].
///
/// # Safety
/// `run_link` must return the same link for the life of the record, and `priority` must not
/// change while the record is queued.
pub unsafe trait Runnable: Sized {
    fn run_link(&self) -> &RunLink<Self>;
    fn priority(&self) -> Priority;
}

/// A FIFO of records linked through their [`RunLink`].
struct Fifo<T> {
    head: Option<NonNull<T>>,
    tail: Option<NonNull<T>>,
    len: usize,
}

impl<T: Runnable> Fifo<T> {
    const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
        }
    }

    /// # Safety
    /// `item` is live and in no queue.
    unsafe fn push_back(&mut self, item: NonNull<T>) {
        // SAFETY: the caller's guarantee; links are only touched under the queue's owner.
        let link = unsafe { item.as_ref() }.run_link();
        link.next.set(None);
        match self.tail {
            // SAFETY: `tail` is a live queued record (queue invariant).
            Some(tail) => unsafe { tail.as_ref() }.run_link().next.set(Some(item)),
            None => self.head = Some(item),
        }
        self.tail = Some(item);
        self.len += 1;
    }

    fn pop_front(&mut self) -> Option<NonNull<T>> {
        let item = self.head?;
        // SAFETY: `head` is a live queued record (queue invariant).
        let next = unsafe { item.as_ref() }.run_link().next.take();
        self.head = next;
        if next.is_none() {
            self.tail = None;
        }
        self.len -= 1;
        Some(item)
    }
}

/// One core's runnable processes (not the one running).
pub struct RunQueue<T: Runnable> {
    max: Fifo<T>,
    high: Fifo<T>,
    /// Normal and low processes, in arrival order.
    normal: Fifo<T>,
    /// How many of `normal`'s records are low priority.
    low_count: usize,
}

// SAFETY: the queue holds pointers to records that the scheduler hands between cores only
// under the queue's lock; the records themselves are never accessed through a shared queue
// without that lock.
unsafe impl<T: Runnable> Send for RunQueue<T> {}

impl<T: Runnable> RunQueue<T> {
    pub const fn new() -> Self {
        Self {
            max: Fifo::new(),
            high: Fifo::new(),
            normal: Fifo::new(),
            low_count: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.max.len + self.high.len + self.normal.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many queued records have priority `priority`.
    pub fn count(&self, priority: Priority) -> usize {
        match priority {
            Priority::Max => self.max.len,
            Priority::High => self.high.len,
            Priority::Normal => self.normal.len - self.low_count,
            Priority::Low => self.low_count,
        }
    }

    /// Append `item` at the back of its priority's queue.
    ///
    /// # Safety
    /// `item` is live, in no queue, and stays live until popped.
    pub unsafe fn push(&mut self, item: NonNull<T>) {
        // SAFETY: the caller's guarantee.
        let priority = unsafe { item.as_ref() }.priority();
        // SAFETY: forwarded.
        unsafe {
            match priority {
                Priority::Max => self.max.push_back(item),
                Priority::High => self.high.push_back(item),
                Priority::Normal => self.normal.push_back(item),
                Priority::Low => {
                    self.low_count += 1;
                    self.normal.push_back(item)
                }
            }
        }
    }

    /// The next record to run by the rules in the module comment, taken off the queue.
    pub fn pop(&mut self) -> Option<NonNull<T>> {
        if let Some(item) = self.max.pop_front() {
            return Some(item);
        }
        if let Some(item) = self.high.pop_front() {
            return Some(item);
        }
        // Each low record is passed over at most LOW_SKIPS times, so this ends within
        // (LOW_SKIPS + 1) * len steps, and at once when no normal record is queued.
        loop {
            let item = self.normal.pop_front()?;
            // SAFETY: popped records are live (push's contract).
            let record = unsafe { item.as_ref() };
            if record.priority() != Priority::Low {
                return Some(item);
            }
            let link = record.run_link();
            let normal_waiting = self.normal.len + 1 > self.low_count;
            if normal_waiting && link.low_skips.get() < LOW_SKIPS {
                link.low_skips.set(link.low_skips.get() + 1);
                // SAFETY: `item` was just popped: live and in no queue.
                unsafe { self.normal.push_back(item) };
                continue;
            }
            link.low_skips.set(0);
            self.low_count -= 1;
            return Some(item);
        }
    }

    /// Take every queued record out, in queue order (max, high, then normal/low).
    pub fn drain(&mut self) -> impl Iterator<Item = NonNull<T>> + '_ {
        core::iter::from_fn(move || {
            let item = self
                .max
                .pop_front()
                .or_else(|| self.high.pop_front())
                .or_else(|| self.normal.pop_front())?;
            // SAFETY: popped records are live.
            if unsafe { item.as_ref() }.priority() == Priority::Low {
                self.low_count -= 1;
            }
            Some(item)
        })
    }
}

impl<T: Runnable> Default for RunQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// A process's reduction budget for one slice. Kernel calls charge it; the timer tick charges
/// it for time, so a native loop that makes no kernel call still runs out at the slice's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    left: i32,
}

/// Reductions in one slice (the BEAM's `CONTEXT_REDS`).
pub const DEFAULT_SLICE_REDUCTIONS: u32 = 4000;

/// Slices per tick are fixed by charging each tick this fraction of a slice: a process that
/// never makes a kernel call is preempted on its second tick (a slice lasts one to two tick
/// periods, depending on where in a period it began).
pub const TICKS_PER_SLICE: u32 = 2;

impl Budget {
    pub const fn full(slice: u32) -> Self {
        Self { left: slice as i32 }
    }

    /// Charge `reductions`; true when the budget is used up (the process should yield).
    pub fn charge(&mut self, reductions: u32) -> bool {
        self.left = self
            .left
            .saturating_sub(reductions.min(i32::MAX as u32) as i32);
        self.left <= 0
    }

    /// The charge for one timer tick with a slice of `slice` reductions.
    pub const fn tick_charge(slice: u32) -> u32 {
        slice.div_ceil(TICKS_PER_SLICE)
    }

    pub fn is_exhausted(&self) -> bool {
        self.left <= 0
    }

    /// Reductions used of a slice of `slice`.
    pub fn used(&self, slice: u32) -> u32 {
        (slice as i64 - self.left.max(0) as i64).max(0) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    struct Proc {
        id: usize,
        priority: Priority,
        link: RunLink<Proc>,
    }

    unsafe impl Runnable for Proc {
        fn run_link(&self) -> &RunLink<Self> {
            &self.link
        }
        fn priority(&self) -> Priority {
            self.priority
        }
    }

    fn procs(priorities: &[Priority]) -> Vec<NonNull<Proc>> {
        priorities
            .iter()
            .enumerate()
            .map(|(id, &priority)| {
                NonNull::from(Box::leak(Box::new(Proc {
                    id,
                    priority,
                    link: RunLink::new(),
                })))
            })
            .collect()
    }

    fn id(p: NonNull<Proc>) -> usize {
        unsafe { p.as_ref() }.id
    }

    #[test]
    fn max_before_high_before_normal_round_robin_within() {
        use Priority::*;
        let ps = procs(&[Normal, High, Max, Normal, High, Max]);
        let mut q = RunQueue::new();
        for &p in &ps {
            unsafe { q.push(p) };
        }
        assert_eq!(q.len(), 6);
        assert_eq!(q.count(Max), 2);
        let order: Vec<usize> = core::iter::from_fn(|| q.pop()).map(id).collect();
        assert_eq!(order, [2, 5, 1, 4, 0, 3]);
        assert!(q.is_empty());
    }

    /// One normal and one low process, each put back after its turn (two hogs): the low one
    /// gets exactly one turn in nine, i.e. 1/8 of the normal one's.
    #[test]
    fn low_runs_once_per_eight_passes_of_normal() {
        use Priority::*;
        let ps = procs(&[Normal, Low]);
        let mut q = RunQueue::new();
        for &p in &ps {
            unsafe { q.push(p) };
        }
        let mut turns = [0usize; 2];
        for _ in 0..9000 {
            let p = q.pop().unwrap();
            turns[id(p)] += 1;
            unsafe { q.push(p) };
        }
        assert_eq!(turns, [8000, 1000]);
    }

    #[test]
    fn low_gets_an_eighth_of_each_normal_with_several_normals() {
        use Priority::*;
        let ps = procs(&[Normal, Normal, Normal, Low]);
        let mut q = RunQueue::new();
        for &p in &ps {
            unsafe { q.push(p) };
        }
        let mut turns = [0usize; 4];
        for _ in 0..(3 * 8000 + 1000) {
            let p = q.pop().unwrap();
            turns[id(p)] += 1;
            unsafe { q.push(p) };
        }
        assert_eq!(turns, [8000, 8000, 8000, 1000]);
    }

    #[test]
    fn only_low_processes_run_in_turn_without_skipping() {
        use Priority::*;
        let ps = procs(&[Low, Low, Low]);
        let mut q = RunQueue::new();
        for &p in &ps {
            unsafe { q.push(p) };
        }
        let order: Vec<usize> = (0..6)
            .map(|_| {
                let p = q.pop().unwrap();
                unsafe { q.push(p) };
                id(p)
            })
            .collect();
        assert_eq!(order, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn a_lone_low_process_after_normal_leaves_is_not_starved() {
        use Priority::*;
        let ps = procs(&[Normal, Low]);
        let mut q = RunQueue::new();
        unsafe {
            q.push(ps[0]);
            q.push(ps[1]);
        }
        assert_eq!(q.pop().map(id), Some(0)); // the normal one runs and exits (not pushed)
        assert_eq!(q.pop().map(id), Some(1));
        assert_eq!(q.pop(), None);
        assert_eq!(q.count(Low), 0);
    }

    #[test]
    fn drain_empties_every_level_and_counts() {
        use Priority::*;
        let ps = procs(&[Low, Normal, High, Max, Low]);
        let mut q = RunQueue::new();
        for &p in &ps {
            unsafe { q.push(p) };
        }
        let drained: Vec<usize> = q.drain().map(id).collect();
        assert_eq!(drained, [3, 2, 0, 1, 4]);
        assert!(q.is_empty());
        assert_eq!(q.count(Low), 0);
    }

    #[test]
    fn budget_runs_out_on_the_second_tick_and_by_kernel_calls() {
        let slice = DEFAULT_SLICE_REDUCTIONS;
        let mut b = Budget::full(slice);
        assert!(!b.charge(Budget::tick_charge(slice)));
        assert!(b.charge(Budget::tick_charge(slice)));
        assert!(b.is_exhausted());
        let mut b = Budget::full(slice);
        for _ in 0..slice - 1 {
            assert!(!b.charge(1));
        }
        assert_eq!(b.used(slice), slice - 1);
        assert!(b.charge(1));
        assert_eq!(b.used(slice), slice);
        assert!(b.charge(u32::MAX), "saturates instead of wrapping");
    }
}
