//! Memory: the frame allocator hands out every free frame exactly once, reports exhaustion
//! as an error and takes everything back; the kernel heap survives a stress of mixed sizes,
//! returns to its baseline, and reports exhaustion as an error.
use alloc::boxed::Box;
use alloc::vec::Vec;
use kernel::mem::frames::{FRAMES, OutOfFrames};
use kernel::mem::heap::KERNEL_HEAP;
use kernel::test_cases;
use kernel::testing::Suite;

extern crate alloc;

pub const SUITE: Suite = Suite {
    name: "memory",
    cases: test_cases![
        frames_are_distinct_usable_ram,
        allocate_every_frame_free_them_allocate_again,
        heap_stress_returns_to_baseline,
        heap_exhaustion_is_an_error,
    ],
};

fn frames_are_distinct_usable_ram() {
    let a = FRAMES.allocate(1).unwrap();
    let b = FRAMES.allocate(1).unwrap();
    assert_ne!(a, b);
    for (frame, pattern) in [(a, 0x5a5a_5a5a_5a5a_5a5au64), (b, 0xa5a5_a5a5_a5a5_a5a5)] {
        let words = frame as *mut u64;
        for i in 0..512 {
            // SAFETY: we own this frame, mapped read-write.
            unsafe { words.add(i).write_volatile(pattern ^ i as u64) };
        }
    }
    for (frame, pattern) in [(a, 0x5a5a_5a5a_5a5a_5a5au64), (b, 0xa5a5_a5a5_a5a5_a5a5)] {
        let words = frame as *const u64;
        for i in 0..512 {
            // SAFETY: as above.
            assert_eq!(unsafe { words.add(i).read_volatile() }, pattern ^ i as u64);
        }
    }
    FRAMES.free(a, 1);
    FRAMES.free(b, 1);
}

/// Take every free frame (in 64-frame blocks, then single frames), check exhaustion is an
/// error, give them all back, and take them all again.
fn allocate_every_frame_free_them_allocate_again() {
    let baseline = FRAMES.stats();
    assert!(baseline.free_frames > 1000, "{baseline:?}");
    let mut blocks: Vec<(u64, usize)> = Vec::new();
    for _round in 0..2 {
        for count in [64, 1] {
            while let Ok(address) = FRAMES.allocate(count) {
                blocks.push((address, count));
            }
        }
        assert_eq!(FRAMES.allocate(1), Err(OutOfFrames { requested: 1 }));
        assert_eq!(FRAMES.stats().free_frames, 0);
        let taken: usize = blocks.iter().map(|b| b.1).sum();
        assert_eq!(taken, baseline.free_frames, "every free frame handed out");
        let mut starts: Vec<u64> = blocks.iter().map(|b| b.0).collect();
        starts.sort_unstable();
        starts.dedup();
        assert_eq!(starts.len(), blocks.len(), "no block handed out twice");
        for (address, count) in blocks.drain(..) {
            FRAMES.free(address, count);
        }
        assert_eq!(FRAMES.stats(), baseline);
    }
}

fn heap_stress_returns_to_baseline() {
    let baseline = KERNEL_HEAP.stats().used;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut live: Vec<(Box<[u8]>, u8)> = Vec::new();
    for step in 0..20_000u32 {
        let r = next();
        if live.len() < 200 && r % 3 != 0 {
            let size = 1 + (r >> 8) as usize % 4096;
            let tag = step as u8;
            live.push((alloc::vec![tag; size].into_boxed_slice(), tag));
        } else if !live.is_empty() {
            let (block, tag) = live.swap_remove((r >> 16) as usize % live.len());
            assert!(block.iter().all(|&b| b == tag), "heap block corrupted");
        }
    }
    for (block, tag) in live.drain(..) {
        assert!(block.iter().all(|&b| b == tag));
    }
    drop(live);
    assert_eq!(
        KERNEL_HEAP.stats().used,
        baseline,
        "heap back to its baseline"
    );
}

fn heap_exhaustion_is_an_error() {
    let stats = KERNEL_HEAP.stats();
    let mut too_big: Vec<u8> = Vec::new();
    assert!(
        too_big.try_reserve_exact(stats.size + 1).is_err(),
        "more than the heap holds"
    );
    let mut fits: Vec<u8> = Vec::new();
    fits.try_reserve_exact(1 << 20).expect("1 MiB fits");
    fits.resize(1 << 20, 7);
    assert_eq!(fits.iter().map(|&b| b as usize).sum::<usize>(), 7 << 20);
}
