//! Time: the monotonic clock and the per-core tick (`tick`, target only), and the per-core
//! timer wheel behind sleeps, timeouts and `send_after` (`wheel`, portable).

#[cfg(target_os = "none")]
mod tick;
pub mod wheel;

#[cfg(target_os = "none")]
pub use tick::*;
