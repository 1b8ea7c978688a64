//! Physical frames (4 KiB pages): a buddy allocator over the RAM nobody else owns.
//!
//! Portable: it manages numbers, never touches the memory itself. Failure is an error value,
//! never a panic: callers decide what running out means for them. Blocks are powers of two
//! frames, naturally aligned; `free` must be given the count `allocate` was given.

use super::PAGE_SIZE;
use super::regions::PhysRange;
use crate::sync::IrqMutex;
use core::fmt;

/// Largest block: 2^(ORDER-1) frames = 4 GiB with 4 KiB frames.
const ORDER: usize = 21;

/// Allocation failed: not enough contiguous free frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfFrames {
    pub requested: usize,
}

impl fmt::Display for OutOfFrames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "out of physical memory ({} contiguous frames requested)",
            self.requested
        )
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameStats {
    pub total_frames: usize,
    pub free_frames: usize,
}

pub struct FrameAllocator {
    inner: IrqMutex<Inner>,
}

struct Inner {
    buddy: buddy_system_allocator::FrameAllocator<ORDER>,
    total: usize,
    allocated: usize,
}

impl FrameAllocator {
    pub const fn new() -> Self {
        Self {
            inner: IrqMutex::new(Inner {
                buddy: buddy_system_allocator::FrameAllocator::new(),
                total: 0,
                allocated: 0,
            }),
        }
    }

    /// Hand the page-aligned part of `range` to the allocator.
    pub fn add(&self, range: PhysRange) {
        if let Some(r) = range.align_inward(PAGE_SIZE as u64) {
            let (first, end) = (
                (r.start / PAGE_SIZE as u64) as usize,
                (r.end / PAGE_SIZE as u64) as usize,
            );
            let mut inner = self.inner.lock();
            inner.buddy.add_frame(first, end);
            inner.total += end - first;
        }
    }

    /// `count` contiguous frames (rounded up to a power of two), aligned to their size.
    /// Returns the physical address of the first.
    pub fn allocate(&self, count: usize) -> Result<u64, OutOfFrames> {
        let mut inner = self.inner.lock();
        match inner.buddy.alloc(count) {
            Some(frame) => {
                inner.allocated += count.next_power_of_two();
                Ok((frame * PAGE_SIZE) as u64)
            }
            None => Err(OutOfFrames { requested: count }),
        }
    }

    /// Give back what `allocate(count)` returned.
    pub fn free(&self, address: u64, count: usize) {
        debug_assert_eq!(address % PAGE_SIZE as u64, 0);
        let mut inner = self.inner.lock();
        inner
            .buddy
            .dealloc((address / PAGE_SIZE as u64) as usize, count);
        inner.allocated -= count.next_power_of_two();
    }

    pub fn stats(&self) -> FrameStats {
        let inner = self.inner.lock();
        FrameStats {
            total_frames: inner.total,
            free_frames: inner.total - inner.allocated,
        }
    }
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::new()
    }
}

/// The kernel's frame allocator, filled by `mem::init`.
pub static FRAMES: FrameAllocator = FrameAllocator::new();

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end: u64) -> PhysRange {
        PhysRange { start, end }
    }

    #[test]
    fn allocate_all_free_all_allocate_again() {
        let frames = FrameAllocator::new();
        frames.add(range(0x4000_0000, 0x4000_0000 + 256 * 4096));
        assert_eq!(
            frames.stats(),
            FrameStats {
                total_frames: 256,
                free_frames: 256
            }
        );
        let mut got: Vec<u64> = (0..256).map(|_| frames.allocate(1).unwrap()).collect();
        assert_eq!(frames.allocate(1), Err(OutOfFrames { requested: 1 }));
        assert_eq!(frames.stats().free_frames, 0);
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 256, "every frame handed out exactly once");
        assert!(
            got.iter()
                .all(|&a| (0x4000_0000..0x4010_0000).contains(&a) && a % 4096 == 0)
        );
        for a in got {
            frames.free(a, 1);
        }
        assert_eq!(frames.stats().free_frames, 256);
        // Fully coalesced again: one block of all 256 frames.
        assert_eq!(frames.allocate(256), Ok(0x4000_0000));
    }

    #[test]
    fn unaligned_ranges_are_trimmed_and_blocks_are_aligned() {
        let frames = FrameAllocator::new();
        frames.add(range(0x1001, 0x1000 + 16 * 4096 + 5));
        assert_eq!(frames.stats().total_frames, 15);
        let block = frames.allocate(4).unwrap();
        assert_eq!(block % (4 * 4096), 0);
        assert_eq!(frames.allocate(64), Err(OutOfFrames { requested: 64 }));
    }
}
