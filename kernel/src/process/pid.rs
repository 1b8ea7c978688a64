//! Process identifiers: an index into the process table and the generation of that slot.
//!
//! The generation changes every time a slot is reused, so a stale pid (held after its process
//! exited) never reaches the slot's next occupant: lookups compare both halves.

use core::fmt;

/// A process identifier. Printed the Erlang way, `<0.Index.Generation>` (node 0: this kernel).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    index: u32,
    generation: u32,
}

impl Pid {
    pub const fn new(index: u32, generation: u32) -> Self {
        Self { index, generation }
    }

    /// The slot in the process table.
    pub const fn index(self) -> u32 {
        self.index
    }

    /// How many times the slot had been reused when this process was spawned.
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// Both halves in one word (generation high, index low), e.g. for an atomic.
    pub const fn to_bits(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }

    pub const fn from_bits(bits: u64) -> Self {
        Self {
            index: bits as u32,
            generation: (bits >> 32) as u32,
        }
    }
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<0.{}.{}>", self.index, self.generation)
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_erlang_and_round_trips_through_bits() {
        let pid = Pid::new(42, 3);
        assert_eq!(std::format!("{pid}"), "<0.42.3>");
        assert_eq!(Pid::from_bits(pid.to_bits()), pid);
        assert_ne!(
            Pid::new(42, 4),
            pid,
            "a new generation is a different process"
        );
    }
}
