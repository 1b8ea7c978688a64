//! One core's timer wheel: the pending timers behind `sleep`, receive timeouts and
//! `send_after`, kept so that arming and cancelling a timer cost O(1) however many are
//! pending, and so that a core that slept through a long stretch without ticks catches up
//! without walking every time unit it missed.
//!
//! Portable: no clock, no interrupts, no locks. Time is an abstract `u64` count of units that
//! the kernel chooses (milliseconds of the monotonic clock, or tick periods) and moves
//! forward with [`TimerWheel::advance`], normally from the per-core tick; nothing assumes a
//! tick is one unit. Each core owns one wheel; the kernel serializes access to it (IRQs
//! masked, and a lock if other cores may cancel), nothing inside does.
//!
//! # Shape
//! A hierarchical wheel after the BEAM's (exact 1-unit slots near, coarser slots further out,
//! timers cascading down as their time comes near), with [`LEVELS`] = 11 levels of
//! [`SLOTS`] = 64 slots. Read a time in base 64: level `k` resolves digit `k` (bits
//! `6k..6k+6`), and 11 digits cover all of `u64`, so every deadline up to `u64::MAX` has a
//! place and there is no overflow list. A pending timer with deadline `d > now` sits at
//! - level `k` = the highest digit in which `d` and `now` differ,
//! - slot `s` = digit `k` of `d` (necessarily greater than digit `k` of `now`).
//!
//! So level 0 holds the timers due in `now`'s aligned block of 64 units, one exact deadline
//! per slot, and a slot at level `k > 0` holds the timers in one aligned block of `64^k`
//! units. Slot `s` of level `k` is *entered* when `now` reaches its first unit (`now`'s
//! digits above `k` unchanged, digit `k` equal to `s`, the digits below zero); its timers are
//! then redistributed by the same rule (cascaded), those due exactly then moving to the *due*
//! list and firing. Timers whose deadline is not after `now` (inserted already due) wait in
//! the due list too; they fire at the next `advance`.
//!
//! Invariants (checked by the host tests after every operation of the model test):
//! - every pending timer is in exactly one list: the due list if its deadline equals `now`
//!   (only between an insert and the next `advance`), else the slot the rule above gives for
//!   its deadline and the current `now`; nothing is pending with a deadline before `now`;
//! - a slot's occupancy bit is set iff its list is non-empty; a level's bit in `levels` is
//!   set iff any of its slots is occupied;
//! - within a list, timers with equal deadlines are in insertion order.
//!
//! The last holds because the location depends only on `(deadline, now)`: all timers with
//! one deadline share a list at all times, new timers are appended, and a cascade moves a
//! list's timers in order into lists that were empty (it always cascades the lowest occupied
//! level, so every level below it is empty).
//!
//! # Costs
//! - `insert`, `cancel`, `deadline`: O(1) (`insert` amortized when the slab grows; see
//!   [`TimerWheel::try_reserve`] to grow it ahead of time instead).
//! - `next_deadline`: O(1), two `trailing_zeros`.
//! - `advance`: O(1 + slots entered + timers fired + timers cascaded). Every slot it enters is
//!   non-empty, found by two `trailing_zeros` over the occupancy bitmaps: empty stretches cost
//!   nothing, however long. A timer is cascaded at most `1 + ⌊log64(deadline − now at
//!   insert)⌋` times (and never more than 10): twice at most for anything due within 4096
//!   units, three times within 2^18.
//!
//! # Memory
//! The fixed part is the struct itself, under 3 KiB: 704 `u32` list heads (11 × 64; level 10
//! uses only 16 of its slots) and 11 `u64` bitmaps. Timers live in a slab (`Vec` of entries
//! with a free list), O(pending timers): freed entries are reused first, so insert/cancel
//! cycles never grow it, and it keeps its capacity when timers fire or are cancelled (give
//! it back with [`TimerWheel::shrink_if_empty`]). Lists are intrusive, circular and doubly
//! linked by entry index (a head's `prev` is the tail), so a slot costs one `u32`.
//!
//! # Handles
//! A [`TimerHandle`] is an entry index and the timer's id: a per-wheel 64-bit insertion
//! counter that never repeats, so a stale handle (its timer fired or cancelled, the entry
//! perhaps reused) matches nothing, ever. Handles mean something only to the wheel that made
//! them (the kernel pairs them with the core).

use alloc::collections::TryReserveError;
use alloc::vec::Vec;

/// Bits of a time each level resolves.
const BITS: u32 = 6;
/// Slots per level (one `u64` occupancy bitmap each).
pub const SLOTS: usize = 1 << BITS;
/// Levels: enough 6-bit digits for any `u64` time (11 × 6 = 66 ≥ 64).
pub const LEVELS: usize = (u64::BITS as usize).div_ceil(BITS as usize);

/// "No entry": the end of the free list, an empty list's head.
const NIL: u32 = u32::MAX;
/// [`Entry::list`] of a timer in the due list.
const DUE: u16 = u16::MAX - 1;
/// [`Entry::list`] of a free entry.
const FREE: u16 = u16::MAX;

/// A timer as the wheel hands it out: which entry, and which timer that entry held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerHandle {
    index: u32,
    /// Never 0 for a handle the wheel made.
    id: u64,
}

impl TimerHandle {
    /// The handle's parts (to carry it in a kernel reference).
    pub const fn to_raw(self) -> (u32, u64) {
        (self.index, self.id)
    }

    /// A handle from [`TimerHandle::to_raw`]'s parts. Any parts are safe to use: ones that
    /// name no pending timer make the wheel's lookups return `None`.
    pub const fn from_raw(index: u32, id: u64) -> Self {
        Self { index, id }
    }
}

/// One slab entry: a pending timer, or a free entry on the free list.
struct Entry<T> {
    deadline: u64,
    /// The id of the timer held (0 when free).
    id: u64,
    /// Next in the entry's list (circular), or the next free entry.
    next: u32,
    /// Previous in the entry's list (circular).
    prev: u32,
    /// Which list: `level * SLOTS + slot`, [`DUE`] or [`FREE`].
    list: u16,
    /// `Some` iff pending.
    payload: Option<T>,
}

/// One core's pending timers, each carrying a `T` of the kernel's choice (which process to
/// wake, which message to send).
pub struct TimerWheel<T> {
    now: u64,
    entries: Vec<Entry<T>>,
    /// Head of the free list of entries (linked through `next`).
    free: u32,
    /// Pending timers.
    len: usize,
    /// The id the next timer gets (ids start at 1).
    next_id: u64,
    /// Head of the due list: timers whose deadline is `now`, fired at the next `advance`.
    due: u32,
    /// List heads, `level * SLOTS + slot`.
    heads: [u32; LEVELS * SLOTS],
    /// Per level, bit `s` set iff slot `s` is non-empty.
    occupied: [u64; LEVELS],
    /// Bit `k` set iff `occupied[k] != 0`.
    levels: u16,
    /// Slots entered by `advance`, for the tests' cost bounds.
    #[cfg(test)]
    inspected: u64,
}

/// The level of a timer due at `deadline` when the clock reads `now` (`deadline > now`): the
/// highest base-64 digit in which they differ.
fn level_of(deadline: u64, now: u64) -> usize {
    debug_assert!(deadline > now);
    ((u64::BITS - 1 - (deadline ^ now).leading_zeros()) / BITS) as usize
}

/// Digit `level` of `time` in base 64.
fn digit(time: u64, level: usize) -> usize {
    (time >> (level as u32 * BITS)) as usize & (SLOTS - 1)
}

/// The first unit of slot `slot` of level `level`: `now`'s digits above `level`, then `slot`,
/// then zeros.
fn slot_start(now: u64, level: usize, slot: usize) -> u64 {
    let shift = level as u32 * BITS;
    let above = now.checked_shr(shift + BITS).unwrap_or(0);
    ((above << BITS) | slot as u64) << shift
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose clock reads `now`. Allocates nothing until the first insert.
    pub const fn new(now: u64) -> Self {
        Self {
            now,
            entries: Vec::new(),
            free: NIL,
            len: 0,
            next_id: 1,
            due: NIL,
            heads: [NIL; LEVELS * SLOTS],
            occupied: [0; LEVELS],
            levels: 0,
            #[cfg(test)]
            inspected: 0,
        }
    }

    /// The wheel's clock: the latest time passed to [`TimerWheel::advance`] (or to `new`).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many timers can be pending before `insert` has to allocate.
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Make room for `additional` more pending timers than there are now, so that that many
    /// inserts allocate nothing (growing the slab copies it: do it outside latency-critical
    /// paths).
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), TryReserveError> {
        let free_entries = self.entries.len() - self.len;
        self.entries
            .try_reserve(additional.saturating_sub(free_entries))
    }

    /// Give the slab's memory back if no timer is pending (the slab otherwise keeps its
    /// capacity). Handles issued before stay stale: ids never repeat.
    pub fn shrink_if_empty(&mut self) {
        if self.len == 0 {
            self.entries = Vec::new();
            self.free = NIL;
        }
    }

    /// Arm a timer firing at `deadline` with `payload`.
    ///
    /// A deadline not after `now` is clamped to `now`: the timer is due, `deadline` and
    /// `cancel` report `now` for it, and it fires at the next `advance` (whatever time that is
    /// given), before every timer with a later deadline. (The kernel handles "after 0" before
    /// reaching the wheel.)
    ///
    /// Fails, handing `payload` back, only if the slab must grow and cannot (allocation
    /// failure, or 2^32 − 1 timers pending).
    pub fn insert(&mut self, deadline: u64, payload: T) -> Result<TimerHandle, T> {
        let Some(index) = self.alloc() else {
            return Err(payload);
        };
        let id = self.next_id;
        self.next_id += 1;
        let entry = &mut self.entries[index as usize];
        entry.deadline = deadline.max(self.now);
        entry.id = id;
        entry.payload = Some(payload);
        self.place(index);
        self.len += 1;
        Ok(TimerHandle { index, id })
    }

    /// Disarm a timer: its deadline and payload if it was pending, `None` if it had fired or
    /// been cancelled (or the handle is not this wheel's).
    pub fn cancel(&mut self, handle: TimerHandle) -> Option<(u64, T)> {
        self.lookup(handle)?;
        self.unlink(handle.index);
        Some(self.release(handle.index))
    }

    /// The deadline of a pending timer.
    pub fn deadline(&self, handle: TimerHandle) -> Option<u64> {
        self.lookup(handle).map(|entry| entry.deadline)
    }

    /// Move the clock to `now` (if that is later: the clock never goes back) and hand every
    /// timer due by then to `fire` with its handle (already stale), deadline and payload, in
    /// deadline order, equal deadlines in insertion order. A timer fires at the first
    /// `advance` whose `now` reaches its deadline, never earlier.
    ///
    /// `fire` runs inside and cannot reach the wheel: collect what to do and do it after.
    pub fn advance(&mut self, now: u64, mut fire: impl FnMut(TimerHandle, u64, T)) {
        self.fire_due(&mut fire);
        let target = now.max(self.now);
        // The lowest occupied level's lowest occupied slot is the next one to enter: any slot
        // of a lower level would start earlier, and a level's occupied slots all lie ahead.
        while self.levels != 0 {
            let level = self.levels.trailing_zeros() as usize;
            let slot = self.occupied[level].trailing_zeros() as usize;
            let start = slot_start(self.now, level, slot);
            if start > target {
                break;
            }
            #[cfg(test)]
            {
                self.inspected += 1;
            }
            self.now = start;
            self.cascade(level * SLOTS + slot);
            self.fire_due(&mut fire);
        }
        // Timers left keep their places: `target` has the same digits as the old `now` above
        // each one's level and a smaller digit at it (it is before that slot's start).
        self.now = target;
    }

    /// When the next timer is due, for an idle core to program its timer and sleep: `None`
    /// if none is pending, otherwise a time never later than the earliest pending deadline.
    ///
    /// Exact when the earliest timer is due (its deadline is `now`) or in level 0 (its
    /// deadline differs from `now` only in the low 6 bits: the same aligned block of 64
    /// units). Otherwise it is the start of the aligned block of `64^k` units (level `k`)
    /// holding the earliest deadline, which is after `now`; advancing to it cascades that
    /// block, so an idle core that programs its timer for `next_deadline()` and advances when
    /// it goes off reaches the exact deadline after at most 1 + ⌊log64(deadline − now)⌋ early
    /// wake-ups: one or two for anything due within 4096 units (4 s in milliseconds), three
    /// within 2^18 (4.4 min). A deadline a few units away can still be one block boundary
    /// off (e.g. now 63, deadline 65: the bound is 64).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.due != NIL {
            return Some(self.now);
        }
        if self.levels == 0 {
            return None;
        }
        let level = self.levels.trailing_zeros() as usize;
        let slot = self.occupied[level].trailing_zeros() as usize;
        Some(slot_start(self.now, level, slot))
    }

    /// The pending timer `handle` names.
    fn lookup(&self, handle: TimerHandle) -> Option<&Entry<T>> {
        let entry = self.entries.get(handle.index as usize)?;
        (entry.list != FREE && entry.id == handle.id).then_some(entry)
    }

    /// A free entry, growing the slab if none is.
    fn alloc(&mut self) -> Option<u32> {
        if self.free != NIL {
            let index = self.free;
            self.free = self.entries[index as usize].next;
            return Some(index);
        }
        let index = u32::try_from(self.entries.len())
            .ok()
            .filter(|&index| index != NIL)?;
        // Amortized growth; the push below then cannot allocate.
        self.entries.try_reserve(1).ok()?;
        self.entries.push(Entry {
            deadline: 0,
            id: 0,
            next: NIL,
            prev: NIL,
            list: FREE,
            payload: None,
        });
        Some(index)
    }

    /// Free an unlinked entry: its deadline and payload.
    fn release(&mut self, index: u32) -> (u64, T) {
        let entry = &mut self.entries[index as usize];
        entry.list = FREE;
        entry.id = 0;
        entry.next = self.free;
        entry.prev = NIL;
        self.free = index;
        self.len -= 1;
        let payload = entry
            .payload
            .take()
            .expect("a pending timer has its payload");
        (entry.deadline, payload)
    }

    /// Append an entry (in no list) to the list its deadline and the clock give.
    fn place(&mut self, index: u32) {
        let deadline = self.entries[index as usize].deadline;
        let list = if deadline <= self.now {
            DUE
        } else {
            let level = level_of(deadline, self.now);
            (level * SLOTS + digit(deadline, level)) as u16
        };
        self.push_back(list, index);
    }

    fn head(&self, list: u16) -> u32 {
        match list {
            DUE => self.due,
            _ => self.heads[list as usize],
        }
    }

    /// Set a list's head, keeping the occupancy bits in step.
    fn set_head(&mut self, list: u16, head: u32) {
        if list == DUE {
            self.due = head;
            return;
        }
        self.heads[list as usize] = head;
        let (level, slot) = (list as usize / SLOTS, list as usize % SLOTS);
        if head == NIL {
            self.occupied[level] &= !(1 << slot);
            if self.occupied[level] == 0 {
                self.levels &= !(1 << level);
            }
        } else {
            self.occupied[level] |= 1 << slot;
            self.levels |= 1 << level;
        }
    }

    fn push_back(&mut self, list: u16, index: u32) {
        let head = self.head(list);
        let (prev, next) = if head == NIL {
            self.set_head(list, index);
            (index, index)
        } else {
            let tail = self.entries[head as usize].prev;
            self.entries[tail as usize].next = index;
            self.entries[head as usize].prev = index;
            (tail, head)
        };
        let entry = &mut self.entries[index as usize];
        entry.prev = prev;
        entry.next = next;
        entry.list = list;
    }

    /// Take a pending entry out of its list (it stays pending until released or placed).
    fn unlink(&mut self, index: u32) {
        let entry = &self.entries[index as usize];
        let (list, prev, next) = (entry.list, entry.prev, entry.next);
        if next == index {
            self.set_head(list, NIL);
            return;
        }
        self.entries[prev as usize].next = next;
        self.entries[next as usize].prev = prev;
        if self.head(list) == index {
            self.set_head(list, next);
        }
    }

    /// Enter a non-empty slot (the clock at its start): re-place its timers in order, the
    /// ones due now into the due list, the rest into lower levels.
    fn cascade(&mut self, list: usize) {
        let head = self.heads[list];
        let tail = self.entries[head as usize].prev;
        self.set_head(list as u16, NIL);
        let mut index = head;
        loop {
            let next = self.entries[index as usize].next;
            self.place(index);
            if index == tail {
                break;
            }
            index = next;
        }
    }

    /// Fire the due list, front to back. Each timer leaves the wheel before `fire` sees it.
    fn fire_due(&mut self, fire: &mut impl FnMut(TimerHandle, u64, T)) {
        while self.due != NIL {
            let index = self.due;
            let id = self.entries[index as usize].id;
            self.unlink(index);
            let (deadline, payload) = self.release(index);
            fire(TimerHandle { index, id }, deadline, payload);
        }
    }
}

#[cfg(test)]
impl<T> TimerWheel<T> {
    /// Check every invariant in the module comment, walking the whole wheel.
    fn check(&self) {
        let mut pending = 0;
        let mut walk = |list: u16, head: u32| {
            if head == NIL {
                return;
            }
            let mut index = head;
            let mut previous: Option<(u64, u64)> = None;
            loop {
                let entry = &self.entries[index as usize];
                assert_eq!(entry.list, list);
                assert!(entry.payload.is_some() && entry.id != 0);
                assert_eq!(self.entries[entry.next as usize].prev, index);
                if list == DUE {
                    assert_eq!(entry.deadline, self.now);
                } else {
                    let level = level_of(entry.deadline, self.now);
                    assert_eq!(list as usize, level * SLOTS + digit(entry.deadline, level));
                }
                if let Some((deadline, id)) = previous
                    && deadline == entry.deadline
                {
                    assert!(id < entry.id, "equal deadlines out of insertion order");
                }
                previous = Some((entry.deadline, entry.id));
                pending += 1;
                index = entry.next;
                if index == head {
                    break;
                }
            }
        };
        walk(DUE, self.due);
        for (list, &head) in self.heads.iter().enumerate() {
            walk(list as u16, head);
        }
        assert_eq!(pending, self.len);
        for level in 0..LEVELS {
            for slot in 0..SLOTS {
                let head = self.heads[level * SLOTS + slot];
                assert_eq!(self.occupied[level] >> slot & 1 == 1, head != NIL);
            }
            assert_eq!(self.levels >> level & 1 == 1, self.occupied[level] != 0);
        }
        let mut free = 0;
        let mut index = self.free;
        while index != NIL {
            let entry = &self.entries[index as usize];
            assert!(entry.list == FREE && entry.id == 0 && entry.payload.is_none());
            free += 1;
            index = entry.next;
        }
        assert_eq!(free + self.len, self.entries.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::vec::Vec;

    /// Advance and collect `(deadline, payload)` in firing order.
    fn advance<T>(wheel: &mut TimerWheel<T>, now: u64) -> Vec<(u64, T)> {
        let mut fired = Vec::new();
        wheel.advance(now, |_, deadline, payload| fired.push((deadline, payload)));
        wheel.check();
        fired
    }

    use crate::test_rng::Rng;

    #[test]
    fn a_new_wheel_reads_its_clock_and_has_nothing_pending() {
        let mut wheel = TimerWheel::<u32>::new(1234);
        assert_eq!(wheel.now(), 1234);
        assert!(wheel.is_empty());
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.capacity(), 0);
        assert_eq!(wheel.next_deadline(), None);
        assert!(advance(&mut wheel, 5000).is_empty());
        assert_eq!(wheel.now(), 5000);
    }

    #[test]
    fn the_fixed_part_is_small() {
        assert!(core::mem::size_of::<TimerWheel<u64>>() <= 3 * 1024);
        assert_eq!(LEVELS, 11);
    }

    /// Deadlines in every level and at every digit boundary, from aligned and unaligned
    /// clocks: nothing fires one unit before, the timer fires at exactly its deadline.
    #[test]
    fn fires_exactly_at_the_first_advance_reaching_its_deadline_in_every_level() {
        let starts = [
            0,
            1,
            63,
            64,
            4095,
            4096,
            1_000_037,
            (1 << 36) - 1,
            u64::MAX - (1 << 40),
        ];
        let mut distances = vec![1, 2, 3, 62, 63, 64, 65, 100, 4095, 4096, 4097, 262_143];
        distances.extend([262_144, 1_000_000, 1_000_000_000, 1 << 40, (1 << 50) + 3]);
        distances.extend([(1 << 62) + 12345, u64::MAX]);
        for &start in &starts {
            for &distance in &distances {
                let deadline = start.saturating_add(distance);
                if deadline == start {
                    continue;
                }
                let mut wheel = TimerWheel::new(start);
                let handle = wheel.insert(deadline, 7u8).unwrap();
                wheel.check();
                assert_eq!(wheel.deadline(handle), Some(deadline));
                for early in [deadline.saturating_sub(2), deadline - 1] {
                    if early < start {
                        continue;
                    }
                    let bound = wheel.next_deadline().unwrap();
                    assert!(bound > wheel.now() && bound <= deadline);
                    assert!(advance(&mut wheel, early).is_empty(), "{start} {deadline}");
                    assert_eq!(wheel.len(), 1);
                }
                assert_eq!(advance(&mut wheel, deadline), [(deadline, 7)]);
                assert!(wheel.is_empty());
                assert_eq!(wheel.deadline(handle), None);
                assert_eq!(wheel.next_deadline(), None);
            }
        }
    }

    #[test]
    fn the_largest_deadline_fires_at_the_end_of_time() {
        let mut wheel = TimerWheel::new(0);
        wheel.insert(u64::MAX, 'z').unwrap();
        wheel.insert(u64::MAX - 1, 'y').unwrap();
        assert!(advance(&mut wheel, u64::MAX - 2).is_empty());
        assert_eq!(advance(&mut wheel, u64::MAX - 1), [(u64::MAX - 1, 'y')]);
        assert_eq!(wheel.next_deadline(), Some(u64::MAX));
        assert_eq!(advance(&mut wheel, u64::MAX), [(u64::MAX, 'z')]);
        // A timer armed at the end of time is due at once.
        wheel.insert(3, 'a').unwrap();
        assert_eq!(advance(&mut wheel, u64::MAX), [(u64::MAX, 'a')]);
    }

    /// Advancing one unit at a time, as the tick does: each timer fires on its own tick.
    #[test]
    fn ticking_every_unit_fires_each_timer_on_its_deadline_tick() {
        let start = 1_000_037;
        let mut rng = Rng(0x5eed);
        let mut wheel = TimerWheel::new(start);
        let mut last = start;
        for _ in 0..2000 {
            let deadline = start + 1 + rng.below(300_000);
            last = last.max(deadline);
            wheel.insert(deadline, deadline).unwrap();
        }
        let mut fired = 0;
        for now in start + 1..=last {
            wheel.advance(now, |_, deadline, payload| {
                assert_eq!(deadline, now);
                assert_eq!(payload, deadline);
                fired += 1;
            });
        }
        wheel.check();
        assert_eq!(fired, 2000);
        assert!(wheel.is_empty());
    }

    #[test]
    fn a_big_jump_fires_what_is_due_in_deadline_order_ties_in_insertion_order() {
        let base = [
            5u64,
            70,
            64,
            4096,
            1,
            300_000,
            5,
            70,
            9_999_999,
            1 << 33,
            64,
            1,
        ];
        let mut wheel = TimerWheel::new(0);
        let mut expected = Vec::new();
        for (seq, &deadline) in base.iter().chain(base.iter().rev()).enumerate() {
            wheel.insert(deadline, seq).unwrap();
            expected.push((deadline, seq));
        }
        wheel.check();
        expected.sort(); // by deadline, then by insertion order
        let (due, later): (Vec<_>, Vec<_>) = expected.into_iter().partition(|&(d, _)| d <= 300_000);
        assert_eq!(advance(&mut wheel, 300_000), due);
        assert_eq!(wheel.len(), later.len());
        assert_eq!(advance(&mut wheel, 1 << 40), later);
        assert!(wheel.is_empty());
    }

    /// Timers due at one time but armed at different times (so first placed in different
    /// levels) still fire in the order they were armed.
    #[test]
    fn equal_deadlines_fire_in_insertion_order_whenever_they_were_armed() {
        let deadline: u64 = (3 << 24) + (5 << 18) + (7 << 12) + (11 << 6) + 13;
        let mut wheel = TimerWheel::new(0);
        let mut expected = Vec::new();
        let mut times = vec![0, 1];
        for level in (1..5).rev() {
            let block = deadline >> (6 * level) << (6 * level);
            times.extend([block - 1, block, block + 1]);
        }
        times.push(deadline - 1);
        for (seq, &now) in times.iter().enumerate() {
            assert!(advance(&mut wheel, now).is_empty());
            wheel.insert(deadline, seq).unwrap();
            wheel.insert(deadline + 1, 1000 + seq).unwrap();
            expected.push(seq);
        }
        let fired: Vec<usize> = advance(&mut wheel, deadline)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(fired, expected);
        let fired: Vec<usize> = advance(&mut wheel, deadline + 1)
            .into_iter()
            .map(|(_, p)| p - 1000)
            .collect();
        assert_eq!(fired, expected);
    }

    #[test]
    fn a_deadline_not_in_the_future_is_due_now_and_fires_at_the_next_advance() {
        let mut wheel = TimerWheel::new(100);
        let past = wheel.insert(50, 'p').unwrap();
        let present = wheel.insert(100, 'n').unwrap();
        let future = wheel.insert(101, 'f').unwrap();
        wheel.check();
        assert_eq!(wheel.deadline(past), Some(100));
        assert_eq!(wheel.deadline(present), Some(100));
        assert_eq!(wheel.deadline(future), Some(101));
        assert_eq!(wheel.next_deadline(), Some(100));
        // Even an advance that does not move the clock fires them.
        assert_eq!(advance(&mut wheel, 100), [(100, 'p'), (100, 'n')]);
        assert_eq!(wheel.next_deadline(), Some(101));
        let late = wheel.insert(0, 'l').unwrap();
        assert_eq!(wheel.cancel(late), Some((100, 'l')));
        wheel.insert(0, 'l').unwrap();
        // Due timers go first, then the rest in order.
        assert_eq!(advance(&mut wheel, 200), [(100, 'l'), (101, 'f')]);
    }

    #[test]
    fn the_clock_never_goes_back() {
        let mut wheel = TimerWheel::new(100);
        wheel.insert(101, ()).unwrap();
        assert!(advance(&mut wheel, 50).is_empty());
        assert_eq!(wheel.now(), 100);
        assert_eq!(wheel.next_deadline(), Some(101));
        assert_eq!(advance(&mut wheel, 101).len(), 1);
    }

    #[test]
    fn cancel_before_firing_returns_the_payload_and_the_timer_never_fires() {
        let mut wheel = TimerWheel::new(10);
        let deadlines = [5, 10, 11, 63, 64, 100, 5000, 1 << 20, 1 << 40, u64::MAX];
        let handles: Vec<_> = deadlines
            .iter()
            .map(|&d| wheel.insert(d, d).unwrap())
            .collect();
        let keep = wheel.insert(70, 0).unwrap();
        wheel.check();
        for (&handle, &d) in handles.iter().zip(&deadlines) {
            let deadline = d.max(10);
            assert_eq!(wheel.deadline(handle), Some(deadline));
            assert_eq!(wheel.cancel(handle), Some((deadline, d)));
            wheel.check();
            assert_eq!(wheel.cancel(handle), None, "cancelled twice");
            assert_eq!(wheel.deadline(handle), None);
        }
        assert_eq!(wheel.len(), 1);
        // 70 is in the next block of 64: the bound is that block's start.
        assert_eq!(wheel.next_deadline(), Some(64));
        assert_eq!(advance(&mut wheel, u64::MAX), [(70, 0)]);
        assert_eq!(wheel.cancel(keep), None, "cancelled after firing");
    }

    #[test]
    fn the_handle_given_to_fire_is_stale() {
        let mut wheel = TimerWheel::new(0);
        let handle = wheel.insert(3, ()).unwrap();
        let mut seen = None;
        wheel.advance(3, |h, _, ()| seen = Some(h));
        assert_eq!(seen, Some(handle));
        assert_eq!(wheel.cancel(handle), None);
    }

    #[test]
    fn a_stale_handle_never_touches_the_timer_that_reused_its_entry() {
        let mut wheel = TimerWheel::new(0);
        let old = wheel.insert(100, "old").unwrap();
        assert_eq!(wheel.cancel(old), Some((100, "old")));
        let new = wheel.insert(100, "new").unwrap();
        assert_eq!(new.to_raw().0, old.to_raw().0, "the entry is reused");
        assert_ne!(new, old);
        assert_eq!(wheel.cancel(old), None);
        assert_eq!(wheel.deadline(old), None);
        assert_eq!(wheel.deadline(new), Some(100));
        // Reused after firing too.
        assert_eq!(advance(&mut wheel, 100), [(100, "new")]);
        let newer = wheel.insert(200, "newer").unwrap();
        assert_eq!(newer.to_raw().0, new.to_raw().0);
        assert_eq!(wheel.cancel(new), None);
        assert_eq!(wheel.cancel(old), None);
        // Made-up handles match nothing.
        assert_eq!(
            wheel.cancel(TimerHandle::from_raw(newer.to_raw().0, 0)),
            None
        );
        assert_eq!(
            wheel.cancel(TimerHandle::from_raw(99, newer.to_raw().1)),
            None
        );
        assert_eq!(wheel.len(), 1);
        // Even after the slab was given back.
        assert_eq!(wheel.cancel(newer), Some((200, "newer")));
        wheel.shrink_if_empty();
        assert_eq!(wheel.capacity(), 0);
        let newest = wheel.insert(300, "newest").unwrap();
        assert_eq!(newest.to_raw().0, newer.to_raw().0);
        assert_eq!(wheel.cancel(newer), None);
        assert_eq!(wheel.deadline(newest), Some(300));
        wheel.check();
    }

    #[test]
    fn a_hundred_thousand_pending_then_insert_cancel_pairs_do_not_grow_memory() {
        const PENDING: u64 = 100_000;
        let mut wheel = TimerWheel::new(0);
        let mut rng = Rng(42);
        for i in 0..PENDING {
            let deadline = 1 + match i % 4 {
                0 => rng.below(64),
                1 => rng.below(5000),
                2 => rng.below(10_000_000),
                _ => rng.next(),
            };
            wheel.insert(deadline, i).unwrap();
        }
        wheel.check();
        let capacity = wheel.capacity();
        let mut last_id = 0;
        for i in 0..PENDING {
            let deadline = 1 + rng.below(1 << (i % 64));
            let handle = wheel.insert(deadline, u64::MAX).unwrap();
            assert!(handle.to_raw().1 > last_id);
            last_id = handle.to_raw().1;
            assert_eq!(wheel.len() as u64, PENDING + 1);
            assert_eq!(wheel.cancel(handle), Some((deadline, u64::MAX)));
            assert_eq!(wheel.len() as u64, PENDING);
        }
        assert_eq!(wheel.capacity(), capacity);
        wheel.check();
        let mut fired = 0;
        wheel.advance(u64::MAX, |_, _, payload| {
            assert_ne!(payload, u64::MAX);
            fired += 1;
        });
        assert_eq!(fired, PENDING);
    }

    #[test]
    fn fired_entries_are_reused_and_reserve_grows_ahead() {
        let mut wheel = TimerWheel::new(0);
        wheel.try_reserve(1000).unwrap();
        let capacity = wheel.capacity();
        assert!(capacity >= 1000);
        for round in 0..5u64 {
            for i in 0..1000 {
                wheel.insert(round * 10_000 + 1 + i * 7, i).unwrap();
            }
            assert_eq!(wheel.capacity(), capacity);
            assert_eq!(advance(&mut wheel, (round + 1) * 10_000).len(), 1000);
        }
        // 600 pending, 400 free entries: room for 400 + 100 more needs no more than that.
        for i in 0..600 {
            wheel.insert(100_000 + i, i).unwrap();
        }
        wheel.try_reserve(400).unwrap();
        assert_eq!(wheel.capacity(), capacity);
        wheel.try_reserve(500).unwrap();
        assert!(wheel.capacity() >= 1100);
        wheel.shrink_if_empty();
        assert!(wheel.capacity() >= 1100, "not empty: kept");
    }

    /// A jump over an empty stretch enters no slot; over a sparse one, only the occupied
    /// slots on the way to each timer.
    #[test]
    fn jumping_over_an_empty_or_sparse_wheel_inspects_few_slots() {
        let mut wheel = TimerWheel::<u32>::new(17);
        wheel.advance(1_000_000_017, |_, _, _| unreachable!());
        assert_eq!(wheel.inspected, 0);
        for step in 1..1000u64 {
            wheel.advance(1_000_000_017 + step * 1_000_003, |_, _, _| unreachable!());
        }
        assert_eq!(wheel.inspected, 0);

        let now = wheel.now();
        for (i, distance) in [5_000_000_000u64, 1_000_000_000, 3, 1 << 45]
            .iter()
            .enumerate()
        {
            wheel.insert(now + distance, i as u32).unwrap();
        }
        let fired = advance(&mut wheel, now + 6_000_000_000);
        assert_eq!(fired.iter().map(|&(_, p)| p).collect::<Vec<_>>(), [2, 1, 0]);
        // Each timer is cascaded at most once per level below its first one.
        assert!(wheel.inspected <= 3 * LEVELS as u64, "{}", wheel.inspected);
        let before = wheel.inspected;
        assert_eq!(advance(&mut wheel, u64::MAX).len(), 1);
        assert!(wheel.inspected - before <= LEVELS as u64);
    }

    #[test]
    fn next_deadline_is_exact_near_and_a_lower_bound_far_that_converges() {
        let mut wheel = TimerWheel::new(1000);
        assert_eq!(wheel.next_deadline(), None);
        // 1000 = 15 * 64 + 40: 1001..=1023 are in now's block of 64.
        wheel.insert(1020, ()).unwrap();
        wheel.insert(1010, ()).unwrap();
        assert_eq!(wheel.next_deadline(), Some(1010));
        advance(&mut wheel, 1010);
        assert_eq!(wheel.next_deadline(), Some(1020));
        advance(&mut wheel, 1020);

        for deadline in [1030u64, 5000, 3_600_000, 86_400_000 * 365, u64::MAX] {
            let mut wheel = TimerWheel::new(1000);
            wheel.insert(deadline, ()).unwrap();
            let mut wakeups = 0;
            loop {
                let bound = wheel.next_deadline().unwrap();
                assert!(bound > wheel.now() && bound <= deadline);
                wakeups += 1;
                let fired = advance(&mut wheel, bound);
                if !fired.is_empty() {
                    assert_eq!(bound, deadline);
                    break;
                }
            }
            let distance = deadline - 1000;
            let log64 = (u64::BITS - 1 - distance.leading_zeros()) / 6;
            assert!(wakeups <= 2 + log64, "{deadline}: {wakeups} wake-ups");
        }
    }

    #[test]
    fn payloads_are_dropped_with_the_wheel_or_when_handed_out() {
        let token = Rc::new(());
        let mut wheel = TimerWheel::new(0);
        for i in 0..100 {
            wheel.insert(i * 1000, Rc::clone(&token)).unwrap();
        }
        let handle = wheel.insert(5, Rc::clone(&token)).unwrap();
        assert_eq!(Rc::strong_count(&token), 102);
        drop(wheel.cancel(handle));
        assert_eq!(advance(&mut wheel, 50_000).len(), 51);
        assert_eq!(Rc::strong_count(&token), 50);
        drop(wheel);
        assert_eq!(Rc::strong_count(&token), 1);
    }

    /// Random inserts, cancels (of live and stale handles) and advances (by nothing, a unit,
    /// a little, a lot, to just before or at the next deadline), against a sorted-vector
    /// model; invariants checked after every step.
    #[test]
    fn random_operations_match_a_simple_model() {
        struct Pending {
            deadline: u64,
            seq: u64,
            handle: TimerHandle,
        }

        for seed in 1..=12u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let start = match seed % 3 {
                0 => 0,
                1 => rng.below(1 << 40),
                _ => u64::MAX - (1 << 42) - rng.below(1 << 30),
            };
            let mut wheel = TimerWheel::new(start);
            let mut model: Vec<Pending> = Vec::new(); // kept sorted by (deadline, seq)
            let mut issued: Vec<TimerHandle> = Vec::new();
            let mut seq = 0u64;
            for _ in 0..6000 {
                let now = wheel.now();
                match rng.below(100) {
                    0..45 => {
                        let deadline = match rng.below(16) {
                            0 => now.saturating_sub(rng.below(100)),
                            1 => now,
                            2..6 => now.saturating_add(1 + rng.below(64)),
                            6..10 => now.saturating_add(1 + rng.below(5000)),
                            10..13 => now.saturating_add(1 + rng.below(10_000_000)),
                            13 => now.saturating_add(1 + rng.below(1 << 40)),
                            14 => (now + (u64::MAX - now) / 2).saturating_add(rng.below(1000)),
                            _ => u64::MAX - rng.below(3),
                        };
                        let handle = wheel.insert(deadline, seq).unwrap();
                        let deadline = deadline.max(now);
                        let at = model.partition_point(|p| p.deadline <= deadline);
                        model.insert(
                            at,
                            Pending {
                                deadline,
                                seq,
                                handle,
                            },
                        );
                        issued.push(handle);
                        seq += 1;
                    }
                    45..65 if !issued.is_empty() => {
                        let handle = issued[rng.below(issued.len() as u64) as usize];
                        let expected = model.iter().position(|p| p.handle == handle).map(|i| {
                            let p = model.remove(i);
                            (p.deadline, p.seq)
                        });
                        assert_eq!(wheel.cancel(handle), expected);
                    }
                    _ => {
                        let earliest = model.first().map(|p| p.deadline);
                        let to = match rng.below(10) {
                            0 => now,
                            1 => now.saturating_add(1),
                            2..4 => now.saturating_add(rng.below(100)),
                            4 => now.saturating_add(rng.below(100_000)),
                            5 => now.saturating_add(rng.below(1 << 36)),
                            6 => earliest.map_or(now, |d| d.saturating_sub(1).max(now)),
                            7 => earliest.unwrap_or(now),
                            8 => wheel.next_deadline().unwrap_or(now),
                            _ => now.saturating_sub(rng.below(10)),
                        };
                        // The clock never goes back: due timers fire even so.
                        let cut = model.partition_point(|p| p.deadline <= to.max(now));
                        let expected: Vec<(TimerHandle, u64, u64)> = model
                            .drain(..cut)
                            .map(|p| (p.handle, p.deadline, p.seq))
                            .collect();
                        let mut fired = Vec::new();
                        wheel.advance(to, |h, d, s| fired.push((h, d, s)));
                        assert_eq!(fired, expected, "seed {seed}");
                        assert_eq!(wheel.now(), to.max(now));
                    }
                }
                wheel.check();
                assert_eq!(wheel.len(), model.len());
                let now = wheel.now();
                match (wheel.next_deadline(), model.first().map(|p| p.deadline)) {
                    (None, None) => {}
                    (Some(bound), Some(first)) => {
                        assert!(bound <= first && bound >= now);
                        if first == now || first >> 6 == now >> 6 {
                            assert_eq!(bound, first);
                        }
                    }
                    other => panic!("next_deadline and model disagree: {other:?}"),
                }
                if let Some(p) = model.get(rng.below(model.len() as u64 + 1) as usize) {
                    assert_eq!(wheel.deadline(p.handle), Some(p.deadline));
                }
            }
            let mut fired = Vec::new();
            wheel.advance(u64::MAX, |_, d, s| fired.push((d, s)));
            let expected: Vec<_> = model.iter().map(|p| (p.deadline, p.seq)).collect();
            assert_eq!(fired, expected);
            assert!(wheel.is_empty());
        }
    }
}
