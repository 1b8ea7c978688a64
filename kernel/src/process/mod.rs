//! Processes: lightweight, isolated, native Rust. Identifiers and the process table are
//! portable; on target, `runtime` holds the record, spawn, exit and parking, `stack` the
//! demand-grown stacks, `fault` what a crash becomes, `signals` how processes reach each
//! other (messages, exit signals, links, monitors), `messaging` the API over it, `timers`
//! the per-core timer wheels, `registry` the names.

pub mod pid;
pub mod table;

#[cfg(target_os = "none")]
pub mod fault;
#[cfg(target_os = "none")]
pub mod messaging;
#[cfg(target_os = "none")]
pub mod registry;
#[cfg(target_os = "none")]
pub mod runtime;
#[cfg(target_os = "none")]
pub mod signals;
#[cfg(target_os = "none")]
pub mod stack;
#[cfg(target_os = "none")]
pub mod supervisor;
#[cfg(target_os = "none")]
pub mod timers;

#[cfg(target_os = "none")]
pub use messaging::{
    KERNEL_PID, Timeout, apply_pending_signals, demonitor, exit_signal, link, message_queue_len,
    monitor, receive, receive_match, send, send_named, send_ref, sleep, spawn_link, trap_exit,
    unlink,
};
pub use pid::Pid;
#[cfg(target_os = "none")]
pub use registry::{RegistryError, register, unregister, whereis};
#[cfg(target_os = "none")]
pub use runtime::{
    ExitReason, Info, Process, SpawnError, SpawnOpts, State, count, current_heap, current_pid,
    exit, exited_total, free_pages, heap_exhausted, info, is_alive, kill_current_from_handler,
    park, pids, self_heap_bytes, self_pid, self_reductions, set_exit_hook, spawn, spawn_opt,
    unpark, yield_now,
};
#[cfg(target_os = "none")]
pub use timers::{TimerRef, cancel_timer, send_after};
