//! The process table: pid → process record, O(1), growing with demand.
//!
//! Slots live in segments of [`SEGMENT_SLOTS`] allocated the first time an index in them is
//! handed out and never freed or moved, so a lookup is two loads and a compare with no lock,
//! from any core. Each slot carries a generation that changes whenever its process leaves, so
//! a stale pid never reaches the slot's next occupant. Freed indices are reused most recent
//! first (their stack slots are likely still backed by page tables), and never-used indices
//! are handed out in order.
//!
//! Portable: records are opaque pointers; the kernel decides what they point to.

use crate::process::Pid;
use crate::sync::IrqMutex;
use alloc::boxed::Box;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// Slots per segment (96 KiB of 24-byte slots).
pub const SEGMENT_SLOTS: usize = 4096;
/// Segments at most: 2^24 processes (16.7 million) in all. The pointers to them cost 32 KiB.
pub const MAX_SEGMENTS: usize = 4096;
/// The most processes that can exist at once.
pub const MAX_PROCESSES: usize = SEGMENT_SLOTS * MAX_SEGMENTS;

/// Why no slot was handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// [`MAX_PROCESSES`] exist already.
    Full,
    /// A new segment could not be allocated.
    OutOfMemory,
}

struct Slot {
    /// Changes (wrapping) each time the slot is released.
    generation: AtomicU32,
    /// Holders of [`Pinned`] guards on this slot's record: while non-zero, its owner does not
    /// free the record (see [`ProcessTable::pin`]).
    pins: AtomicU32,
    /// Next free index + 1 while free (0 = end of list); written under the free-list lock.
    next_free: AtomicU32,
    record: AtomicPtr<()>,
}

struct Segment {
    slots: [Slot; SEGMENT_SLOTS],
}

struct FreeList {
    /// Most recently freed index + 1 (0 = none).
    head: u32,
    /// Indices below this have been handed out at least once.
    high_water: u32,
}

pub struct ProcessTable {
    segments: [AtomicPtr<Segment>; MAX_SEGMENTS],
    free: IrqMutex<FreeList>,
    live: AtomicUsize,
}

impl ProcessTable {
    pub const fn new() -> Self {
        Self {
            segments: [const { AtomicPtr::new(ptr::null_mut()) }; MAX_SEGMENTS],
            free: IrqMutex::new(FreeList {
                head: 0,
                high_water: 0,
            }),
            live: AtomicUsize::new(0),
        }
    }

    fn slot(&self, index: u32) -> Option<&Slot> {
        let index = index as usize;
        let segment = self.segments.get(index / SEGMENT_SLOTS)?;
        let segment = segment.load(Ordering::Acquire);
        // SAFETY: a published segment is never freed or moved (module invariant).
        let segment = unsafe { segment.as_ref() }?;
        Some(&segment.slots[index % SEGMENT_SLOTS])
    }

    /// Reserve a slot for a new process and return its pid. The slot holds no record until
    /// [`ProcessTable::publish`]: lookups of the pid fail until then.
    pub fn allocate(&self) -> Result<Pid, TableError> {
        let mut free = self.free.lock();
        let index = if free.head != 0 {
            let index = free.head - 1;
            let slot = self.slot(index).expect("free indices lie in live segments");
            free.head = slot.next_free.load(Ordering::Relaxed);
            index
        } else {
            let index = free.high_water;
            if index as usize >= MAX_PROCESSES {
                return Err(TableError::Full);
            }
            let segment = &self.segments[index as usize / SEGMENT_SLOTS];
            if segment.load(Ordering::Relaxed).is_null() {
                segment.store(new_segment()?, Ordering::Release);
            }
            free.high_water += 1;
            index
        };
        drop(free);
        let slot = self.slot(index).expect("just allocated");
        self.live.fetch_add(1, Ordering::Relaxed);
        Ok(Pid::new(index, slot.generation.load(Ordering::Relaxed)))
    }

    /// Make `pid` resolve to `record`.
    pub fn publish(&self, pid: Pid, record: NonNull<()>) {
        let slot = self.slot(pid.index()).expect("pid came from allocate");
        debug_assert_eq!(slot.generation.load(Ordering::Relaxed), pid.generation());
        slot.record.store(record.as_ptr(), Ordering::Release);
    }

    /// The record of the live process `pid`, or `None` for a pid that is stale, never
    /// existed, or is not published yet. The record may be released right after this returns:
    /// callers that dereference it need their own guarantee that it is still alive.
    pub fn lookup(&self, pid: Pid) -> Option<NonNull<()>> {
        let slot = self.slot(pid.index())?;
        let record = NonNull::new(slot.record.load(Ordering::Acquire))?;
        (slot.generation.load(Ordering::Acquire) == pid.generation()).then_some(record)
    }

    /// End `pid`: it no longer resolves, and its index goes back on the free list with the
    /// next generation. Returns false (and changes nothing) if `pid` is not the slot's current
    /// occupant.
    pub fn release(&self, pid: Pid) -> bool {
        self.retire(pid) && {
            self.recycle(pid.index());
            true
        }
    }

    /// First half of [`ProcessTable::release`]: `pid` stops resolving (its generation moves
    /// on), but the index is not reused until [`ProcessTable::recycle`], so whatever the
    /// slot's index owns (its stack slot) can be torn down in between. False if `pid` is
    /// not the current occupant.
    pub fn retire(&self, pid: Pid) -> bool {
        let Some(slot) = self.slot(pid.index()) else {
            return false;
        };
        let _free = self.free.lock();
        if slot.generation.load(Ordering::Relaxed) != pid.generation() {
            return false;
        }
        slot.record.store(ptr::null_mut(), Ordering::Release);
        // SeqCst, paired with `pin`: either a pinner's increment is seen by
        // `wait_until_unpinned`, or the pinner sees this new generation and backs off.
        slot.generation
            .store(pid.generation().wrapping_add(1), Ordering::SeqCst);
        true
    }

    /// Hold `pid`'s record alive: while the guard lives, a retired record is not freed (its
    /// owner calls [`ProcessTable::wait_until_unpinned`] between retiring and freeing). `None`
    /// for a pid that no longer (or never) resolves. Hold it briefly, with no lock and no
    /// switch in between: an exiting core spins on it.
    pub fn pin(&self, pid: Pid) -> Option<Pinned<'_>> {
        let slot = self.slot(pid.index())?;
        slot.pins.fetch_add(1, Ordering::SeqCst);
        let record = NonNull::new(slot.record.load(Ordering::Acquire));
        match record {
            Some(record) if slot.generation.load(Ordering::SeqCst) == pid.generation() => {
                Some(Pinned { slot, record })
            }
            _ => {
                slot.pins.fetch_sub(1, Ordering::Release);
                None
            }
        }
    }

    /// After [`ProcessTable::retire`]: wait until every pin taken before it is released. New
    /// pins fail from the retire on, so this ends as soon as the current holders are done.
    pub fn wait_until_unpinned(&self, index: u32) {
        if let Some(slot) = self.slot(index) {
            while slot.pins.load(Ordering::SeqCst) != 0 {
                crate::sync::cpu_relax();
            }
        }
    }

    /// Second half of [`ProcessTable::release`]: the retired `index` may be handed out again.
    pub fn recycle(&self, index: u32) {
        let slot = self.slot(index).expect("recycled indices were allocated");
        let mut free = self.free.lock();
        slot.next_free.store(free.head, Ordering::Relaxed);
        free.head = index + 1;
        drop(free);
        self.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// Processes allocated and not yet released.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Indices handed out at least once (the table's extent).
    pub fn high_water(&self) -> usize {
        self.free.lock().high_water as usize
    }

    /// Every published record, in index order (a snapshot: records may come and go while it
    /// runs).
    pub fn for_each(&self, mut f: impl FnMut(Pid, NonNull<()>)) {
        let extent = self.high_water() as u32;
        for index in 0..extent {
            if let Some(slot) = self.slot(index) {
                let generation = slot.generation.load(Ordering::Acquire);
                if let Some(record) = NonNull::new(slot.record.load(Ordering::Acquire)) {
                    f(Pid::new(index, generation), record);
                }
            }
        }
    }
}

impl Default for ProcessTable {
    fn default() -> Self {
        Self::new()
    }
}

/// A live process's record, held: see [`ProcessTable::pin`].
pub struct Pinned<'a> {
    slot: &'a Slot,
    record: NonNull<()>,
}

impl Pinned<'_> {
    /// The record; valid while the guard lives.
    pub fn record(&self) -> NonNull<()> {
        self.record
    }
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        self.slot.pins.fetch_sub(1, Ordering::Release);
    }
}

/// A zeroed segment from the kernel heap (fallibly: running out is an error, not a panic).
fn new_segment() -> Result<*mut Segment, TableError> {
    crate::mem::in_kernel_heap(|| {
        let layout = core::alloc::Layout::new::<Segment>();
        // SAFETY: the layout is not zero-sized. All-zero bytes are a valid Segment (atomics
        // and null pointers).
        let raw = unsafe { alloc::alloc::alloc_zeroed(layout) } as *mut Segment;
        if raw.is_null() {
            Err(TableError::OutOfMemory)
        } else {
            // SAFETY: freshly allocated for exactly this type, zero is a valid value.
            Ok(Box::into_raw(unsafe { Box::from_raw(raw) }))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::vec::Vec;

    fn record(n: usize) -> NonNull<()> {
        NonNull::new((n * 16 + 16) as *mut ()).unwrap()
    }

    #[test]
    fn stale_pid_never_reaches_the_next_occupant() {
        let table = Box::new(ProcessTable::new());
        let a = table.allocate().unwrap();
        assert_eq!(table.lookup(a), None, "not published yet");
        table.publish(a, record(1));
        assert_eq!(table.lookup(a), Some(record(1)));
        assert!(table.release(a));
        assert!(!table.release(a), "released twice");
        let b = table.allocate().unwrap();
        table.publish(b, record(2));
        assert_eq!(b.index(), a.index(), "the freed index is reused");
        assert_ne!(b.generation(), a.generation());
        assert_eq!(table.lookup(a), None);
        assert_eq!(table.lookup(b), Some(record(2)));
        assert_eq!(table.live(), 1);
    }

    #[test]
    fn pins_hold_off_the_free_and_fail_after_retire() {
        let table2: &'static ProcessTable = Box::leak(Box::new(ProcessTable::new()));
        let pid = table2.allocate().unwrap();
        table2.publish(pid, record(5));
        let pinned = table2.pin(pid).expect("live");
        assert_eq!(pinned.record(), record(5));
        assert!(table2.retire(pid));
        assert!(table2.pin(pid).is_none(), "no new pins after retire");
        let waiter = std::thread::spawn(move || {
            table2.wait_until_unpinned(pid.index());
            table2.recycle(pid.index());
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!waiter.is_finished(), "the free waits for the pin");
        drop(pinned);
        waiter.join().unwrap();
        assert_eq!(table2.live(), 0);
    }

    #[test]
    fn grows_past_many_segments_and_lookups_are_exact() {
        let table = Box::new(ProcessTable::new());
        let n = SEGMENT_SLOTS * 3 + 17;
        let pids: Vec<Pid> = (0..n)
            .map(|i| {
                let pid = table.allocate().unwrap();
                table.publish(pid, record(i));
                pid
            })
            .collect();
        assert_eq!(table.live(), n);
        assert_eq!(table.high_water(), n);
        for (i, &pid) in pids.iter().enumerate() {
            assert_eq!(table.lookup(pid), Some(record(i)));
        }
        assert_eq!(table.lookup(Pid::new(n as u32 + 5000, 0)), None);
        assert_eq!(table.lookup(Pid::new(u32::MAX, 0)), None);
        let mut seen = 0;
        table.for_each(|_, _| seen += 1);
        assert_eq!(seen, n);
        for &pid in &pids {
            assert!(table.release(pid));
        }
        assert_eq!(table.live(), 0);
        // Reuse: no new indices while freed ones remain.
        for _ in 0..n {
            table.allocate().unwrap();
        }
        assert_eq!(table.high_water(), n);
    }

    #[test]
    fn concurrent_spawn_and_exit_from_four_threads_keep_pids_unique() {
        let table = Arc::new(ProcessTable::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let table = table.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..20_000 {
                        let pid = table.allocate().unwrap();
                        table.publish(pid, record(t * 1_000_000 + i));
                        mine.push(pid);
                        if i % 3 == 0 {
                            let gone = mine.swap_remove(i % mine.len());
                            assert!(table.release(gone));
                            assert_eq!(table.lookup(gone), None);
                        }
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<Pid> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let count = all.len();
        assert_eq!(table.live(), count);
        all.sort_by_key(|p| p.index());
        all.dedup_by_key(|p| p.index());
        assert_eq!(all.len(), count, "no index is held by two live processes");
    }
}
