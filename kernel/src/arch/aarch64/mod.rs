//! AArch64 machine code: entry glue, exception vectors and reports, MMU control, the generic
//! timer, PSCI, cache maintenance and semihosting. Thin wrappers only; policy lives elsewhere.
pub mod boot;
pub mod cache;
pub mod context;
pub mod cpu;
pub mod exception;
pub mod mmu;
pub mod pmu;
pub mod psci;
pub mod semihosting;
pub mod timer;
