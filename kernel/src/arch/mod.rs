//! Architecture support. Only AArch64 exists; the indirection keeps machine code in one place
//! behind small interfaces, so the rest of the kernel reads `arch::cpu::core_index()` and never
//! touches a register itself.
pub mod aarch64;
pub use aarch64::*;
