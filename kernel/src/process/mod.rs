//! Processes: lightweight, isolated, native Rust. Identifiers and the process table are
//! portable; on target, `runtime` holds the record, spawn, exit and parking, `stack` the
//! demand-grown stacks and `fault` what a crash becomes.

pub mod pid;
pub mod table;

#[cfg(target_os = "none")]
pub mod fault;
#[cfg(target_os = "none")]
pub mod runtime;
#[cfg(target_os = "none")]
pub mod stack;

pub use pid::Pid;
#[cfg(target_os = "none")]
pub use runtime::{
    ExitReason, Process, SpawnError, SpawnOpts, State, count, current_heap, current_pid, exit,
    exited_total, free_pages, heap_exhausted, is_alive, kill_current_from_handler, park,
    self_heap_bytes, self_pid, self_reductions, set_exit_hook, spawn, spawn_opt, unpark, yield_now,
};
