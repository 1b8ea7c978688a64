//! Terms and messages: the values processes exchange, and how they travel.
//!
//! - [`atom`]: atoms, interned in one kernel-wide table, and the predefined ones the kernel
//!   uses (`atom::NORMAL`, `atom::EXIT`, ...);
//! - [`term`]: [`Term`], an immutable Erlang value whose boxed part is one position
//!   independent block, so that copying it into another process's heap is one allocation and
//!   one `memcpy`; [`View`] and [`TermRef`] to read it, and the [`term!`](crate::term) macro
//!   to write it.
//!
//! - [`mailbox`]: the per-process mailbox (a lock-free multi-producer inbox, the owner's
//!   queue with selective receive and a save pointer), model-checked with loom;
//! - `envelope` (target only): what a send puts in a mailbox, in blocks from the message slab.
//!
//! All but `envelope` are portable (no `asm!`, no MMIO) and unit-tested on the host.

pub mod atom;
#[cfg(target_os = "none")]
pub mod envelope;
pub mod mailbox;
pub mod term;

pub use atom::Atom;
pub use term::{AllocError, Global, Reference, Seq, Term, TermAlloc, TermRef, View};
