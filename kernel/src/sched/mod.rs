//! Scheduling: per-core run queues, priorities and reductions (portable, `run_queue`), and on
//! target the per-core scheduler that switches between processes (`scheduler`).

pub mod run_queue;
#[cfg(target_os = "none")]
pub mod scheduler;

pub use run_queue::{Budget, Priority};
#[cfg(target_os = "none")]
pub use scheduler::{KernelCall, idle, run_until, snapshot, yield_now};
