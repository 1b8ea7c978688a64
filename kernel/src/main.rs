//! The demo kernel that `cargo xtask qemu` boots: all cores come up, then once a second the
//! boot core prints a line per core (MPIDR, timer ticks, wake IPIs) after ringing every other
//! core's doorbell. With `demo=timed` on the command line (xtask adds it when stdin is not a
//! terminal) it ends by itself after a few rounds; otherwise it reads single-key commands
//! from the UART.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod demo {
    use kernel::arch::cpu;
    use kernel::{boot, println, smp, time};

    kernel::entry!(main);

    const TIMED_ROUNDS: u32 = 3;

    fn main() -> ! {
        let timed = boot::info().args.get("demo") == Some("timed");
        if timed {
            println!("demo: {TIMED_ROUNDS} one-second rounds, then exit");
        } else {
            help();
        }
        let mut round = 0;
        loop {
            wait_one_second(!timed);
            round += 1;
            report(round);
            if timed && round == TIMED_ROUNDS {
                println!(
                    "demo: done after {round} rounds; {} cores online",
                    smp::online_count()
                );
                boot::exit(0);
            }
        }
    }

    fn help() {
        println!("demo: a line per core every second. Keys: t = report now, q = quit, h = help");
    }

    /// Sleep in WFI for a second of ticks; in interactive mode, answer keys meanwhile.
    fn wait_one_second(interactive: bool) {
        let end = time::now_ns() + 1_000_000_000;
        while time::now_ns() < end {
            if interactive {
                match kernel::console::read_byte() {
                    Some(b't') => report(0),
                    Some(b'q') => {
                        println!("demo: quit");
                        boot::exit(0)
                    }
                    Some(b'h') => help(),
                    _ => {}
                }
            }
            cpu::wait_for_interrupt();
        }
    }

    fn report(round: u32) {
        for core in smp::online_cores().filter(|&c| c != 0) {
            smp::ring_doorbell(core);
        }
        println!(
            "--- round {round}: {} cores online, tick {} Hz",
            smp::online_count(),
            time::tick_hz()
        );
        for core in smp::online_cores() {
            println!(
                "core {core}  MPIDR {:#07x}  ticks {:>6}  wake IPIs {:>3}",
                smp::mpidr_of(core),
                time::ticks(core),
                smp::wake_ipis(core)
            );
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs on aarch64-unknown-none: use `cargo xtask qemu`");
    std::process::exit(1);
}
