//! Terms: the values processes exchange (spawn arguments and exit reasons now, messages next).
//!
//! - [`atom`]: atoms, interned in one kernel-wide table, and the predefined ones the kernel
//!   uses (`atom::NORMAL`, `atom::EXIT`, ...);
//! - [`term`]: [`Term`], an immutable Erlang value whose boxed part is one position
//!   independent block, so that copying it into another process's heap is one allocation and
//!   one `memcpy`; [`View`] and [`TermRef`] to read it, and the [`term!`](crate::term) macro
//!   to write it.
//!
//! Both are portable (no `asm!`, no MMIO) and unit-tested on the host.

pub mod atom;
#[cfg(target_os = "none")]
pub mod envelope;
pub mod mailbox;
pub mod term;

pub use atom::Atom;
pub use term::{AllocError, Global, Reference, Seq, Term, TermAlloc, TermRef, View};
