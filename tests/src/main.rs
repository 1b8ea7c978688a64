//! The on-target test kernel: the same kernel library as the demo, with `main` replaced by a
//! suite runner. `cargo xtask test` boots it once per suite and machine configuration with
//! `suite=<name>` (and `skip=<n>` to resume after a case that crashed) on the command line;
//! `suite=list` prints the suites; `suite=bench bench=<mode>` runs the benchmarks instead
//! (`cargo xtask bench`). See kernel/src/testing.rs for the output protocol.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod bench;
#[cfg(target_os = "none")]
mod suites;

#[cfg(target_os = "none")]
mod target {
    use super::{bench, suites};
    use kernel::{boot, println, testing};

    kernel::entry!(main);

    fn main() -> ! {
        let args = boot::info().args;
        let skip = args.number("skip").ok().flatten().unwrap_or(0) as usize;
        match args.get("suite") {
            Some("list") => {
                for suite in suites::ALL {
                    println!("suite {}", suite.name);
                }
                boot::exit(0)
            }
            Some("kernel_fault") => suites::kernel_fault(),
            Some("bench") => bench::run(args.get("bench")),
            Some(name) => match suites::ALL
                .iter()
                .chain(suites::HIDDEN)
                .find(|s| s.name == name)
            {
                Some(suite) => testing::run_suite(suite, skip),
                None => {
                    println!("ktest: no suite named {name:?}; try suite=list");
                    boot::exit(1)
                }
            },
            None => {
                println!("ktest: give suite=<name> on the command line (suite=list lists them)");
                boot::exit(1)
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("ktest runs on aarch64-unknown-none under QEMU: use `cargo xtask test`");
    std::process::exit(1);
}
