//! Arithmetic over physical address ranges: free RAM = memory - (kernel image, DTB, reserved
//! regions), computed before any allocator exists.
//!
//! [`PhysRange`] is a half-open range `[start, end)`; [`RangeSet`] is a set of addresses kept
//! as sorted, merged ranges in a fixed-capacity array (no heap: it is used to build the heap).

use core::fmt;

/// A half-open physical address range `[start, end)`. Empty when `start >= end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

impl PhysRange {
    /// The empty range at 0.
    pub const EMPTY: Self = Self { start: 0, end: 0 };

    /// `[start, end)`.
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    /// `[start, start + len)`, or `None` if that passes 2^64.
    pub const fn with_len(start: u64, len: u64) -> Option<Self> {
        match start.checked_add(len) {
            Some(end) => Some(Self { start, end }),
            None => None,
        }
    }

    /// Number of bytes (0 if empty).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub const fn is_empty(&self) -> bool {
        self.start >= self.end
    }

    /// Whether `addr` is inside the range.
    pub const fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }

    /// Whether the two ranges share at least one address (empty ranges overlap nothing).
    pub const fn overlaps(&self, other: &PhysRange) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }

    /// The common part of the two ranges, if any.
    pub fn intersection(&self, other: &PhysRange) -> Option<PhysRange> {
        let r = PhysRange::new(self.start.max(other.start), self.end.min(other.end));
        (!r.is_empty()).then_some(r)
    }

    /// The largest `align`-aligned range inside this one: start rounded up, end rounded down.
    /// `None` if nothing aligned is left.
    ///
    /// # Panics
    /// If `align` is not a power of two.
    pub const fn align_inward(&self, align: u64) -> Option<PhysRange> {
        assert!(align.is_power_of_two(), "alignment must be a power of two");
        let Some(start) = align_up(self.start, align) else {
            return None;
        };
        let end = self.end & !(align - 1);
        if start < end {
            Some(PhysRange { start, end })
        } else {
            None
        }
    }
}

impl fmt::Display for PhysRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:#x}, {:#x})", self.start, self.end)
    }
}

/// `addr` rounded up to `align` (a power of two), or `None` on overflow.
const fn align_up(addr: u64, align: u64) -> Option<u64> {
    match addr.checked_add(align - 1) {
        Some(a) => Some(a & !(align - 1)),
        None => None,
    }
}

/// A [`RangeSet`] operation needed more than its `N` ranges. The set is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityError;

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("range set capacity exceeded")
    }
}

impl core::error::Error for CapacityError {}

/// A set of physical addresses as at most `N` ranges.
///
/// Invariant (holds after every call, including failed ones): `ranges[..len]` are non-empty,
/// sorted by address, and neither overlap nor touch: `ranges[i].end < ranges[i + 1].start`.
/// So the representation of a set of addresses is unique, and adjacent pieces always merge.
#[derive(Clone)]
pub struct RangeSet<const N: usize> {
    ranges: [PhysRange; N],
    len: usize,
}

impl<const N: usize> Default for RangeSet<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for RangeSet<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<const N: usize> PartialEq for RangeSet<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for RangeSet<N> {}

impl<const N: usize> RangeSet<N> {
    /// The empty set.
    pub const fn new() -> Self {
        Self {
            ranges: [PhysRange::EMPTY; N],
            len: 0,
        }
    }

    /// The ranges, sorted and merged.
    pub fn as_slice(&self) -> &[PhysRange] {
        &self.ranges[..self.len]
    }

    /// The ranges, sorted and merged.
    pub fn iter(&self) -> impl Iterator<Item = PhysRange> + '_ {
        self.as_slice().iter().copied()
    }

    /// Number of ranges (not bytes).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether `addr` is in the set.
    pub fn contains(&self, addr: u64) -> bool {
        let i = self.as_slice().partition_point(|r| r.end <= addr);
        i < self.len && self.ranges[i].contains(addr)
    }

    /// Adds the addresses of `r`, merging with overlapping and adjacent ranges. Fails (leaving
    /// the set unchanged) only if `r` touches no existing range and the set is full.
    pub fn add(&mut self, r: PhysRange) -> Result<(), CapacityError> {
        if r.is_empty() {
            return Ok(());
        }
        let ranges = self.as_slice();
        // ranges[lo..hi] are those that overlap or touch r: end >= r.start and start <= r.end.
        let lo = ranges.partition_point(|x| x.end < r.start);
        let hi = ranges.partition_point(|x| x.start <= r.end);
        let merged = if lo < hi {
            PhysRange::new(r.start.min(ranges[lo].start), r.end.max(ranges[hi - 1].end))
        } else {
            r
        };
        self.splice(lo, hi, &[merged])
    }

    /// Removes the addresses of `r`. A range that contains `r` strictly inside is split in
    /// two, which fails (leaving the set unchanged) if the set is full.
    pub fn remove(&mut self, r: PhysRange) -> Result<(), CapacityError> {
        if r.is_empty() {
            return Ok(());
        }
        let ranges = self.as_slice();
        // ranges[lo..hi] are those that overlap r: end > r.start and start < r.end.
        let lo = ranges.partition_point(|x| x.end <= r.start);
        let hi = ranges.partition_point(|x| x.start < r.end);
        if lo == hi {
            return Ok(());
        }
        let mut pieces = [PhysRange::EMPTY; 2];
        let mut n = 0;
        if ranges[lo].start < r.start {
            pieces[n] = PhysRange::new(ranges[lo].start, r.start);
            n += 1;
        }
        if ranges[hi - 1].end > r.end {
            pieces[n] = PhysRange::new(r.end, ranges[hi - 1].end);
            n += 1;
        }
        self.splice(lo, hi, &pieces[..n])
    }

    /// Total bytes in the set.
    pub fn total(&self) -> u64 {
        // Disjoint sub-ranges of [0, 2^64): the sum is below 2^64.
        self.iter().map(|r| r.len()).sum()
    }

    /// The longest range (the lowest one among equals), or `None` if the set is empty.
    pub fn largest(&self) -> Option<PhysRange> {
        self.iter()
            .fold(None, |best: Option<PhysRange>, r| match best {
                Some(b) if b.len() >= r.len() => Some(b),
                _ => Some(r),
            })
    }

    /// Carves `size` bytes aligned to `align` out of the lowest range that can hold them,
    /// removes them from the set and returns them. `None` if `size == 0`, if no range can hold
    /// the block, or if every placement that fits would need a split while the set is full.
    ///
    /// In each range the lowest aligned placement is tried first; if that would split the
    /// range and the set is full, the highest aligned placement is tried, which needs no
    /// split when it ends exactly at the range's end.
    ///
    /// # Panics
    /// If `align` is not a power of two.
    pub fn take(&mut self, size: u64, align: u64) -> Option<PhysRange> {
        assert!(align.is_power_of_two(), "alignment must be a power of two");
        if size == 0 {
            return None;
        }
        for i in 0..self.len {
            let r = self.ranges[i];
            let Some(low) = align_up(r.start, align).and_then(|s| PhysRange::with_len(s, size))
            else {
                continue;
            };
            if low.end > r.end {
                continue;
            }
            if self.remove(low).is_ok() {
                return Some(low);
            }
            // Full, and `low` sits strictly inside `r`: try the top of `r` instead.
            let top_start = (r.end - size) & !(align - 1);
            let top = PhysRange::new(top_start, top_start + size);
            if top.end == r.end && self.remove(top).is_ok() {
                return Some(top);
            }
        }
        None
    }

    /// Replaces `ranges[lo..hi]` with `new` (at most two ranges), keeping the rest in place.
    /// The caller guarantees the result still satisfies the type invariant.
    fn splice(&mut self, lo: usize, hi: usize, new: &[PhysRange]) -> Result<(), CapacityError> {
        let new_len = self.len - (hi - lo) + new.len();
        if new_len > N {
            return Err(CapacityError);
        }
        // Move the tail [hi, len) to start at lo + new.len(), then fill the gap.
        self.ranges.copy_within(hi..self.len, lo + new.len());
        self.ranges[lo..lo + new.len()].copy_from_slice(new);
        self.len = new_len;
        debug_assert!(self.invariant_holds());
        Ok(())
    }

    /// The type invariant, for debug assertions and tests.
    fn invariant_holds(&self) -> bool {
        let ranges = self.as_slice();
        ranges.iter().all(|r| !r.is_empty()) && ranges.windows(2).all(|w| w[0].end < w[1].start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn r(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    fn ranges<const N: usize>(set: &RangeSet<N>) -> Vec<(u64, u64)> {
        set.iter().map(|x| (x.start, x.end)).collect()
    }

    #[test]
    fn phys_range_basics() {
        let a = r(0x1000, 0x3000);
        assert_eq!(a.len(), 0x2000);
        assert!(!a.is_empty());
        assert!(r(5, 5).is_empty() && r(6, 5).is_empty());
        assert_eq!(r(6, 5).len(), 0);
        assert!(a.contains(0x1000) && a.contains(0x2fff) && !a.contains(0x3000));
        assert!(!a.contains(0xfff));
        assert!(a.overlaps(&r(0x2fff, 0x4000)));
        assert!(
            !a.overlaps(&r(0x3000, 0x4000)),
            "adjacent is not overlapping"
        );
        assert!(!a.overlaps(&r(0x2000, 0x2000)), "empty overlaps nothing");
        assert_eq!(a.intersection(&r(0x2000, 0x9000)), Some(r(0x2000, 0x3000)));
        assert_eq!(a.intersection(&r(0x3000, 0x9000)), None);
        assert_eq!(PhysRange::with_len(0x1000, 0x2000), Some(a));
        assert_eq!(PhysRange::with_len(u64::MAX, 2), None);
    }

    #[test]
    fn align_inward() {
        assert_eq!(
            r(0x1001, 0x5fff).align_inward(0x1000),
            Some(r(0x2000, 0x5000))
        );
        assert_eq!(
            r(0x1000, 0x5000).align_inward(0x1000),
            Some(r(0x1000, 0x5000))
        );
        assert_eq!(r(0x1001, 0x1fff).align_inward(0x1000), None);
        assert_eq!(r(0x1001, 0x2fff).align_inward(0x1000), None);
        assert_eq!(
            r(0x4000_0001, 0x8000_0000).align_inward(0x20_0000),
            Some(r(0x4020_0000, 0x8000_0000))
        );
        assert_eq!(
            r(u64::MAX - 5, u64::MAX).align_inward(0x1000),
            None,
            "no overflow"
        );
        assert_eq!(r(3, 9).align_inward(1), Some(r(3, 9)));
    }

    #[test]
    #[should_panic]
    fn align_inward_needs_power_of_two() {
        let _ = r(0, 100).align_inward(3);
    }

    #[test]
    fn add_merges_overlapping_and_adjacent() {
        let mut s = RangeSet::<8>::new();
        s.add(r(10, 20)).unwrap();
        s.add(r(30, 40)).unwrap();
        s.add(r(0, 5)).unwrap();
        assert_eq!(ranges(&s), [(0, 5), (10, 20), (30, 40)]);
        s.add(r(20, 25)).unwrap(); // adjacent on the right of [10,20)
        assert_eq!(ranges(&s), [(0, 5), (10, 25), (30, 40)]);
        s.add(r(5, 10)).unwrap(); // fills the gap exactly
        assert_eq!(ranges(&s), [(0, 25), (30, 40)]);
        s.add(r(22, 35)).unwrap(); // overlaps both
        assert_eq!(ranges(&s), [(0, 40)]);
        s.add(r(3, 7)).unwrap(); // inside
        s.add(r(9, 9)).unwrap(); // empty
        assert_eq!(ranges(&s), [(0, 40)]);
        s.add(r(50, 60)).unwrap();
        s.add(r(45, 100)).unwrap(); // swallows [50,60)
        assert_eq!(ranges(&s), [(0, 40), (45, 100)]);
        assert_eq!(s.total(), 95);
        assert!(s.contains(0) && s.contains(39) && !s.contains(40) && s.contains(99));
        assert!(!s.contains(100));
    }

    #[test]
    fn remove_trims_and_splits() {
        let mut s = RangeSet::<8>::new();
        s.add(r(0x4000_0000, 0x8000_0000)).unwrap();
        // Kernel image in the middle: split.
        s.remove(r(0x4008_0000, 0x4100_0000)).unwrap();
        // DTB at the very end.
        s.remove(r(0x7fff_0000, 0x8000_0000)).unwrap();
        // Something entirely outside.
        s.remove(r(0x1000, 0x2000)).unwrap();
        assert_eq!(
            ranges(&s),
            [(0x4000_0000, 0x4008_0000), (0x4100_0000, 0x7fff_0000)]
        );
        // Across a gap, trimming both sides.
        s.remove(r(0x4007_0000, 0x4200_0000)).unwrap();
        assert_eq!(
            ranges(&s),
            [(0x4000_0000, 0x4007_0000), (0x4200_0000, 0x7fff_0000)]
        );
        // Covering everything.
        s.remove(r(0, u64::MAX)).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.total(), 0);
        assert_eq!(s.largest(), None);
    }

    #[test]
    fn capacity_errors_leave_the_set_unchanged() {
        let mut s = RangeSet::<2>::new();
        s.add(r(0, 10)).unwrap();
        s.add(r(20, 30)).unwrap();
        let before = s.clone();
        assert_eq!(s.add(r(40, 50)), Err(CapacityError));
        assert_eq!(s, before);
        assert_eq!(s.remove(r(2, 4)), Err(CapacityError));
        assert_eq!(s, before);
        // Merging and trimming need no room.
        s.add(r(10, 20)).unwrap();
        assert_eq!(ranges(&s), [(0, 30)]);
        s.remove(r(0, 5)).unwrap();
        s.remove(r(25, 30)).unwrap();
        s.remove(r(10, 12)).unwrap();
        assert_eq!(ranges(&s), [(5, 10), (12, 25)]);
        assert!(CapacityError.to_string().contains("capacity"));
    }

    #[test]
    fn largest_prefers_the_lowest_among_equals() {
        let mut s = RangeSet::<4>::new();
        s.add(r(0, 10)).unwrap();
        s.add(r(20, 40)).unwrap();
        s.add(r(50, 70)).unwrap();
        s.add(r(80, 85)).unwrap();
        assert_eq!(s.largest(), Some(r(20, 40)));
    }

    #[test]
    fn take_carves_aligned_blocks_from_the_lowest_fit() {
        let mut s = RangeSet::<4>::new();
        s.add(r(0x1000, 0x3000)).unwrap();
        s.add(r(0x10_1000, 0x40_0000)).unwrap();
        // Too big for the first range: comes from the second, aligned up.
        assert_eq!(s.take(0x10_0000, 0x10_0000), Some(r(0x20_0000, 0x30_0000)));
        assert_eq!(
            ranges(&s),
            [
                (0x1000, 0x3000),
                (0x10_1000, 0x20_0000),
                (0x30_0000, 0x40_0000)
            ]
        );
        // Fits the first range.
        assert_eq!(s.take(0x1000, 0x1000), Some(r(0x1000, 0x2000)));
        assert_eq!(s.take(0x1000, 0x1000), Some(r(0x2000, 0x3000)));
        assert_eq!(ranges(&s), [(0x10_1000, 0x20_0000), (0x30_0000, 0x40_0000)]);
        // Nothing fits.
        assert_eq!(s.take(0x20_0000, 0x1000), None);
        assert_eq!(s.take(0, 0x1000), None);
        // Exactly one whole range.
        assert_eq!(s.take(0x10_0000, 0x10_0000), Some(r(0x30_0000, 0x40_0000)));
        assert_eq!(ranges(&s), [(0x10_1000, 0x20_0000)]);
        assert_eq!(s.total(), 0xf_f000);
    }

    #[test]
    fn take_avoids_a_split_when_full() {
        let mut s = RangeSet::<2>::new();
        s.add(r(1, 100)).unwrap();
        s.add(r(200, 300)).unwrap();
        // Lowest aligned placement in [1,100) is [16,32): would split; top is [80,96), which
        // does not end at 100: split too. [200,300): lowest [208,224) splits, top [272,288)
        // splits. Nothing possible without room.
        assert_eq!(s.take(16, 16), None);
        // Ending at the top works: [1,100) -> top-aligned 4-byte block [96,100).
        assert_eq!(s.take(4, 4), Some(r(96, 100)));
        assert_eq!(ranges(&s), [(1, 96), (200, 300)]);
        // In [1,96): lowest [8,16) splits, top [88,96) ends at 96: taken.
        assert_eq!(s.take(8, 8), Some(r(88, 96)));
        // In [1,88): lowest [8,58) and top [32,82) split; [200,300) gives its bottom.
        assert_eq!(s.take(50, 8), Some(r(200, 250)));
        assert_eq!(ranges(&s), [(1, 88), (250, 300)]);
    }

    #[test]
    #[should_panic]
    fn take_needs_power_of_two() {
        let mut s = RangeSet::<1>::new();
        s.add(r(0, 100)).unwrap();
        let _ = s.take(4, 6);
    }

    use crate::test_rng::Rng;

    /// The universe of the model test: addresses 0..128, one bit each.
    const BITS: u64 = 128;

    fn mask(x: PhysRange) -> u128 {
        (x.start..x.end.min(BITS)).fold(0, |m, i| m | 1u128 << i)
    }

    /// The maximal runs of set bits: the unique merged representation.
    fn runs(bits: u128) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < BITS {
            if bits >> i & 1 == 1 {
                let start = i;
                while i < BITS && bits >> i & 1 == 1 {
                    i += 1;
                }
                out.push((start, i));
            } else {
                i += 1;
            }
        }
        out
    }

    fn random_range(rng: &mut Rng) -> PhysRange {
        let start = rng.below(BITS + 4);
        let len = match rng.below(4) {
            0 => 0,
            1 => 1,
            2 => rng.below(8),
            _ => rng.below(40),
        };
        r(start, (start + len).min(BITS))
    }

    /// Model: add/remove/take against a bitmap; with capacity `N` small enough to be hit, a
    /// failed operation must leave the set unchanged and must fail only when the model says
    /// the result needs more than `N` ranges.
    fn model_test<const N: usize>(seed: u64, steps: usize) {
        let mut rng = Rng(seed);
        let mut set = RangeSet::<N>::new();
        let mut model: u128 = 0;
        let (mut errors, mut takes) = (0, 0);
        for _ in 0..steps {
            let before = set.clone();
            match rng.below(10) {
                0..=3 => {
                    let x = random_range(&mut rng);
                    let want = model | mask(x);
                    match set.add(x) {
                        Ok(()) => model = want,
                        Err(CapacityError) => {
                            assert!(runs(want).len() > N);
                            assert_eq!(set, before);
                            errors += 1;
                        }
                    }
                }
                4..=7 => {
                    let x = random_range(&mut rng);
                    let want = model & !mask(x);
                    match set.remove(x) {
                        Ok(()) => model = want,
                        Err(CapacityError) => {
                            assert!(runs(want).len() > N);
                            assert_eq!(set, before);
                            errors += 1;
                        }
                    }
                }
                _ => {
                    let size = 1 + rng.below(6);
                    let align = 1 << rng.below(4);
                    // The lowest aligned placement in the model.
                    let lowest = runs(model).into_iter().find_map(|(s, e)| {
                        let a = s.next_multiple_of(align);
                        (a + size <= e).then_some(r(a, a + size))
                    });
                    match set.take(size, align) {
                        Some(t) => {
                            // Aligned, the right size, entirely free, and now removed.
                            assert_eq!((t.len(), t.start % align), (size, 0));
                            assert_eq!(model & mask(t), mask(t), "{t} was not free");
                            if N >= 64 {
                                assert_eq!(Some(t), lowest);
                            }
                            model &= !mask(t);
                            takes += 1;
                        }
                        None => {
                            assert_eq!(set, before);
                            // Only capacity may stop the lowest placement.
                            if let Some(l) = lowest {
                                assert!(runs(model & !mask(l)).len() > N);
                            }
                        }
                    }
                }
            }
            assert!(set.invariant_holds());
            assert_eq!(ranges(&set), runs(model));
            assert_eq!(set.total(), u64::from(model.count_ones()));
            let longest = runs(model).into_iter().map(|(s, e)| e - s).max();
            assert_eq!(set.largest().map(|x| x.len()), longest);
            let probe = rng.below(BITS);
            assert_eq!(set.contains(probe), model >> probe & 1 == 1);
        }
        if N < 64 {
            assert!(errors > 0, "capacity never hit: the test is too weak");
        }
        assert!(takes > 0);
    }

    #[test]
    fn model_against_a_bitmap() {
        // 128 addresses have at most 64 runs: capacity 64 never fails.
        for seed in 1..=20u64 {
            model_test::<64>(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 2_000);
        }
    }

    #[test]
    fn model_against_a_bitmap_with_small_capacity() {
        for seed in 1..=20u64 {
            model_test::<3>(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1, 2_000);
        }
    }
}
