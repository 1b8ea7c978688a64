//! Boot: every core online with the right MPIDR, the entry exception level, the interrupt
//! controller the device tree names, the load address and relocation, the device tree facts.
use super::expected;
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::arch::aarch64::boot::image_layout;
use kernel::arch::cpu;
use kernel::devicetree::GicInfo;
use kernel::platform::gic;
use kernel::testing::Suite;
use kernel::{boot, smp, test_cases};

pub const SUITE: Suite = Suite {
    name: "boot",
    cases: test_cases![
        every_listed_core_is_online,
        each_core_reports_its_device_tree_mpidr,
        entered_at_the_expected_level_and_runs_at_el1,
        interrupt_controller_matches_device_tree,
        runs_at_its_load_address_with_relocations_applied,
        device_tree_facts_reach_the_kernel,
    ],
};

fn every_listed_core_is_online() {
    let board = &boot::info().board;
    assert_eq!(smp::present_count(), board.cpus.len());
    assert_eq!(
        smp::online_count(),
        board.cpus.len(),
        "cores online vs listed"
    );
    if let Some(n) = expected("expect_cpus") {
        assert_eq!(board.cpus.len() as u64, n, "cpus in the device tree");
    }
}

static SEEN_MPIDR: AtomicU64 = AtomicU64::new(u64::MAX);

fn each_core_reports_its_device_tree_mpidr() {
    let board = &boot::info().board;
    let mut seen = heapless::Vec::<u64, { kernel::MAX_CORES }>::new();
    for core in smp::online_cores() {
        smp::run_on(
            core,
            |_| SEEN_MPIDR.store(cpu::mpidr(), Ordering::Release),
            0,
        )
        .unwrap();
        let mpidr = SEEN_MPIDR.load(Ordering::Acquire);
        assert_eq!(
            mpidr,
            smp::mpidr_of(core) & cpu::AFFINITY_MASK,
            "core {core}"
        );
        assert!(
            board.cpus.iter().any(|c| c.mpidr == mpidr),
            "core {core}: {mpidr:#x} not in DTB"
        );
        assert!(
            !seen.contains(&mpidr),
            "core {core}: MPIDR {mpidr:#x} reported twice"
        );
        seen.push(mpidr).unwrap();
    }
    assert_eq!(seen.len(), board.cpus.len());
}

fn entered_at_the_expected_level_and_runs_at_el1() {
    let info = boot::info();
    assert_eq!(cpu::current_el(), 1);
    if let Some(el) = expected("expect_el") {
        assert_eq!(info.entry_el as u64, el, "entry exception level");
    }
    let conduit = info.board.psci.expect("QEMU virt has /psci");
    // QEMU: entered at EL2 => the PSCI firmware is at EL3 (smc); at EL1 => hvc.
    let expect_smc = info.entry_el == 2;
    assert_eq!(conduit == kernel::devicetree::PsciConduit::Smc, expect_smc);
}

fn interrupt_controller_matches_device_tree() {
    let board = &boot::info().board;
    let version = match board.gic {
        GicInfo::V2 { .. } => 2,
        GicInfo::V3 { .. } => 3,
    };
    assert_eq!(gic::version(), version);
    if let Some(v) = expected("expect_gic") {
        assert_eq!(version as u64, v);
    }
}

/// Initialised with an absolute address: correct only if the relocations were applied.
static RELOCATED: &str = "relocated at boot";
static FUNCTION: fn() = runs_at_its_load_address_with_relocations_applied;

fn runs_at_its_load_address_with_relocations_applied() {
    let info = boot::info();
    let image = image_layout();
    assert_eq!(
        image.start, info.load_address,
        "image start vs entry.s's load address"
    );
    match expected("expect_load") {
        Some(address) => assert_eq!(info.load_address as u64, address),
        None => assert_eq!(
            info.load_address, 0x4020_0000,
            "QEMU loads text_offset 0 at RAM + 2 MiB"
        ),
    }
    let text = RELOCATED.as_ptr() as usize;
    assert!(
        (image.start..image.end).contains(&text),
        "string pointer {text:#x} outside image"
    );
    assert_eq!(RELOCATED, "relocated at boot");
    let f = FUNCTION as usize;
    assert!(
        (image.start..image.text_end).contains(&f),
        "fn pointer {f:#x} outside text"
    );
    assert_eq!(
        f,
        runs_at_its_load_address_with_relocations_applied as *const () as usize
    );
}

fn device_tree_facts_reach_the_kernel() {
    let info = boot::info();
    let board = &info.board;
    let uart = board.uart.expect("QEMU virt has a PL011");
    assert_eq!(
        kernel::console::uart_base(),
        Some(uart.base as usize),
        "console on the DTB's UART"
    );
    assert!(
        board.stdout_path.contains("pl011"),
        "stdout-path {:?}",
        board.stdout_path
    );
    assert_eq!(board.timer.virtual_, 27, "virtual timer PPI");
    assert_eq!(kernel::time::timer_intid(), 27);
    let ram: u64 = board.memory.iter().map(|r| r.size).sum();
    assert!(ram >= 128 << 20, "RAM {ram:#x}");
    assert!(
        board
            .memory
            .iter()
            .any(|r| (r.base..r.end()).contains(&(info.load_address as u64)))
    );
    assert!(
        info.args.get("suite").is_some(),
        "bootargs {:?}",
        info.args.as_str()
    );
    assert!(info.dtb.start != 0 && info.dtb.end > info.dtb.start);
}
