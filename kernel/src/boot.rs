//! The boot sequence in Rust, from `boot/entry.s` to the image's `main`, for the boot core
//! and for each secondary core; and the one way the kernel stops (`exit`, `die`).
//!
//! Boot core, in order (docs/boot.md tells the whole story):
//! 1. vectors; read the DTB header (MMU off: aligned reads only);
//! 2. early map: the image W^X page by page, the DTB read-only, the early UART; MMU on;
//! 3. parse the DTB; switch the console to its UART; logging;
//! 4. map the rest of RAM and the devices; kernel heap and frame allocator;
//! 5. GIC, timer tick, IRQs on; start the secondaries; call the image's `main`.

use crate::arch::aarch64::{boot as arch_boot, cache, exception, mmu, psci, semihosting};
use crate::arch::cpu;
use crate::bootargs::BootArgs;
use crate::devicetree::{self, BoardInfo, DtError, Region};
use crate::mem::page_table::{Access, Attributes, MemoryKind, PageTables, Table, TableAllocator};
use crate::mem::regions::{PhysRange, RangeSet};
use crate::mem::{self, PAGE_SIZE};
use crate::platform::{self, gic, pl011};
use crate::sync::IrqMutex;
use crate::{smp, time};
use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// What the boot core learned, for everyone after it.
pub struct BootInfo {
    pub board: BoardInfo<'static>,
    pub args: BootArgs<'static>,
    /// Where the image runs (it was linked at 0x40200000).
    pub load_address: usize,
    /// The exception level the boot core entered at (2 = came down from EL2).
    pub entry_el: u8,
    pub dtb: PhysRange,
}

static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

pub fn info() -> &'static BootInfo {
    BOOT_INFO
        .get()
        .expect("boot info read before the device tree was parsed")
}

// ---------------------------------------------------------------------------------------
// Page tables for the kernel's identity map.

/// Tables for the kernel's own map come from this pool in .bss (zeroed by entry.s), so the
/// map can be built before any allocator exists. 64 tables cover the image at page
/// granularity, RAM in blocks and the devices, with a wide margin.
const TABLE_POOL_SIZE: usize = 64;
static mut TABLE_POOL: [Table; TABLE_POOL_SIZE] = [const { Table::empty() }; TABLE_POOL_SIZE];

struct PoolAllocator {
    used: usize,
}

impl TableAllocator for PoolAllocator {
    fn allocate_table(&mut self) -> Option<NonNull<Table>> {
        if self.used == TABLE_POOL_SIZE {
            return None;
        }
        // SAFETY: each pool entry is handed out once, zeroed (never used before).
        let table = unsafe { &raw mut TABLE_POOL[self.used] };
        self.used += 1;
        NonNull::new(table)
    }
}

/// The kernel's page tables and their table source; touched by one core at a time.
struct KernelMap {
    tables: PageTables,
    pool: PoolAllocator,
}

// SAFETY: the tables are plain memory reached only through the mutex below.
unsafe impl Send for KernelMap {}

static KERNEL_MAP: IrqMutex<Option<KernelMap>> = IrqMutex::new(None);

// Short names for the map below: text, read-only data, read-write data.
const RX: Attributes = Attributes::TEXT;
const RO: Attributes = Attributes::RODATA;
const RW: Attributes = Attributes::DATA;

impl KernelMap {
    fn map(&mut self, start: usize, end: usize, attrs: Attributes, what: &str) {
        let start = start & !(PAGE_SIZE - 1);
        let end = end.next_multiple_of(PAGE_SIZE);
        if let Err(e) = self.tables.map(
            start as u64,
            start as u64,
            (end - start) as u64,
            attrs,
            &mut self.pool,
        ) {
            die(format_args!(
                "cannot map {what} [{start:#x}, {end:#x}): {e}"
            ));
        }
    }

    /// Map a device's registers, page by page, skipping pages already mapped as a device
    /// (the early UART's page, or devices sharing a page).
    fn map_device(&mut self, region: Region, what: &str) {
        let start = region.base as usize & !(PAGE_SIZE - 1);
        let end = (region.base + region.size) as usize;
        let mut page = start;
        while page < end {
            match self.tables.translate(page as u64) {
                Some(t) if t.attrs.kind == MemoryKind::Device => {}
                Some(_) => die(format_args!(
                    "{what} at {page:#x} overlaps memory mapped as RAM"
                )),
                None => self.map(page, page + PAGE_SIZE, Attributes::DEVICE, what),
            }
            page += PAGE_SIZE;
        }
    }
}

/// The early map: the image by section (text RX, rodata R, data/bss RW, each boot stack RW
/// with its guard page left out), the DTB read-only, and the early console's UART.
fn early_map(dtb: PhysRange) -> KernelMap {
    let mut pool = PoolAllocator { used: 0 };
    let tables = PageTables::new(&mut pool)
        .unwrap_or_else(|e| die(format_args!("cannot create page tables: {e}")));
    let mut map = KernelMap { tables, pool };
    let image = arch_boot::image_layout();
    map.map(image.start, image.text_end, RX, "kernel text");
    map.map(image.text_end, image.rodata_end, RO, "kernel rodata");
    map.map(image.rodata_end, image.data_end, RW, "kernel data");
    for core in 0..crate::MAX_CORES {
        let (_guard, stack) = arch_boot::boot_stack_layout(core);
        map.map(stack.start, stack.end, RW, "boot stack");
    }
    map.map(dtb.start as usize, dtb.end as usize, RO, "device tree");
    map.map_device(
        Region {
            base: pl011::QEMU_VIRT_UART as u64,
            size: 0x1000,
        },
        "early UART",
    );
    map
}

/// Everything else: the RAM nobody else owns read-write (it is exactly what the early map
/// left out, minus reserved regions), and the devices.
fn complete_map(map: &mut KernelMap, board: &BoardInfo, free: &RangeSet<64>) {
    for r in free.iter().filter_map(|r| r.align_inward(PAGE_SIZE as u64)) {
        map.map(r.start as usize, r.end as usize, RW, "RAM");
    }
    if let Some(uart) = board.uart {
        map.map_device(
            Region {
                base: uart.base,
                size: uart.size,
            },
            "UART",
        );
    }
    match board.gic {
        devicetree::GicInfo::V2 {
            distributor,
            cpu_interface,
        } => {
            map.map_device(distributor, "GIC distributor");
            map.map_device(cpu_interface, "GIC CPU interface");
        }
        devicetree::GicInfo::V3 {
            distributor,
            redistributors,
        } => {
            map.map_device(distributor, "GIC distributor");
            map.map_device(redistributors, "GIC redistributors");
        }
    }
    mmu::publish_new_entries();
}

/// RAM nobody else owns: RAM minus the image (with its tables and boot stacks), the DTB and
/// the reserved regions. It gets mapped, then split between the kernel heap and frames.
fn free_memory(board: &BoardInfo, dtb: PhysRange) -> RangeSet<64> {
    let image = arch_boot::image_layout();
    let mut free = RangeSet::<64>::new();
    for r in &board.memory {
        if free
            .add(PhysRange {
                start: r.base,
                end: r.end(),
            })
            .is_err()
        {
            die(format_args!("too many memory ranges in the device tree"));
        }
    }
    let taken = [
        PhysRange {
            start: image.start as u64,
            end: image.end as u64,
        },
        dtb,
    ];
    let reserved = board.reserved.iter().map(|r| PhysRange {
        start: r.base,
        end: r.end(),
    });
    for r in taken.into_iter().chain(reserved) {
        if free.remove(r).is_err() {
            die(format_args!(
                "too many memory fragments while sizing free RAM"
            ));
        }
    }
    free
}

// ---------------------------------------------------------------------------------------
// Entry points, called from boot/entry.s.

/// Boot core: x0 = DTB, x1 = load address, x2 = entry exception level.
#[unsafe(no_mangle)]
extern "C" fn rust_primary_entry(dtb: usize, load_address: usize, entry_el: u64) -> ! {
    cpu::set_core_index(0);
    exception::install_vectors();

    // 1. The DTB header, read with the MMU off.
    // SAFETY: `blob_size` reads the 40-byte header only if `dtb` is non-null and 4-byte
    // aligned; x0 from the loader is the DTB's address or 0.
    let size = unsafe { devicetree::blob_size(dtb as *const u8) }
        .unwrap_or_else(|e| no_device_tree(dtb, e));
    let dtb_range = PhysRange {
        start: dtb as u64,
        end: (dtb + size) as u64,
    };

    // 2. Early map and MMU on. Everything written so far (relocations, .bss, these tables,
    // the stack) went to RAM with the caches off: drop any stale lines first.
    let mut map = early_map(dtb_range);
    let image = arch_boot::image_layout();
    // SAFETY: RAM holds the up-to-date contents of the image (caches were off so far).
    unsafe { cache::invalidate_to_poc(image.start, image.end - image.start) };
    let mmu_config = mmu::configuration(map.tables.root_address());
    // SAFETY: the early map covers the image (this code, its data, this stack) and the DTB.
    unsafe { mmu::enable(&mmu_config) };

    // 3. The device tree.
    // SAFETY: mapped read-only just above, never written, kept reserved for ever.
    let blob: &'static [u8] = unsafe { core::slice::from_raw_parts(dtb as *const u8, size) };
    let board = match devicetree::parse(blob) {
        Ok(board) => board,
        Err(e) => {
            SEMIHOSTING.store(
                semihosting_wanted(bootargs_of_broken_tree(blob)),
                Ordering::Relaxed,
            );
            crate::println!("kernel: the device tree at {dtb:#x} is unusable: {e}");
            exit(2)
        }
    };
    let args = BootArgs::new(board.bootargs);
    SEMIHOSTING.store(semihosting_wanted(args), Ordering::Relaxed);

    let free = free_memory(&board, dtb_range);
    complete_map(&mut map, &board, &free);
    match board.uart {
        // SAFETY: mapped as a device by `complete_map`.
        Some(uart) => unsafe { crate::console::use_pl011(uart.base as usize) },
        None => crate::console::disable(),
    }
    crate::console::init_logging(args.get("log"));
    *KERNEL_MAP.lock() = Some(map);

    // 4. Memory.
    if let Err(e) = mem::init(free) {
        die(format_args!("memory: {e}"));
    }

    BOOT_INFO.call_once(|| BootInfo {
        board,
        args,
        load_address,
        entry_el: entry_el as u8,
        dtb: dtb_range,
    });
    let info = info();

    // 5. Interrupts and time.
    // SAFETY: the GIC's registers were mapped as devices by `complete_map`.
    unsafe { gic::init(&info.board.gic) };
    exception::set_irq_handler(platform::handle_irq);
    let tick_hz = match args.number("tick_hz") {
        Ok(hz) => hz.unwrap_or(time::DEFAULT_TICK_HZ as u64) as u32,
        Err(text) => {
            log::warn!(
                "tick_hz={text} is not a number; using {}",
                time::DEFAULT_TICK_HZ
            );
            time::DEFAULT_TICK_HZ
        }
    };
    time::init(tick_hz, info.board.timer.virtual_);
    match args.number("reductions") {
        Ok(Some(reductions)) => {
            crate::sched::scheduler::set_slice_reductions(reductions.min(u32::MAX as u64) as u32)
        }
        Ok(None) => {}
        Err(text) => log::warn!("reductions={text} is not a number; using the default"),
    }
    smp::register_boot_core();
    if let Err(e) = gic::init_this_core(&[platform::SGI_WAKE, time::timer_intid()]) {
        die(format_args!("core 0: {e}"));
    }
    time::start_this_core();
    cpu::enable_irqs();

    crate::println!(
        "core 0 online (MPIDR {:#x}): entered at EL{}, running at EL{}, loaded at {load_address:#x}",
        cpu::mpidr(),
        info.entry_el,
        cpu::current_el()
    );
    log::info!(
        "{}: {} cpus, {} MiB RAM, GICv{}, timer IRQ {}, tick {} Hz, bootargs \"{}\"",
        if info.board.model.is_empty() {
            "board"
        } else {
            info.board.model
        },
        info.board.cpus.len(),
        info.board.memory.iter().map(|r| r.size).sum::<u64>() >> 20,
        gic::version(),
        time::timer_intid(),
        time::tick_hz(),
        args.as_str()
    );

    arch_boot::publish_secondary_mmu_config(mmu_config);
    let online = smp::start_secondaries(&info.board);
    log::info!("{online} of {} cores online", smp::present_count());

    unsafe extern "Rust" {
        /// The image's main, defined with [`crate::entry!`].
        fn __kernel_main() -> !;
    }
    // SAFETY: every kernel image defines it through `entry!`, with this signature.
    unsafe { __kernel_main() }
}

/// Secondary core: x0 = its logical index, MMU already on (entry.s).
#[unsafe(no_mangle)]
extern "C" fn rust_secondary_entry(index: usize) -> ! {
    cpu::set_core_index(index);
    exception::install_vectors();
    smp::secondary_main(index)
}

/// Define the image's main function: `kernel::entry!(main);` with `fn main() -> !`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        pub fn __kernel_main() -> ! {
            let main: fn() -> ! = $main;
            main()
        }
    };
}

// ---------------------------------------------------------------------------------------
// Stopping.

/// Whether `exit` may use semihosting, from the `semihosting` boot argument.
static SEMIHOSTING: SemihostingPolicy = SemihostingPolicy::new();

/// 0 = unknown (no bootargs yet), 1 = yes, 2 = no.
struct SemihostingPolicy(AtomicU8);

impl SemihostingPolicy {
    const fn new() -> Self {
        Self(AtomicU8::new(0))
    }
    fn store(&self, wanted: bool, order: Ordering) {
        self.0.store(if wanted { 1 } else { 2 }, order);
    }
    /// Unknown counts as yes: with no bootargs we cannot tell, and on a machine without
    /// semihosting the attempt traps and the core halts, which is what it would do anyway.
    fn allowed(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 2
    }
}

fn semihosting_wanted(args: BootArgs) -> bool {
    args.flag("semihosting")
}

/// Bootargs from a tree that failed full parsing, so a broken tree still exits cleanly.
fn bootargs_of_broken_tree(blob: &'static [u8]) -> BootArgs<'static> {
    BootArgs::new(devicetree::chosen_bootargs(blob).unwrap_or(""))
}

fn no_device_tree(dtb: usize, error: DtError) -> ! {
    crate::println!("kernel: no device tree (x0 = {dtb:#x}): {error}");
    crate::println!("kernel: boot with a DTB in x0 (QEMU -kernel does this; m1n1 too)");
    exit(2)
}

static EXITING: AtomicBool = AtomicBool::new(false);

/// Stop the machine with `code` (0 = success): semihosting exit under QEMU; else PSCI
/// SYSTEM_OFF for success; else halt this core.
pub fn exit(code: u32) -> ! {
    if EXITING.swap(true, Ordering::AcqRel) {
        // Re-entered, e.g. the semihosting call trapped on a machine without it.
        cpu::halt();
    }
    crate::console::emergency(|_| {});
    if SEMIHOSTING.allowed() {
        semihosting::exit(code);
    }
    if code == 0
        && let Some(conduit) = BOOT_INFO.get().and_then(|i| i.board.psci)
    {
        psci::system_off(conduit);
    }
    cpu::halt()
}

/// The kernel cannot go on: let a running test report it, then stop with a failure code.
pub fn die(what: fmt::Arguments) -> ! {
    crate::testing::on_abort(what);
    crate::console::emergency(|out| {
        let _ = writeln!(out, "kernel stopped on core {}: {what}", cpu::core_index());
    });
    exit(3)
}

/// Make sure the page holding `address` is mapped read-write, mapping it as RAM if it is not
/// mapped at all (a spin-table release word may lie in memory the device tree reserves,
/// which the kernel otherwise leaves unmapped).
pub fn ensure_mapped_rw(address: u64) -> Result<(), crate::mem::page_table::MapError> {
    let page = address & !(PAGE_SIZE as u64 - 1);
    let mut guard = KERNEL_MAP.lock();
    let map = guard
        .as_mut()
        .ok_or(crate::mem::page_table::MapError::OutOfTables)?;
    match map.tables.translate(page) {
        Some(t) if t.attrs.access == Access::ReadWrite => Ok(()),
        Some(_) => Err(crate::mem::page_table::MapError::AlreadyMapped { va: page }),
        None => {
            map.tables
                .map(page, page, PAGE_SIZE as u64, RW, &mut map.pool)?;
            mmu::publish_new_entries();
            Ok(())
        }
    }
}

/// What the kernel's map says about `va` (for tests and diagnostics).
pub fn translate(va: u64) -> Option<crate::mem::page_table::Translation> {
    KERNEL_MAP
        .lock()
        .as_ref()
        .and_then(|map| map.tables.translate(va))
}

// ---------------------------------------------------------------------------------------
// Process stack pages: mapped into the same tables as everything else, in the stack region
// (`process::stack`), with tables taken from the frame allocator.

/// Page tables for the stack region, from free frames (zeroed here). Never given back: a
/// table that served one process's stack serves the next one in the same slot.
struct FrameTables;

impl TableAllocator for FrameTables {
    fn allocate_table(&mut self) -> Option<NonNull<Table>> {
        let frame = crate::mem::pages::allocate_page()?;
        // SAFETY: a free frame, identity-mapped, ours; a zeroed table is all-invalid.
        unsafe { core::ptr::write_bytes(frame.as_ptr(), 0, PAGE_SIZE) };
        Some(frame.cast())
    }
}

/// Map the stack page at `va` to frame `pa` (read-write, never executable). The new entry is
/// visible to every core when this returns.
pub fn map_process_page(va: u64, pa: u64) -> Result<(), crate::mem::page_table::MapError> {
    let mut guard = KERNEL_MAP.lock();
    let map = guard
        .as_mut()
        .ok_or(crate::mem::page_table::MapError::OutOfTables)?;
    map.tables.map_page(va, pa, RW, &mut FrameTables)?;
    drop(guard);
    mmu::publish_new_entries();
    Ok(())
}

/// Unmap the stack page at `va` and return its frame, already gone from every core's TLB
/// (so it may be reused at once); `None` if it was not mapped.
pub fn unmap_process_page(va: u64) -> Option<u64> {
    let frame = KERNEL_MAP.lock().as_mut()?.tables.unmap_page(va)?;
    mmu::invalidate_page(va);
    Some(frame)
}
