//! The flattened device tree: the board facts the kernel boots from.
//!
//! The boot loader (QEMU's `-kernel` loader, m1n1 on Apple Silicon) passes the physical address
//! of a flattened device tree blob (DTB) in `x0`. Everything the kernel knows about the machine
//! comes from it: RAM and the ranges it must not touch, the cores and how to start them, the PSCI
//! conduit, the interrupt controller, the timer's interrupt numbers, the console UART and the
//! command line. [`blob_size`] tells the early boot code how many bytes to map; [`parse`] then
//! turns the blob into a [`BoardInfo`] once, and the rest of the kernel reads that.
//!
//! This is portable code: no `asm!`, no MMIO, no heap (fixed-capacity `heapless::Vec`s), and it
//! is unit-tested on the host against real QEMU blobs in `tests/data/` (see its README).
//!
//! # Why it reads the format itself
//!
//! A panic this early has no console to report it, so `parse` must never panic, whatever the
//! bytes. The `fdt` crate (0.1.5) does panic on malformed blobs (unchecked slicing of blocks and
//! property values, `expect`s on node and property names, asserts while skipping nodes) and in
//! `cpus()`, `memory()` and `Cpu::ids()` when a node or property is missing. The format is small
//! (devicetree specification v0.4, chapter 5: a header, a memory-reservation block, a token
//! stream and a strings block), so this module reads it directly: it validates the whole
//! structure block once, then walks it with bounds-checked reads only. Every problem becomes a
//! [`DtError`] whose `Display` says what is wrong in one line.
//!
//! # Conventions
//!
//! - Integers are big-endian and read from byte slices (the blob may be unaligned).
//! - A node's `reg` is read with its parent's `#address-cells`/`#size-cells` (defaults 2 and 1).
//!   `ranges` is not applied: addresses are as the parent bus sees them. That is right for QEMU
//!   `virt`, whose devices are children of the root, and for Apple's `/soc` (identity `ranges`).
//! - What the kernel needs to run (memory and cpu `reg`, `cpu-release-addr`, the PSCI `method`,
//!   the GIC's `reg`, the timer's `interrupts`) is checked strictly and reported. Descriptive
//!   properties (`model`, `compatible`, `capacity-dmips-mhz`, `cpu-map`, `bootargs`, the UART)
//!   are ignored when malformed.
//! - Nodes whose `status` is neither absent, `"okay"` nor `"ok"` are ignored when looking for
//!   PSCI, the GIC, the timer, the fallback UART and `/reserved-memory` children.
//! - The blob's own memory is not in [`BoardInfo::reserved`]: the caller knows where it is.

use core::fmt;

use heapless::Vec;

/// The most RAM ranges [`BoardInfo::memory`] holds.
pub const MAX_MEMORY_REGIONS: usize = 16;
/// The most reserved ranges [`BoardInfo::reserved`] holds.
pub const MAX_RESERVED_REGIONS: usize = 32;
/// Size of the blob header: [`header_size`] needs this many bytes.
pub const HEADER_SIZE: usize = 40;

const FDT_MAGIC: u32 = 0xd00d_feed;
/// The structure-block layout this module reads (version 17, the one dtc and libfdt write).
const FDT_VERSION: u32 = 17;
/// Deepest node nesting accepted (the root is depth 1). Real trees are well under 10.
const MAX_DEPTH: usize = 32;
/// MPIDR_EL1 affinity fields Aff3 (39:32), Aff2, Aff1, Aff0 (23:0); bits 31:24 are flags.
const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

const TOKEN_BEGIN_NODE: u32 = 1;
const TOKEN_END_NODE: u32 = 2;
const TOKEN_PROP: u32 = 3;
const TOKEN_NOP: u32 = 4;
const TOKEN_END: u32 = 9;

/// Node descriptions used in errors.
const CPU_NODE: &str = "/cpus/cpu";
const GIC_NODE: &str = "interrupt-controller";
const TIMER_NODE: &str = "/timer";
const PSCI_NODE: &str = "/psci";

/// `compatible` strings of Apple efficiency and performance cores (M1, M2, M3).
const EFFICIENCY_CORES: [&str; 3] = ["apple,icestorm", "apple,blizzard", "apple,sawtooth"];
const PERFORMANCE_CORES: [&str; 3] = ["apple,firestorm", "apple,avalanche", "apple,everest"];

/// A physical address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    /// One past the last byte (saturating at `u64::MAX`).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
}

/// How PSCI calls reach the firmware: `hvc` (kernel at EL1 under a hypervisor or QEMU's
/// built-in PSCI) or `smc` (QEMU `virtualization=on`, kernel at EL2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PsciConduit {
    Hvc,
    Smc,
}

/// How a secondary core is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnableMethod {
    /// PSCI `CPU_ON` over [`BoardInfo::psci`].
    Psci,
    /// Write the entry point to `release_addr`, clean it to the point of coherency, `sev`.
    SpinTable { release_addr: u64 },
    /// No `enable-method` (often the boot cpu) or one the kernel does not know.
    Unsupported,
}

/// Performance or efficiency core, for placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreClass {
    Performance,
    Efficiency,
    Unknown,
}

/// One `/cpus/cpu@N` node (`device_type = "cpu"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo<'a> {
    /// The MPIDR affinity from `reg` (1 or 2 cells, per `/cpus` `#address-cells`).
    pub mpidr: u64,
    pub enable_method: EnableMethod,
    /// First `compatible` string, `""` if none.
    pub compatible: &'a str,
    pub capacity_dmips_mhz: Option<u32>,
    /// Which `/cpus/cpu-map` cluster names this cpu (through its phandle): clusters that
    /// contain cpus are numbered 0, 1, ... in blob order, which is N of `clusterN` for the usual
    /// single-socket maps (Apple; QEMU `-smp N,clusters=C`, whose map has a `socket0` level).
    /// `None` without a cpu-map or when the map does not name this cpu.
    pub cluster: Option<u32>,
    /// From `compatible` (Apple core names), else from `capacity-dmips-mhz` (the largest is
    /// [`CoreClass::Performance`], smaller ones [`CoreClass::Efficiency`]) when capacities
    /// differ, else [`CoreClass::Unknown`].
    pub class: CoreClass,
}

/// The interrupt controller's register frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicInfo {
    /// `arm,cortex-a15-gic`, `arm,gic-400` or `arm,cortex-a7-gic`: `reg` 0 and 1.
    V2 {
        distributor: Region,
        cpu_interface: Region,
    },
    /// `arm,gic-v3`: `reg` 0 (GICD) and 1 (the first redistributor region).
    V3 {
        distributor: Region,
        redistributors: Region,
    },
}

/// The generic timer's interrupts as GIC INTIDs (PPI number + 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerInfo {
    pub secure_phys: u32,
    pub nonsecure_phys: u32,
    pub virtual_: u32,
    pub hyp_phys: u32,
}

/// A PL011 UART's registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UartInfo {
    pub base: u64,
    pub size: u64,
}

/// Everything the kernel takes from the device tree. Strings borrow from the blob.
#[derive(Debug, Clone)]
pub struct BoardInfo<'a> {
    /// Root `model`, `""` if none.
    pub model: &'a str,
    /// `reg` of every root node with `device_type = "memory"`, empty entries dropped, sorted by
    /// base.
    pub memory: Vec<Region, MAX_MEMORY_REGIONS>,
    /// `/memreserve/` entries, then `/reserved-memory` children that have a `reg`.
    pub reserved: Vec<Region, MAX_RESERVED_REGIONS>,
    /// `/cpus` children with `device_type = "cpu"`, in blob order.
    pub cpus: Vec<CpuInfo<'a>, { crate::MAX_CORES }>,
    /// `method` of the `arm,psci*` node, `None` if there is none (Apple).
    pub psci: Option<PsciConduit>,
    /// The PL011 that `/chosen/stdout-path` names (a path or an alias, options after `:`
    /// ignored), else the first enabled PL011, else `None`.
    pub uart: Option<UartInfo>,
    pub gic: GicInfo,
    pub timer: TimerInfo,
    /// `/chosen/bootargs`, `""` if none.
    pub bootargs: &'a str,
    /// `/chosen/stdout-path` as written (e.g. `"/pl011@9000000"` or `"serial0:115200n8"`), `""`
    /// if none.
    pub stdout_path: &'a str,
}

impl BoardInfo<'_> {
    /// Position in [`BoardInfo::cpus`] of the cpu with this MPIDR, comparing the affinity
    /// fields only (so a raw `MPIDR_EL1` value, with its flag bits, can be passed).
    pub fn boot_cpu_index(&self, mpidr: u64) -> Option<usize> {
        let want = mpidr & MPIDR_AFFINITY_MASK;
        self.cpus
            .iter()
            .position(|cpu| cpu.mpidr & MPIDR_AFFINITY_MASK == want)
    }
}

/// Why a blob could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtError {
    /// The boot loader passed 0 in `x0`.
    NullPointer,
    BadMagic {
        found: u32,
    },
    Truncated {
        need: usize,
        have: usize,
    },
    Unsupported {
        version: u32,
    },
    /// The blob's layout cannot be walked.
    Malformed(&'static str),
    /// E.g. `"/memory"`, `"/cpus"`, `"interrupt-controller"`, `"/timer"`.
    MissingNode(&'static str),
    MissingProperty {
        node: &'static str,
        property: &'static str,
    },
    /// Wrong length, bad value or duplicate.
    BadProperty {
        node: &'static str,
        property: &'static str,
    },
    TooMany {
        what: &'static str,
        max: usize,
    },
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DtError::NullPointer => {
                write!(
                    f,
                    "device tree: none was passed (x0 was 0); boot the flat Image, QEMU passes none to an ELF"
                )
            }
            DtError::BadMagic { found } => write!(
                f,
                "device tree: bad magic {found:#010x} (expected 0xd00dfeed): x0 does not point at a DTB"
            ),
            DtError::Truncated { need, have } => write!(
                f,
                "device tree: blob is truncated: {need} bytes needed, {have} available"
            ),
            DtError::Unsupported { version } => write!(
                f,
                "device tree: blob version {version} is not supported (need one readable as version {FDT_VERSION})"
            ),
            DtError::Malformed(what) => write!(f, "device tree: malformed blob: {what}"),
            DtError::MissingNode(node) => write!(f, "device tree: no {node} node"),
            DtError::MissingProperty { node, property } => {
                write!(f, "device tree: {node} node without `{property}` property")
            }
            DtError::BadProperty { node, property } => write!(
                f,
                "device tree: {node} node has a malformed `{property}` property (wrong size or value)"
            ),
            DtError::TooMany { what, max } => write!(
                f,
                "device tree: more {what} than the kernel supports ({max})"
            ),
        }
    }
}

impl core::error::Error for DtError {}

/// Checks a blob header's magic and version and returns the blob's total size. Reads at most
/// the first [`HEADER_SIZE`] bytes of `header`, which may be longer (the whole blob) or shorter.
pub fn header_size(header: &[u8]) -> Result<usize, DtError> {
    let have = header.len();
    let word = |index: usize| {
        be32(header, index * 4).ok_or(DtError::Truncated {
            need: HEADER_SIZE,
            have,
        })
    };
    let magic = word(0)?;
    if magic != FDT_MAGIC {
        return Err(DtError::BadMagic { found: magic });
    }
    let total = word(1)?;
    let version = word(5)?;
    let last_compatible = word(6)?;
    if version < FDT_VERSION || last_compatible > FDT_VERSION {
        return Err(DtError::Unsupported { version });
    }
    let total = total as usize;
    if total < HEADER_SIZE {
        return Err(DtError::Malformed("total size is smaller than the header"));
    }
    Ok(total)
}

/// Reads the header at `ptr` and returns the blob's total size after checking magic and
/// version, reading nothing beyond the 40-byte header. The kernel uses it to decide how much to
/// map or slice before calling [`parse`].
///
/// Only aligned 4-byte volatile reads are made, so this is usable with the MMU off. `ptr` must
/// be 4-byte aligned (the specification asks for 8): otherwise `Malformed`.
///
/// # Safety
///
/// If `ptr` is not null and is 4-byte aligned, the 40 bytes at `ptr` must be readable.
pub unsafe fn blob_size(ptr: *const u8) -> Result<usize, DtError> {
    if ptr.is_null() {
        return Err(DtError::NullPointer);
    }
    if !(ptr as usize).is_multiple_of(4) {
        return Err(DtError::Malformed("blob is not 4-byte aligned"));
    }
    let words = ptr.cast::<u32>();
    let mut header = [0u8; HEADER_SIZE];
    for (index, chunk) in header.chunks_exact_mut(4).enumerate() {
        // SAFETY: the caller guarantees the 40 bytes at the 4-aligned `ptr` are readable; index
        // is at most 9.
        let word = unsafe { words.add(index).read_volatile() };
        chunk.copy_from_slice(&word.to_ne_bytes());
        if index == 0 && u32::from_be_bytes(word.to_ne_bytes()) != FDT_MAGIC {
            // Stop at a bad magic: whatever follows is not a header.
            return header_size(&header);
        }
    }
    header_size(&header)
}

/// Parses a whole blob. `blob` may be longer than the blob's total size (e.g. a mapped window),
/// not shorter. Never panics, whatever the bytes.
pub fn parse(blob: &[u8]) -> Result<BoardInfo<'_>, DtError> {
    let (blob, tree) = blocks(blob)?;
    let root = tree.root()?;

    let mut reserved = Vec::new();
    read_memreserve(blob, header_field(blob, 4), &mut reserved)?;
    let memory = read_memory(root)?;
    read_reserved_memory(root, &mut reserved)?;
    let cpus = read_cpus(root)?;
    let devices = Devices::scan(root);
    let gic = read_gic(devices.gic)?;
    let timer = read_timer(root, devices.timer)?;
    let psci = read_psci(devices.psci)?;

    let chosen = root.child("chosen");
    let chosen_str = |name| chosen.and_then(|c| c.str_prop(name)).unwrap_or("");
    let stdout_path = chosen_str("stdout-path");
    let uart = stdout_node(root, stdout_path)
        .and_then(uart_info)
        .or(devices.pl011);

    Ok(BoardInfo {
        model: root.str_prop("model").unwrap_or(""),
        memory,
        reserved,
        cpus,
        psci,
        uart,
        gic,
        timer,
        bootargs: chosen_str("bootargs"),
        stdout_path,
    })
}

/// `/chosen/bootargs` of a blob that [`parse`] may have rejected (for a missing node, say), so
/// that the kernel can still honour its command line (e.g. how to exit) when reporting the
/// error. `None` if the header is unusable or the walk to `/chosen` fails. Never panics.
pub fn chosen_bootargs(blob: &[u8]) -> Option<&str> {
    let (_, tree) = blocks(blob).ok()?;
    tree.first_node()?.child("chosen")?.str_prop("bootargs")
}

/// The blob cut to its total size, and its structure and strings blocks.
fn blocks(blob: &[u8]) -> Result<(&[u8], Tree<'_>), DtError> {
    let total = header_size(blob)?;
    let blob = blob.get(..total).ok_or(DtError::Truncated {
        need: total,
        have: blob.len(),
    })?;
    let field = |index| header_field(blob, index);
    let structs = block(blob, field(2), field(9))
        .ok_or(DtError::Malformed("structure block lies outside the blob"))?;
    let strings = block(blob, field(3), field(8))
        .ok_or(DtError::Malformed("strings block lies outside the blob"))?;
    Ok((blob, Tree { structs, strings }))
}

/// Header word `index` (0 if the blob is too short, which `header_size` has excluded).
fn header_field(blob: &[u8], index: usize) -> usize {
    be32(blob, index * 4).unwrap_or(0) as usize
}

// ---------------------------------------------------------------------------------------------
// Facts

fn read_memreserve(
    blob: &[u8],
    offset: usize,
    out: &mut Vec<Region, MAX_RESERVED_REGIONS>,
) -> Result<(), DtError> {
    let mut at = offset;
    loop {
        let (Some(base), Some(size)) = (be64(blob, at), be64(blob, at.saturating_add(8))) else {
            return Err(DtError::Malformed(
                "memory reservation block is not terminated",
            ));
        };
        if base == 0 && size == 0 {
            return Ok(());
        }
        if size != 0 {
            if base.checked_add(size).is_none() {
                return Err(DtError::Malformed("memory reservation wraps around"));
            }
            push_region(out, Region { base, size }, "reserved memory regions")?;
        }
        at = at.saturating_add(16);
    }
}

fn read_memory(root: Node<'_>) -> Result<Vec<Region, MAX_MEMORY_REGIONS>, DtError> {
    let mut memory = Vec::new();
    for node in root.children() {
        if node.str_prop("device_type") != Some("memory") {
            continue;
        }
        if let Some(reg) = node.prop("reg") {
            collect_regions(reg, node.cells, &mut memory, "/memory", "memory regions")?;
        }
    }
    if memory.is_empty() {
        return Err(DtError::MissingNode("/memory"));
    }
    memory.sort_unstable_by_key(|region| region.base);
    Ok(memory)
}

fn read_reserved_memory(
    root: Node<'_>,
    out: &mut Vec<Region, MAX_RESERVED_REGIONS>,
) -> Result<(), DtError> {
    let Some(parent) = root.child("reserved-memory") else {
        return Ok(());
    };
    for node in parent.children() {
        if !node.enabled() {
            continue;
        }
        if let Some(reg) = node.prop("reg") {
            collect_regions(
                reg,
                node.cells,
                out,
                "/reserved-memory",
                "reserved memory regions",
            )?;
        }
    }
    Ok(())
}

/// Appends the non-empty entries of a `reg` value.
fn collect_regions<const N: usize>(
    reg: &[u8],
    cells: Cells,
    out: &mut Vec<Region, N>,
    node: &'static str,
    what: &'static str,
) -> Result<(), DtError> {
    let bad = DtError::BadProperty {
        node,
        property: "reg",
    };
    for region in reg_entries(reg, cells).ok_or(bad)? {
        if region.size == 0 {
            continue;
        }
        if region.base.checked_add(region.size).is_none() {
            return Err(bad);
        }
        push_region(out, region, what)?;
    }
    Ok(())
}

fn push_region<const N: usize>(
    out: &mut Vec<Region, N>,
    region: Region,
    what: &'static str,
) -> Result<(), DtError> {
    out.push(region)
        .map_err(|_| DtError::TooMany { what, max: N })
}

fn read_cpus(root: Node<'_>) -> Result<Vec<CpuInfo<'_>, { crate::MAX_CORES }>, DtError> {
    let cpus_node = root.child("cpus").ok_or(DtError::MissingNode("/cpus"))?;
    let mut cpus: Vec<CpuInfo<'_>, { crate::MAX_CORES }> = Vec::new();
    let mut phandles: Vec<Option<u32>, { crate::MAX_CORES }> = Vec::new();
    for node in cpus_node.children() {
        if node.str_prop("device_type") != Some("cpu") {
            continue;
        }
        let reg = node.prop("reg").ok_or(DtError::MissingProperty {
            node: CPU_NODE,
            property: "reg",
        })?;
        let bad_reg = DtError::BadProperty {
            node: CPU_NODE,
            property: "reg",
        };
        let address_bytes = node.cells.address as usize * 4;
        if !(4..=8).contains(&address_bytes) {
            return Err(bad_reg);
        }
        let mpidr = reg
            .get(..address_bytes)
            .and_then(cells_value)
            .ok_or(bad_reg)?;
        if cpus.iter().any(|cpu| cpu.mpidr == mpidr) {
            return Err(bad_reg);
        }
        let compatible = node.prop("compatible").unwrap_or_default();
        let class = if strings(compatible).any(|c| EFFICIENCY_CORES.contains(&c)) {
            CoreClass::Efficiency
        } else if strings(compatible).any(|c| PERFORMANCE_CORES.contains(&c)) {
            CoreClass::Performance
        } else {
            CoreClass::Unknown
        };
        let cpu = CpuInfo {
            mpidr,
            enable_method: read_enable_method(node)?,
            compatible: strings(compatible).next().unwrap_or(""),
            capacity_dmips_mhz: node.u32_prop("capacity-dmips-mhz"),
            cluster: None,
            class,
        };
        cpus.push(cpu).map_err(|_| DtError::TooMany {
            what: "cpus",
            max: crate::MAX_CORES,
        })?;
        // Same capacity as `cpus`, and that push succeeded.
        let _ = phandles.push(node.phandle());
    }
    if cpus.is_empty() {
        return Err(DtError::MissingNode("/cpus"));
    }
    if let Some(map) = cpus_node.child("cpu-map") {
        assign_clusters(map, &mut cpus, &phandles);
    }
    classes_from_capacity(&mut cpus);
    Ok(cpus)
}

fn read_enable_method(node: Node<'_>) -> Result<EnableMethod, DtError> {
    let Some(methods) = node.prop("enable-method") else {
        return Ok(EnableMethod::Unsupported);
    };
    for method in strings(methods) {
        match method {
            "psci" => return Ok(EnableMethod::Psci),
            "spin-table" => {
                let value = node
                    .prop("cpu-release-addr")
                    .ok_or(DtError::MissingProperty {
                        node: CPU_NODE,
                        property: "cpu-release-addr",
                    })?;
                // 0 is the placeholder of a loader that did not fill it in.
                let release_addr =
                    cells_value(value)
                        .filter(|&addr| addr != 0)
                        .ok_or(DtError::BadProperty {
                            node: CPU_NODE,
                            property: "cpu-release-addr",
                        })?;
                return Ok(EnableMethod::SpinTable { release_addr });
            }
            _ => {}
        }
    }
    Ok(EnableMethod::Unsupported)
}

/// Numbers the cpu-map clusters that contain cpus 0, 1, ... in blob order and gives each cpu
/// named by a `cpu = <&phandle>` below one of them that number. Accepts any nesting
/// (`socketN/clusterN/clusterN/coreN/threadN`); the innermost `clusterN` counts.
fn assign_clusters(map: Node<'_>, cpus: &mut [CpuInfo<'_>], phandles: &[Option<u32>]) {
    // nearest[d]: the innermost cluster at or above the node last seen at depth d.
    let mut nearest = [None::<usize>; MAX_DEPTH + 1];
    let mut clusters: Vec<usize, { crate::MAX_CORES }> = Vec::new();
    for (depth, node) in map.descendants() {
        let above = depth
            .checked_sub(1)
            .and_then(|d| nearest.get(d).copied())
            .flatten();
        let here = if node.name.starts_with("cluster") {
            Some(node.body)
        } else {
            above
        };
        if let Some(slot) = nearest.get_mut(depth) {
            *slot = here;
        }
        let (Some(cluster), Some(phandle)) = (here, node.u32_prop("cpu")) else {
            continue;
        };
        let index = match clusters.iter().position(|&c| c == cluster) {
            Some(index) => index,
            None => {
                if clusters.push(cluster).is_err() {
                    continue;
                }
                clusters.len() - 1
            }
        };
        for (cpu, cpu_phandle) in cpus.iter_mut().zip(phandles) {
            if *cpu_phandle == Some(phandle) {
                cpu.cluster = Some(index as u32);
            }
        }
    }
}

/// Classes for cpus whose `compatible` did not say: the largest capacity is performance,
/// smaller ones efficiency, when the capacities given differ.
fn classes_from_capacity(cpus: &mut [CpuInfo<'_>]) {
    let capacities = || cpus.iter().filter_map(|cpu| cpu.capacity_dmips_mhz);
    let (Some(min), Some(max)) = (capacities().min(), capacities().max()) else {
        return;
    };
    if min == max {
        return;
    }
    for cpu in cpus.iter_mut() {
        if let (CoreClass::Unknown, Some(capacity)) = (cpu.class, cpu.capacity_dmips_mhz) {
            cpu.class = if capacity == max {
                CoreClass::Performance
            } else {
                CoreClass::Efficiency
            };
        }
    }
}

/// The nodes found by one walk over the whole tree (first enabled match of each).
struct Devices<'a> {
    psci: Option<Node<'a>>,
    gic: Option<(Node<'a>, bool)>,
    timer: Option<Node<'a>>,
    pl011: Option<UartInfo>,
}

impl<'a> Devices<'a> {
    fn scan(root: Node<'a>) -> Self {
        let mut found = Devices {
            psci: None,
            gic: None,
            timer: None,
            pl011: None,
        };
        for (_, node) in root.descendants() {
            let Some(compatible) = node.prop("compatible") else {
                continue;
            };
            if !node.enabled() {
                continue;
            }
            for name in strings(compatible) {
                if found.psci.is_none() && name.starts_with("arm,psci") {
                    found.psci = Some(node);
                }
                if found.gic.is_none() {
                    match name {
                        "arm,gic-v3" => found.gic = Some((node, true)),
                        "arm,cortex-a15-gic" | "arm,gic-400" | "arm,cortex-a7-gic" => {
                            found.gic = Some((node, false));
                        }
                        _ => {}
                    }
                }
                if found.timer.is_none() && matches!(name, "arm,armv8-timer" | "arm,armv7-timer") {
                    found.timer = Some(node);
                }
                if found.pl011.is_none() && name == "arm,pl011" {
                    found.pl011 = uart_info(node);
                }
            }
        }
        found
    }
}

fn read_gic(found: Option<(Node<'_>, bool)>) -> Result<GicInfo, DtError> {
    let (node, v3) = found.ok_or(DtError::MissingNode(GIC_NODE))?;
    let reg = node.prop("reg").ok_or(DtError::MissingProperty {
        node: GIC_NODE,
        property: "reg",
    })?;
    let bad = DtError::BadProperty {
        node: GIC_NODE,
        property: "reg",
    };
    let mut entries = reg_entries(reg, node.cells).ok_or(bad)?;
    let (Some(first), Some(second)) = (entries.next(), entries.next()) else {
        return Err(bad);
    };
    Ok(if v3 {
        GicInfo::V3 {
            distributor: first,
            redistributors: second,
        }
    } else {
        GicInfo::V2 {
            distributor: first,
            cpu_interface: second,
        }
    })
}

/// The timer's `interrupts`: four (or five, with the EL2 virtual timer) GIC specifiers
/// `<type number flags>`, type 1 = PPI; secure, non-secure, virtual, hypervisor physical.
fn read_timer(root: Node<'_>, found: Option<Node<'_>>) -> Result<TimerInfo, DtError> {
    let node = found.ok_or(DtError::MissingNode(TIMER_NODE))?;
    let value = node.prop("interrupts").ok_or(DtError::MissingProperty {
        node: TIMER_NODE,
        property: "interrupts",
    })?;
    let bad = DtError::BadProperty {
        node: TIMER_NODE,
        property: "interrupts",
    };
    // The specifiers must be the GIC's 3-cell ones. An interrupt-parent that cannot be found
    // is left alone: the cell count is then checked by the length test below only.
    let parent = node
        .u32_prop("interrupt-parent")
        .or(node.irq_parent)
        .and_then(|phandle| find_phandle(root, phandle));
    if parent.is_some_and(|p| p.u32_prop("#interrupt-cells") != Some(3)) {
        return Err(bad);
    }
    if !value.len().is_multiple_of(12) || value.len() < 4 * 12 {
        return Err(bad);
    }
    let ppi = |index: usize| match (be32(value, index * 12), be32(value, index * 12 + 4)) {
        (Some(1), Some(number)) if number < 16 => Ok(number + 16),
        _ => Err(bad),
    };
    Ok(TimerInfo {
        secure_phys: ppi(0)?,
        nonsecure_phys: ppi(1)?,
        virtual_: ppi(2)?,
        hyp_phys: ppi(3)?,
    })
}

fn read_psci(found: Option<Node<'_>>) -> Result<Option<PsciConduit>, DtError> {
    let Some(node) = found else {
        return Ok(None);
    };
    match node.str_prop("method") {
        Some("hvc") => Ok(Some(PsciConduit::Hvc)),
        Some("smc") => Ok(Some(PsciConduit::Smc)),
        Some(_) => Err(DtError::BadProperty {
            node: PSCI_NODE,
            property: "method",
        }),
        None => Err(DtError::MissingProperty {
            node: PSCI_NODE,
            property: "method",
        }),
    }
}

/// The node `/chosen/stdout-path` names: a path or an alias, with `:options` after it.
fn stdout_node<'a>(root: Node<'a>, stdout_path: &str) -> Option<Node<'a>> {
    let path = stdout_path.split(':').next().unwrap_or("");
    let path = if path.starts_with('/') {
        path
    } else {
        root.child("aliases")?.str_prop(path)?
    };
    if !path.starts_with('/') {
        return None;
    }
    let mut node = root;
    for component in path.split('/').filter(|c| !c.is_empty()) {
        node = node.child(component)?;
    }
    Some(node)
}

fn uart_info(node: Node<'_>) -> Option<UartInfo> {
    if !node.is_compatible("arm,pl011") {
        return None;
    }
    let region = reg_entries(node.prop("reg")?, node.cells)?.next()?;
    Some(UartInfo {
        base: region.base,
        size: region.size,
    })
}

fn find_phandle(root: Node<'_>, phandle: u32) -> Option<Node<'_>> {
    core::iter::once(root)
        .chain(root.descendants().map(|(_, node)| node))
        .find(|node| node.phandle() == Some(phandle))
}

// ---------------------------------------------------------------------------------------------
// Values

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(word.try_into().ok()?))
}

fn be64(bytes: &[u8], at: usize) -> Option<u64> {
    let word = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(word.try_into().ok()?))
}

/// A number of 0, 1 or 2 cells.
fn cells_value(bytes: &[u8]) -> Option<u64> {
    match bytes.len() {
        0 => Some(0),
        4 => be32(bytes, 0).map(u64::from),
        8 => be64(bytes, 0),
        _ => None,
    }
}

fn block(blob: &[u8], offset: usize, size: usize) -> Option<&[u8]> {
    blob.get(offset..offset.checked_add(size)?)
}

fn align4(offset: usize) -> Option<usize> {
    Some(offset.checked_add(3)? & !3)
}

/// A string property: up to the first NUL.
fn prop_str(value: &[u8]) -> Option<&str> {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    core::str::from_utf8(value.get(..end)?).ok()
}

/// A string-list property (`"a\0b\0"`); empty and non-UTF-8 entries are skipped.
fn strings(value: &[u8]) -> impl Iterator<Item = &str> {
    value
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| core::str::from_utf8(s).ok())
}

/// The entries of a `reg` value, `None` unless it is a whole number of entries of 1 or 2
/// address cells and 0 to 2 size cells.
fn reg_entries(value: &[u8], cells: Cells) -> Option<impl Iterator<Item = Region> + '_> {
    let address = cells.address as usize * 4;
    let size = cells.size as usize * 4;
    if !(4..=8).contains(&address) || size > 8 {
        return None;
    }
    let entry = address + size;
    if value.is_empty() || !value.len().is_multiple_of(entry) {
        return None;
    }
    Some(value.chunks_exact(entry).map(move |chunk| Region {
        base: chunk.get(..address).and_then(cells_value).unwrap_or(0),
        size: chunk.get(address..).and_then(cells_value).unwrap_or(0),
    }))
}

// ---------------------------------------------------------------------------------------------
// The structure block

/// The structure and strings blocks of a blob.
#[derive(Clone, Copy)]
struct Tree<'a> {
    structs: &'a [u8],
    strings: &'a [u8],
}

#[derive(Clone, Copy)]
enum Token<'a> {
    BeginNode(&'a str),
    Prop(&'a str, &'a [u8]),
    EndNode,
    Nop,
    End,
}

impl<'a> Tree<'a> {
    /// The token at `at` (an offset into the structure block) and the offset of the next.
    fn read_token(&self, at: usize) -> Result<(Token<'a>, usize), &'static str> {
        const SHORT: &str = "structure block ends inside a token";
        let tag = be32(self.structs, at).ok_or(SHORT)?;
        let body = at.checked_add(4).ok_or(SHORT)?;
        match tag {
            TOKEN_BEGIN_NODE => {
                let rest = self.structs.get(body..).ok_or(SHORT)?;
                let len = rest
                    .iter()
                    .position(|&b| b == 0)
                    .ok_or("node name is not terminated")?;
                let name = rest
                    .get(..len)
                    .and_then(|name| core::str::from_utf8(name).ok())
                    .ok_or("node name is not UTF-8")?;
                let next = body.checked_add(len + 1).and_then(align4).ok_or(SHORT)?;
                Ok((Token::BeginNode(name), next))
            }
            TOKEN_PROP => {
                let len = be32(self.structs, body).ok_or(SHORT)? as usize;
                let name_offset = be32(self.structs, body + 4).ok_or(SHORT)? as usize;
                let start = body + 8;
                let value = start
                    .checked_add(len)
                    .and_then(|end| self.structs.get(start..end))
                    .ok_or("property value runs past the structure block")?;
                let name = self
                    .strings
                    .get(name_offset..)
                    .and_then(|rest| {
                        let end = rest.iter().position(|&b| b == 0)?;
                        core::str::from_utf8(rest.get(..end)?).ok()
                    })
                    .ok_or("property name is not a string in the strings block")?;
                let next = align4(start + len).ok_or(SHORT)?;
                Ok((Token::Prop(name, value), next))
            }
            TOKEN_END_NODE => Ok((Token::EndNode, body)),
            TOKEN_NOP => Ok((Token::Nop, body)),
            TOKEN_END => Ok((Token::End, body)),
            _ => Err("unknown token in the structure block"),
        }
    }

    fn token(&self, at: usize) -> Option<(Token<'a>, usize)> {
        self.read_token(at).ok()
    }

    /// The first node, without checking the rest of the block (for [`chosen_bootargs`]).
    fn first_node(self) -> Option<Node<'a>> {
        let mut at = 0;
        loop {
            match self.token(at)? {
                (Token::Nop, next) => at = next,
                (Token::BeginNode(name), body) => {
                    return Some(Node {
                        tree: self,
                        name,
                        body,
                        cells: Cells::DEFAULT,
                        irq_parent: None,
                    });
                }
                _ => return None,
            }
        }
    }

    /// Checks the whole structure block (one root node, balanced nodes, properties before
    /// child nodes, every name readable, bounded depth, an END token) and returns the root.
    fn root(self) -> Result<Node<'a>, DtError> {
        let mut at = 0;
        let mut depth = 0usize;
        let mut root = None;
        let mut after_child = false;
        loop {
            let (token, next) = self.read_token(at).map_err(DtError::Malformed)?;
            match token {
                Token::Nop => {}
                Token::BeginNode(name) => {
                    if depth == 0 {
                        if root.is_some() {
                            return Err(DtError::Malformed("more than one root node"));
                        }
                        root = Some(Node {
                            tree: self,
                            name,
                            body: next,
                            cells: Cells::DEFAULT,
                            irq_parent: None,
                        });
                    }
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(DtError::Malformed("nodes are nested too deeply"));
                    }
                    after_child = false;
                }
                Token::Prop(..) => {
                    if depth == 0 {
                        return Err(DtError::Malformed("property outside the root node"));
                    }
                    if after_child {
                        return Err(DtError::Malformed("property after a child node"));
                    }
                }
                Token::EndNode => {
                    if depth == 0 {
                        return Err(DtError::Malformed("end of a node that was not begun"));
                    }
                    depth -= 1;
                    after_child = true;
                }
                Token::End => {
                    return match (root, depth) {
                        (Some(root), 0) => Ok(root),
                        (None, _) => Err(DtError::Malformed("no root node")),
                        _ => Err(DtError::Malformed("structure block ends inside a node")),
                    };
                }
            }
            at = next;
        }
    }
}

/// `#address-cells` and `#size-cells`.
#[derive(Clone, Copy)]
struct Cells {
    address: u32,
    size: u32,
}

impl Cells {
    /// The specification's defaults when a node does not say.
    const DEFAULT: Cells = Cells {
        address: 2,
        size: 1,
    };
}

/// A node of a validated tree. Reads stay bounds-checked anyway: nothing here can panic.
#[derive(Clone, Copy)]
struct Node<'a> {
    tree: Tree<'a>,
    name: &'a str,
    /// Offset of the first token after the node's BEGIN_NODE token and name.
    body: usize,
    /// The parent's cells: how to read this node's `reg`.
    cells: Cells,
    /// The `interrupt-parent` of the nearest ancestor that has one.
    irq_parent: Option<u32>,
}

impl<'a> Node<'a> {
    fn props(self) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        let mut at = Some(self.body);
        core::iter::from_fn(move || {
            loop {
                let (token, next) = self.tree.token(at?)?;
                match token {
                    Token::Nop => at = Some(next),
                    Token::Prop(name, value) => {
                        at = Some(next);
                        return Some((name, value));
                    }
                    _ => {
                        at = None;
                        return None;
                    }
                }
            }
        })
    }

    fn prop(self, name: &str) -> Option<&'a [u8]> {
        self.props().find(|&(n, _)| n == name).map(|(_, v)| v)
    }

    fn str_prop(self, name: &str) -> Option<&'a str> {
        self.prop(name).and_then(prop_str)
    }

    fn u32_prop(self, name: &str) -> Option<u32> {
        self.prop(name)
            .filter(|value| value.len() == 4)
            .and_then(|value| be32(value, 0))
    }

    fn phandle(self) -> Option<u32> {
        self.u32_prop("phandle")
            .or_else(|| self.u32_prop("linux,phandle"))
    }

    fn is_compatible(self, with: &str) -> bool {
        self.prop("compatible")
            .is_some_and(|value| strings(value).any(|name| name == with))
    }

    fn enabled(self) -> bool {
        matches!(self.str_prop("status"), None | Some("okay" | "ok"))
    }

    /// The cells this node gives its children, and the interrupt parent they inherit.
    fn child_context(self) -> (Cells, Option<u32>) {
        let mut cells = Cells::DEFAULT;
        let mut irq_parent = self.irq_parent;
        for (name, value) in self.props() {
            let number = || {
                Some(value)
                    .filter(|v| v.len() == 4)
                    .and_then(|v| be32(v, 0))
            };
            match name {
                "#address-cells" => cells.address = number().unwrap_or(cells.address),
                "#size-cells" => cells.size = number().unwrap_or(cells.size),
                "interrupt-parent" => irq_parent = number().or(irq_parent),
                _ => {}
            }
        }
        (cells, irq_parent)
    }

    fn children(self) -> Children<'a> {
        let (cells, irq_parent) = self.child_context();
        Children {
            tree: self.tree,
            at: Some(self.body),
            cells,
            irq_parent,
        }
    }

    /// The first child called `name`; without a unit address, `name` also matches `name@...`.
    fn child(self, name: &str) -> Option<Node<'a>> {
        self.children().find(|child| {
            child.name == name
                || (!name.contains('@') && child.name.split('@').next() == Some(name))
        })
    }

    /// All nodes below this one, depth first, with their depth (children are at 1).
    fn descendants(self) -> Descendants<'a> {
        let mut context = [(Cells::DEFAULT, None); MAX_DEPTH + 1];
        context[0] = self.child_context();
        Descendants {
            tree: self.tree,
            at: Some(self.body),
            depth: 0,
            context,
        }
    }
}

struct Children<'a> {
    tree: Tree<'a>,
    at: Option<usize>,
    cells: Cells,
    irq_parent: Option<u32>,
}

impl<'a> Iterator for Children<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Node<'a>> {
        loop {
            let (token, next) = self.tree.token(self.at?)?;
            match token {
                Token::Nop | Token::Prop(..) => self.at = Some(next),
                Token::BeginNode(name) => {
                    self.at = skip_node(self.tree, next);
                    return Some(Node {
                        tree: self.tree,
                        name,
                        body: next,
                        cells: self.cells,
                        irq_parent: self.irq_parent,
                    });
                }
                Token::EndNode | Token::End => {
                    self.at = None;
                    return None;
                }
            }
        }
    }
}

/// The offset after the END_NODE that closes the node whose body starts at `at`.
fn skip_node(tree: Tree<'_>, mut at: usize) -> Option<usize> {
    let mut depth = 1usize;
    loop {
        let (token, next) = tree.token(at)?;
        match token {
            Token::BeginNode(_) => depth += 1,
            Token::EndNode => {
                depth -= 1;
                if depth == 0 {
                    return Some(next);
                }
            }
            Token::End => return None,
            Token::Nop | Token::Prop(..) => {}
        }
        at = next;
    }
}

struct Descendants<'a> {
    tree: Tree<'a>,
    at: Option<usize>,
    depth: usize,
    /// context[d]: cells and interrupt parent for the children of the open node at depth d.
    context: [(Cells, Option<u32>); MAX_DEPTH + 1],
}

impl<'a> Iterator for Descendants<'a> {
    type Item = (usize, Node<'a>);

    fn next(&mut self) -> Option<(usize, Node<'a>)> {
        loop {
            let Some((token, next)) = self.tree.token(self.at?) else {
                self.at = None;
                return None;
            };
            self.at = Some(next);
            match token {
                Token::Nop | Token::Prop(..) => {}
                Token::BeginNode(name) => {
                    let parent = self.context.get(self.depth).copied();
                    let child = self.depth + 1;
                    let (Some((cells, irq_parent)), true) = (parent, child <= MAX_DEPTH) else {
                        self.at = None;
                        return None;
                    };
                    let node = Node {
                        tree: self.tree,
                        name,
                        body: next,
                        cells,
                        irq_parent,
                    };
                    if let Some(slot) = self.context.get_mut(child) {
                        *slot = node.child_context();
                    }
                    self.depth = child;
                    return Some((child, node));
                }
                Token::EndNode if self.depth > 0 => self.depth -= 1,
                Token::EndNode | Token::End => {
                    self.at = None;
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Bytes = std::vec::Vec<u8>;

    static GICV3_SMP4: &[u8] = include_bytes!("../../tests/data/virt-gicv3-smp4.dtb");
    static GICV2_SMP2: &[u8] = include_bytes!("../../tests/data/virt-gicv2-smp2.dtb");
    static EL2_SMP4: &[u8] = include_bytes!("../../tests/data/virt-el2-smp4.dtb");
    static GICV3_SMP8: &[u8] = include_bytes!("../../tests/data/virt-gicv3-smp8.dtb");
    static CLUSTERS: &[u8] = include_bytes!("../../tests/data/virt-clusters.dtb");
    static EDITED: &[u8] = include_bytes!("../../tests/data/virt-edited.dtb");
    static M1_LIKE: &[u8] = include_bytes!("../../tests/data/m1-like.dtb");
    static NO_MEMORY: &[u8] = include_bytes!("../../tests/data/no-memory.dtb");
    static BAD_CPU: &[u8] = include_bytes!("../../tests/data/bad-cpu.dtb");
    static CORRUPT_MAGIC: &[u8] = include_bytes!("../../tests/data/corrupt-magic.dtb");
    static TRUNCATED: &[u8] = include_bytes!("../../tests/data/truncated.dtb");

    const GIB: u64 = 1 << 30;
    const QEMU_TIMER: TimerInfo = TimerInfo {
        secure_phys: 29,
        nonsecure_phys: 30,
        virtual_: 27,
        hyp_phys: 26,
    };
    const QEMU_UART: UartInfo = UartInfo {
        base: 0x0900_0000,
        size: 0x1000,
    };
    const QEMU_GICV3: GicInfo = GicInfo::V3 {
        distributor: Region {
            base: 0x0800_0000,
            size: 0x1_0000,
        },
        redistributors: Region {
            base: 0x080a_0000,
            size: 0xf6_0000,
        },
    };

    fn mpidrs(board: &BoardInfo<'_>) -> std::vec::Vec<u64> {
        board.cpus.iter().map(|cpu| cpu.mpidr).collect()
    }

    /// The facts every unedited QEMU virt blob here shares.
    fn check_virt(board: &BoardInfo<'_>, cpus: u64) {
        assert_eq!(board.model, "linux,dummy-virt");
        assert_eq!(
            board.memory.as_slice(),
            &[Region {
                base: 0x4000_0000,
                size: GIB
            }]
        );
        assert_eq!(board.memory[0].end(), 0x8000_0000);
        assert!(board.reserved.is_empty());
        assert_eq!(mpidrs(board), (0..cpus).collect::<std::vec::Vec<_>>());
        for cpu in &board.cpus {
            assert_eq!(cpu.enable_method, EnableMethod::Psci);
            assert_eq!(cpu.compatible, "arm,cortex-a72");
            assert_eq!(cpu.capacity_dmips_mhz, None);
            assert_eq!(cpu.class, CoreClass::Unknown);
        }
        assert_eq!(board.timer, QEMU_TIMER);
        assert_eq!(board.uart, Some(QEMU_UART));
        assert_eq!(board.stdout_path, "/pl011@9000000");
        assert_eq!(board.bootargs, "");
    }

    #[test]
    fn virt_gicv3_smp4() {
        let board = parse(GICV3_SMP4).unwrap();
        check_virt(&board, 4);
        assert_eq!(board.psci, Some(PsciConduit::Hvc));
        assert_eq!(board.gic, QEMU_GICV3);
        // QEMU 7.2 always writes a cpu-map: socket0/cluster0 holds every core.
        assert!(board.cpus.iter().all(|cpu| cpu.cluster == Some(0)));
        // MPIDR_EL1 as read on core 2: bit 31 is RES1 and must not matter.
        assert_eq!(board.boot_cpu_index(0x8000_0002), Some(2));
        assert_eq!(board.boot_cpu_index(0), Some(0));
        assert_eq!(board.boot_cpu_index(4), None);
    }

    #[test]
    fn virt_gicv2_smp2() {
        let board = parse(GICV2_SMP2).unwrap();
        check_virt(&board, 2);
        assert_eq!(board.psci, Some(PsciConduit::Hvc));
        assert_eq!(
            board.gic,
            GicInfo::V2 {
                distributor: Region {
                    base: 0x0800_0000,
                    size: 0x1_0000
                },
                cpu_interface: Region {
                    base: 0x0801_0000,
                    size: 0x1_0000
                },
            }
        );
    }

    #[test]
    fn virt_el2_uses_smc() {
        let board = parse(EL2_SMP4).unwrap();
        check_virt(&board, 4);
        assert_eq!(board.psci, Some(PsciConduit::Smc));
        assert_eq!(board.gic, QEMU_GICV3);
    }

    #[test]
    fn virt_gicv3_smp8() {
        let board = parse(GICV3_SMP8).unwrap();
        check_virt(&board, 8);
        assert_eq!(board.boot_cpu_index(0x8000_0007), Some(7));
    }

    #[test]
    fn virt_clusters() {
        let board = parse(CLUSTERS).unwrap();
        check_virt(&board, 8);
        let clusters: std::vec::Vec<_> = board.cpus.iter().map(|cpu| cpu.cluster).collect();
        let expect = [0, 0, 0, 0, 1, 1, 1, 1].map(Some);
        assert_eq!(clusters, expect);
    }

    #[test]
    fn m1_like() {
        let board = parse(M1_LIKE).unwrap();
        assert_eq!(
            mpidrs(&board),
            [0, 1, 2, 3, 0x10100, 0x10101, 0x10102, 0x10103]
        );
        for (index, cpu) in board.cpus.iter().enumerate() {
            let e_core = index < 4;
            assert_eq!(cpu.cluster, Some(if e_core { 0 } else { 1 }));
            let (class, capacity, compatible) = if e_core {
                (CoreClass::Efficiency, 714, "apple,icestorm")
            } else {
                (CoreClass::Performance, 1024, "apple,firestorm")
            };
            assert_eq!(cpu.class, class);
            assert_eq!(cpu.capacity_dmips_mhz, Some(capacity));
            assert_eq!(cpu.compatible, compatible);
            assert_eq!(cpu.enable_method, EnableMethod::Psci);
        }
        assert_eq!(board.boot_cpu_index(0x8001_0102), Some(6));
        assert_eq!(board.boot_cpu_index(0x8000_0003), Some(3));
        assert_eq!(board.boot_cpu_index(0x8000_0004), None);
        // The rest is QEMU's.
        assert_eq!(board.gic, QEMU_GICV3);
        assert_eq!(board.timer, QEMU_TIMER);
        assert_eq!(board.uart, Some(QEMU_UART));
        assert_eq!(board.psci, Some(PsciConduit::Hvc));
        assert_eq!(board.memory.len(), 1);
    }

    #[test]
    fn edited_virt() {
        let board = parse(EDITED).unwrap();
        assert_eq!(board.bootargs, "console=ttyAMA0 run=demo");
        assert_eq!(board.stdout_path, "serial0:115200n8");
        assert_eq!(board.uart, Some(QEMU_UART));
        assert_eq!(
            board.reserved.as_slice(),
            &[
                Region {
                    base: 0x4800_0000,
                    size: 0x1_0000
                },
                Region {
                    base: 0x7ff0_0000,
                    size: 0x10_0000
                },
            ]
        );
        let methods: std::vec::Vec<_> = board.cpus.iter().map(|c| c.enable_method).collect();
        assert_eq!(
            methods,
            [
                EnableMethod::Psci,
                EnableMethod::Psci,
                EnableMethod::SpinTable {
                    release_addr: 0x4fff_0000
                },
                EnableMethod::Unsupported,
            ]
        );
        // Equal capacities say nothing about classes.
        for cpu in &board.cpus {
            assert_eq!(cpu.capacity_dmips_mhz, Some(1024));
            assert_eq!(cpu.class, CoreClass::Unknown);
        }
    }

    #[test]
    fn broken_blobs() {
        assert_eq!(
            parse(NO_MEMORY).unwrap_err(),
            DtError::MissingNode("/memory")
        );
        assert_eq!(
            parse(BAD_CPU).unwrap_err(),
            DtError::MissingProperty {
                node: "/cpus/cpu",
                property: "reg"
            }
        );
        assert_eq!(
            parse(CORRUPT_MAGIC).unwrap_err(),
            DtError::BadMagic { found: 0xde0d_feed }
        );
        assert_eq!(
            parse(TRUNCATED).unwrap_err(),
            DtError::Truncated {
                need: GICV3_SMP4.len(),
                have: 1000
            }
        );
        assert_eq!(
            parse(&[]).unwrap_err(),
            DtError::Truncated { need: 40, have: 0 }
        );
        assert_eq!(
            parse(&GICV3_SMP4[..20]).unwrap_err(),
            DtError::Truncated { need: 40, have: 20 }
        );
    }

    #[test]
    fn bootargs_of_rejected_blobs() {
        assert_eq!(chosen_bootargs(EDITED), Some("console=ttyAMA0 run=demo"));
        assert_eq!(chosen_bootargs(GICV3_SMP4), None);
        let blob = Spec {
            timer: None,
            extra: |w| {
                w.begin("chosen").string("bootargs", "semihosting").end();
            },
            ..Spec::default()
        }
        .build();
        assert_eq!(parse(&blob).unwrap_err(), DtError::MissingNode("/timer"));
        assert_eq!(chosen_bootargs(&blob), Some("semihosting"));
        assert_eq!(chosen_bootargs(CORRUPT_MAGIC), None);
        assert_eq!(chosen_bootargs(TRUNCATED), None);
    }

    #[test]
    fn longer_slice_is_fine() {
        let mut blob = GICV3_SMP4.to_vec();
        blob.resize(blob.len() + 4096, 0xff);
        assert_eq!(parse(&blob).unwrap().cpus.len(), 4);
    }

    /// `blob` copied to a 4-aligned buffer (plus `shift` bytes in front).
    fn aligned(blob: &[u8], shift: usize) -> std::vec::Vec<u32> {
        let mut words = vec![0u32; (blob.len() + shift).div_ceil(4) + 1];
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 4)
        };
        bytes[shift..shift + blob.len()].copy_from_slice(blob);
        words
    }

    #[test]
    fn blob_size_reads_the_header() {
        let words = aligned(GICV3_SMP4, 0);
        let size = unsafe { blob_size(words.as_ptr().cast()) };
        assert_eq!(size, Ok(GICV3_SMP4.len()));
        assert_eq!(header_size(GICV3_SMP4), Ok(GICV3_SMP4.len()));
        assert_eq!(
            header_size(&GICV3_SMP4[..HEADER_SIZE]),
            Ok(GICV3_SMP4.len())
        );

        let words = aligned(CORRUPT_MAGIC, 0);
        let size = unsafe { blob_size(words.as_ptr().cast()) };
        assert_eq!(size, Err(DtError::BadMagic { found: 0xde0d_feed }));

        let words = aligned(GICV3_SMP4, 2);
        let size = unsafe { blob_size(words.as_ptr().cast::<u8>().add(2)) };
        assert_eq!(size, Err(DtError::Malformed("blob is not 4-byte aligned")));

        assert_eq!(
            unsafe { blob_size(core::ptr::null()) },
            Err(DtError::NullPointer)
        );
    }

    fn with_word(blob: &[u8], index: usize, value: u32) -> Bytes {
        let mut blob = blob.to_vec();
        blob[index * 4..index * 4 + 4].copy_from_slice(&value.to_be_bytes());
        blob
    }

    #[test]
    fn header_checks() {
        // version 16, version 18 readable as 17, version 18 that is not.
        let v16 = with_word(GICV3_SMP4, 5, 16);
        assert_eq!(
            parse(&v16).unwrap_err(),
            DtError::Unsupported { version: 16 }
        );
        let v18 = with_word(GICV3_SMP4, 5, 18);
        assert!(parse(&v18).is_ok());
        let v18_only = with_word(&v18, 6, 18);
        assert_eq!(
            parse(&v18_only).unwrap_err(),
            DtError::Unsupported { version: 18 }
        );
        let tiny = with_word(GICV3_SMP4, 1, 8);
        assert!(matches!(parse(&tiny), Err(DtError::Malformed(_))));
        let far_strings = with_word(GICV3_SMP4, 3, 0x1_0000);
        assert_eq!(
            parse(&far_strings).unwrap_err(),
            DtError::Malformed("strings block lies outside the blob")
        );
        let long_struct = with_word(GICV3_SMP4, 9, 0x1_0000);
        assert_eq!(
            parse(&long_struct).unwrap_err(),
            DtError::Malformed("structure block lies outside the blob")
        );
    }

    #[test]
    fn errors_display_as_one_line() {
        let errors = [
            DtError::NullPointer,
            DtError::BadMagic { found: 1 },
            DtError::Truncated { need: 2, have: 1 },
            DtError::Unsupported { version: 3 },
            DtError::Malformed("x"),
            DtError::MissingNode("/memory"),
            DtError::MissingProperty {
                node: "/cpus/cpu",
                property: "reg",
            },
            DtError::BadProperty {
                node: "/timer",
                property: "interrupts",
            },
            DtError::TooMany {
                what: "cpus",
                max: 32,
            },
        ];
        for error in errors {
            let text = error.to_string();
            assert!(text.starts_with("device tree: "), "{text}");
            assert!(!text.contains('\n'), "{text}");
        }
        assert_eq!(
            DtError::MissingNode("/memory").to_string(),
            "device tree: no /memory node"
        );
    }

    // -----------------------------------------------------------------------------------------
    // Synthetic blobs for the cases QEMU does not produce.

    /// A minimal flattened-device-tree writer.
    #[derive(Default)]
    struct Writer {
        structs: Bytes,
        strings: Bytes,
        reserved: std::vec::Vec<(u64, u64)>,
    }

    impl Writer {
        fn word(&mut self, value: u32) -> &mut Self {
            self.structs.extend(value.to_be_bytes());
            self
        }

        fn pad(&mut self) {
            while !self.structs.len().is_multiple_of(4) {
                self.structs.push(0);
            }
        }

        fn begin(&mut self, name: &str) -> &mut Self {
            self.word(TOKEN_BEGIN_NODE);
            self.structs.extend(name.as_bytes());
            self.structs.push(0);
            self.pad();
            self
        }

        fn end(&mut self) -> &mut Self {
            self.word(TOKEN_END_NODE)
        }

        fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
            let offset = self.strings.len() as u32;
            self.strings.extend(name.as_bytes());
            self.strings.push(0);
            self.word(TOKEN_PROP).word(value.len() as u32).word(offset);
            self.structs.extend(value);
            self.pad();
            self
        }

        fn cells(&mut self, name: &str, cells: &[u32]) -> &mut Self {
            let bytes: Bytes = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
            self.prop(name, &bytes)
        }

        fn string(&mut self, name: &str, value: &str) -> &mut Self {
            let mut bytes = value.as_bytes().to_vec();
            bytes.push(0);
            self.prop(name, &bytes)
        }

        fn finish(&mut self) -> Bytes {
            self.word(TOKEN_END);
            let rsvmap = HEADER_SIZE.next_multiple_of(8);
            let structs = rsvmap + (self.reserved.len() + 1) * 16;
            let strings = structs + self.structs.len();
            let total = strings + self.strings.len();
            let header = [
                FDT_MAGIC,
                total as u32,
                structs as u32,
                strings as u32,
                rsvmap as u32,
                17,
                16,
                0,
                self.strings.len() as u32,
                self.structs.len() as u32,
            ];
            let mut blob: Bytes = header.iter().flat_map(|w| w.to_be_bytes()).collect();
            blob.resize(rsvmap, 0);
            for &(base, size) in self.reserved.iter().chain([(0, 0)].iter()) {
                blob.extend(base.to_be_bytes());
                blob.extend(size.to_be_bytes());
            }
            blob.extend(&self.structs);
            blob.extend(&self.strings);
            blob
        }
    }

    /// What a synthetic board has; the defaults make a valid 2-cpu GICv3 board.
    struct Spec {
        memory: &'static [u32],
        cpus: usize,
        cpu_address_cells: u32,
        cpu: fn(&mut Writer, usize),
        cpu_reg: bool,
        gic: Option<&'static str>,
        gic_reg: &'static [u32],
        gic_interrupt_cells: u32,
        timer: Option<&'static [u32]>,
        psci: Option<&'static str>,
        extra: fn(&mut Writer),
    }

    const TIMER_CELLS: &[u32] = &[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4];

    impl Default for Spec {
        fn default() -> Self {
            Spec {
                memory: &[0, 0x4000_0000, 0, 0x1000_0000],
                cpus: 2,
                cpu_address_cells: 1,
                cpu: |w, _| {
                    w.string("enable-method", "psci");
                },
                cpu_reg: true,
                gic: Some("arm,gic-v3"),
                gic_reg: &[0, 0x0800_0000, 0, 0x1_0000, 0, 0x080a_0000, 0, 0x2_0000],
                gic_interrupt_cells: 3,
                timer: Some(TIMER_CELLS),
                psci: Some("hvc"),
                extra: |_| {},
            }
        }
    }

    impl Spec {
        fn build(&self) -> Bytes {
            let mut w = Writer::default();
            w.begin("")
                .cells("#address-cells", &[2])
                .cells("#size-cells", &[2])
                .cells("interrupt-parent", &[1])
                .string("model", "synthetic");
            if !self.memory.is_empty() {
                w.begin("memory@40000000")
                    .string("device_type", "memory")
                    .cells("reg", self.memory)
                    .end();
            }
            if let Some(method) = self.psci {
                w.begin("psci")
                    .prop("compatible", b"arm,psci-1.0\0arm,psci\0")
                    .string("method", method)
                    .end();
            }
            if let Some(compatible) = self.gic {
                w.begin("intc@8000000")
                    .string("compatible", compatible)
                    .cells("phandle", &[1])
                    .cells("#interrupt-cells", &[self.gic_interrupt_cells])
                    .cells("reg", self.gic_reg)
                    .end();
            }
            if let Some(interrupts) = self.timer {
                w.begin("timer")
                    .string("compatible", "arm,armv8-timer")
                    .cells("interrupts", interrupts)
                    .end();
            }
            w.begin("pl011@9000000")
                .prop("compatible", b"arm,pl011\0arm,primecell\0")
                .cells("reg", &[0, 0x0900_0000, 0, 0x1000])
                .end();
            w.begin("cpus")
                .cells("#address-cells", &[self.cpu_address_cells])
                .cells("#size-cells", &[0]);
            for index in 0..self.cpus {
                w.begin(&format!("cpu@{index}"))
                    .string("device_type", "cpu")
                    .string("compatible", "arm,cortex-a53");
                if self.cpu_reg {
                    let reg: &[u32] = if self.cpu_address_cells == 2 {
                        &[index as u32 >> 2, index as u32]
                    } else {
                        &[index as u32]
                    };
                    w.cells("reg", reg);
                }
                (self.cpu)(&mut w, index);
                w.end();
            }
            w.end();
            (self.extra)(&mut w);
            w.end().finish()
        }

        fn parse_err(&self) -> DtError {
            parse(&self.build()).unwrap_err()
        }
    }

    #[test]
    fn synthetic_default_board() {
        let blob = Spec::default().build();
        let board = parse(&blob).unwrap();
        assert_eq!(board.model, "synthetic");
        assert_eq!(mpidrs(&board), [0, 1]);
        assert_eq!(board.timer, QEMU_TIMER);
        assert_eq!(board.uart, Some(QEMU_UART));
        assert_eq!(board.stdout_path, "");
        assert!(matches!(board.gic, GicInfo::V3 { .. }));
    }

    #[test]
    fn synthetic_missing_nodes() {
        let spec = Spec {
            memory: &[],
            ..Spec::default()
        };
        assert_eq!(spec.parse_err(), DtError::MissingNode("/memory"));
        let spec = Spec {
            memory: &[0, 0x4000_0000, 0, 0],
            ..Spec::default()
        };
        assert_eq!(spec.parse_err(), DtError::MissingNode("/memory"));
        let spec = Spec {
            cpus: 0,
            ..Spec::default()
        };
        assert_eq!(spec.parse_err(), DtError::MissingNode("/cpus"));
        let spec = Spec {
            gic: None,
            ..Spec::default()
        };
        assert_eq!(
            spec.parse_err(),
            DtError::MissingNode("interrupt-controller")
        );
        let spec = Spec {
            gic: Some("apple,aic"),
            ..Spec::default()
        };
        assert_eq!(
            spec.parse_err(),
            DtError::MissingNode("interrupt-controller")
        );
        let spec = Spec {
            timer: None,
            ..Spec::default()
        };
        assert_eq!(spec.parse_err(), DtError::MissingNode("/timer"));
        let spec = Spec {
            cpu_reg: false,
            ..Spec::default()
        };
        assert_eq!(
            spec.parse_err(),
            DtError::MissingProperty {
                node: "/cpus/cpu",
                property: "reg"
            }
        );
    }

    #[test]
    fn synthetic_psci_and_no_uart() {
        let blob = Spec {
            psci: None,
            ..Spec::default()
        }
        .build();
        assert_eq!(parse(&blob).unwrap().psci, None);
        let spec = Spec {
            psci: Some("svc"),
            ..Spec::default()
        };
        assert_eq!(
            spec.parse_err(),
            DtError::BadProperty {
                node: "/psci",
                property: "method"
            }
        );
    }

    #[test]
    fn synthetic_gics() {
        for compatible in ["arm,cortex-a15-gic", "arm,gic-400"] {
            let blob = Spec {
                gic: Some(compatible),
                gic_reg: &[0, 0x2c00_1000, 0, 0x1000, 0, 0x2c00_2000, 0, 0x2000],
                ..Spec::default()
            }
            .build();
            assert_eq!(
                parse(&blob).unwrap().gic,
                GicInfo::V2 {
                    distributor: Region {
                        base: 0x2c00_1000,
                        size: 0x1000
                    },
                    cpu_interface: Region {
                        base: 0x2c00_2000,
                        size: 0x2000
                    },
                }
            );
        }
        let bad = DtError::BadProperty {
            node: "interrupt-controller",
            property: "reg",
        };
        let one_entry = Spec {
            gic_reg: &[0, 0x0800_0000, 0, 0x1_0000],
            ..Spec::default()
        };
        assert_eq!(one_entry.parse_err(), bad);
        let odd = Spec {
            gic_reg: &[0, 0x0800_0000, 0, 0x1_0000, 0],
            ..Spec::default()
        };
        assert_eq!(odd.parse_err(), bad);
    }

    #[test]
    fn synthetic_timer_checks() {
        let bad = DtError::BadProperty {
            node: "/timer",
            property: "interrupts",
        };
        for interrupts in [
            &TIMER_CELLS[..9],                         // three entries
            &TIMER_CELLS[..11],                        // not whole entries
            &[0, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4], // an SPI
            &[1, 16, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4], // no such PPI
            &[13, 14, 11, 10],                         // one-cell specifiers
        ] {
            let spec = Spec {
                timer: Some(interrupts),
                ..Spec::default()
            };
            assert_eq!(spec.parse_err(), bad, "{interrupts:?}");
        }
        // The interrupt parent (inherited from the root) does not take 3-cell specifiers.
        let spec = Spec {
            gic_interrupt_cells: 2,
            ..Spec::default()
        };
        assert_eq!(spec.parse_err(), bad);
        // Five entries (with the EL2 virtual timer) are fine.
        let blob = Spec {
            timer: Some(&[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4, 1, 12, 4]),
            ..Spec::default()
        }
        .build();
        assert_eq!(parse(&blob).unwrap().timer, QEMU_TIMER);
    }

    #[test]
    fn synthetic_cpus() {
        // Two-cell reg, as on Apple.
        let blob = Spec {
            cpu_address_cells: 2,
            cpus: 5,
            ..Spec::default()
        }
        .build();
        assert_eq!(mpidrs(&parse(&blob).unwrap()), [0, 1, 2, 3, 0x1_0000_0004]);
        // Too many.
        let spec = Spec {
            cpus: crate::MAX_CORES + 1,
            ..Spec::default()
        };
        assert_eq!(
            spec.parse_err(),
            DtError::TooMany {
                what: "cpus",
                max: crate::MAX_CORES
            }
        );
        let blob = Spec {
            cpus: crate::MAX_CORES,
            ..Spec::default()
        }
        .build();
        assert_eq!(parse(&blob).unwrap().cpus.len(), crate::MAX_CORES);
        // Spin-table without a release address, or with the loader's 0 placeholder.
        let spec = Spec {
            cpu: |w, _| {
                w.string("enable-method", "spin-table");
            },
            ..Spec::default()
        };
        assert_eq!(
            spec.parse_err(),
            DtError::MissingProperty {
                node: "/cpus/cpu",
                property: "cpu-release-addr"
            }
        );
        let spec = Spec {
            cpu: |w, _| {
                w.string("enable-method", "spin-table")
                    .cells("cpu-release-addr", &[0, 0]);
            },
            ..Spec::default()
        };
        assert_eq!(
            spec.parse_err(),
            DtError::BadProperty {
                node: "/cpus/cpu",
                property: "cpu-release-addr"
            }
        );
        // Duplicate MPIDRs.
        let spec = Spec {
            cpu_address_cells: 2,
            cpu: |w, _| {
                w.cells("reg", &[0, 7]);
            },
            cpu_reg: false,
            ..Spec::default()
        };
        assert_eq!(
            spec.parse_err(),
            DtError::BadProperty {
                node: "/cpus/cpu",
                property: "reg"
            }
        );
        // Short reg.
        let spec = Spec {
            cpu_address_cells: 2,
            cpu: |w, i| {
                w.cells("reg", &[i as u32]);
            },
            cpu_reg: false,
            ..Spec::default()
        };
        assert_eq!(
            spec.parse_err(),
            DtError::BadProperty {
                node: "/cpus/cpu",
                property: "reg"
            }
        );
    }

    #[test]
    fn synthetic_classes_from_capacity() {
        let blob = Spec {
            cpus: 3,
            cpu: |w, i| {
                w.cells("capacity-dmips-mhz", &[[400, 1024, 700][i]]);
            },
            ..Spec::default()
        }
        .build();
        let board = parse(&blob).unwrap();
        let classes: std::vec::Vec<_> = board.cpus.iter().map(|c| c.class).collect();
        assert_eq!(
            classes,
            [
                CoreClass::Efficiency,
                CoreClass::Performance,
                CoreClass::Efficiency
            ]
        );
    }

    #[test]
    fn synthetic_memory() {
        let blob = Spec {
            memory: &[1, 0, 0, 0x1000, 0, 0x4000_0000, 0, 0x1000_0000],
            ..Spec::default()
        }
        .build();
        assert_eq!(
            parse(&blob).unwrap().memory.as_slice(),
            &[
                Region {
                    base: 0x4000_0000,
                    size: 0x1000_0000
                },
                Region {
                    base: 1 << 32,
                    size: 0x1000
                },
            ]
        );
        let bad = DtError::BadProperty {
            node: "/memory",
            property: "reg",
        };
        let odd = Spec {
            memory: &[0, 0x4000_0000, 0],
            ..Spec::default()
        };
        assert_eq!(odd.parse_err(), bad);
        let wraps = Spec {
            memory: &[0xffff_ffff, 0xffff_0000, 0, 0x1_0000],
            ..Spec::default()
        };
        assert_eq!(wraps.parse_err(), bad);
        const MANY: [u32; 4 * (MAX_MEMORY_REGIONS + 1)] = {
            let mut cells = [0; 4 * (MAX_MEMORY_REGIONS + 1)];
            let mut i = 0;
            while i <= MAX_MEMORY_REGIONS {
                cells[4 * i] = i as u32 + 1;
                cells[4 * i + 3] = 0x1000;
                i += 1;
            }
            cells
        };
        let many = Spec {
            memory: &MANY,
            ..Spec::default()
        };
        assert_eq!(
            many.parse_err(),
            DtError::TooMany {
                what: "memory regions",
                max: MAX_MEMORY_REGIONS
            }
        );
    }

    #[test]
    fn synthetic_uart_selection() {
        // stdout-path names a disabled-looking non-PL011 node: fall back to the PL011.
        let blob = Spec {
            extra: |w| {
                w.begin("serial@1000")
                    .string("compatible", "ns16550a")
                    .cells("reg", &[0, 0x1000, 0, 0x100])
                    .end()
                    .begin("chosen")
                    .string("stdout-path", "/serial@1000")
                    .end();
            },
            ..Spec::default()
        }
        .build();
        assert_eq!(parse(&blob).unwrap().uart, Some(QEMU_UART));
        // stdout-path names a second PL011 through an alias.
        let blob = Spec {
            extra: |w| {
                w.begin("soc")
                    .cells("#address-cells", &[1])
                    .cells("#size-cells", &[1])
                    .begin("uart@2000")
                    .string("compatible", "arm,pl011")
                    .cells("reg", &[0x2000, 0x100])
                    .end()
                    .end()
                    .begin("aliases")
                    .string("serial1", "/soc/uart@2000")
                    .end()
                    .begin("chosen")
                    .string("stdout-path", "serial1:9600")
                    .string("bootargs", "a b")
                    .end();
            },
            ..Spec::default()
        }
        .build();
        let board = parse(&blob).unwrap();
        assert_eq!(
            board.uart,
            Some(UartInfo {
                base: 0x2000,
                size: 0x100
            })
        );
        assert_eq!(board.bootargs, "a b");
        // A disabled PL011 is skipped by the fallback, and no UART is fine.
        let blob = Spec {
            extra: |w| {
                w.begin("pl011@9100000")
                    .string("compatible", "arm,pl011")
                    .string("status", "disabled")
                    .cells("reg", &[0, 0x0910_0000, 0, 0x1000])
                    .end();
            },
            ..Spec::default()
        }
        .build();
        assert_eq!(parse(&blob).unwrap().uart, Some(QEMU_UART));
    }

    #[test]
    fn synthetic_cpu_map_with_sockets() {
        let blob = Spec {
            cpus: 4,
            cpu: |w, i| {
                w.string("enable-method", "psci")
                    .cells("phandle", &[0x100 + i as u32]);
            },
            extra: |w| {
                // A cpu-map outside /cpus is not one; the real one is written below by hand.
                w.begin("cpu-map").end();
            },
            ..Spec::default()
        }
        .build();
        assert!(
            parse(&blob)
                .unwrap()
                .cpus
                .iter()
                .all(|c| c.cluster.is_none())
        );

        // socket0/cluster0 {core0 core1} socket1/cluster0 {core0} and cpu 3 unnamed.
        let mut w = Writer::default();
        w.begin("")
            .begin("memory")
            .string("device_type", "memory")
            .cells("reg", &[0, 0x4000_0000, 0x1000])
            .end()
            .begin("intc")
            .string("compatible", "arm,gic-400")
            .cells("reg", &[0, 0, 0x1000, 0, 0x1000, 0x1000])
            .end()
            .begin("timer")
            .string("compatible", "arm,armv7-timer")
            .cells("interrupts", TIMER_CELLS)
            .end()
            .begin("cpus")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[0])
            .begin("cpu-map")
            .begin("socket0")
            .begin("cluster0")
            .begin("core0")
            .cells("cpu", &[0x10])
            .end()
            .begin("core1")
            .cells("cpu", &[0x11])
            .end()
            .end()
            .end()
            .begin("socket1")
            .begin("cluster0")
            .begin("core0")
            .begin("thread0")
            .cells("cpu", &[0x12])
            .end()
            .end()
            .end()
            .end()
            .end();
        for i in 0..4u32 {
            w.begin(&format!("cpu@{i}"))
                .string("device_type", "cpu")
                .cells("reg", &[i])
                .cells("phandle", &[0x10 + i])
                .end();
        }
        let blob = w.end().end().finish();
        let board = parse(&blob).unwrap();
        let clusters: std::vec::Vec<_> = board.cpus.iter().map(|c| c.cluster).collect();
        assert_eq!(clusters, [Some(0), Some(0), Some(1), None]);
        // Defaults: no interrupt-parent anywhere, #address-cells 2 / #size-cells 1 at the root.
        assert_eq!(
            board.memory.as_slice(),
            &[Region {
                base: 0x4000_0000,
                size: 0x1000
            }]
        );
        assert_eq!(board.psci, None);
        assert_eq!(board.cpus[0].enable_method, EnableMethod::Unsupported);
    }

    #[test]
    fn synthetic_structure_errors() {
        let malformed = |blob: Bytes| match parse(&blob) {
            Err(DtError::Malformed(what)) => what,
            other => panic!("expected Malformed, got {other:?}"),
        };
        // Property after a child node.
        let blob = Spec {
            extra: |w| {
                w.string("late", "x");
            },
            ..Spec::default()
        }
        .build();
        assert_eq!(malformed(blob), "property after a child node");
        // Too deep.
        let mut w = Writer::default();
        for _ in 0..=MAX_DEPTH {
            w.begin("n");
        }
        for _ in 0..=MAX_DEPTH {
            w.end();
        }
        assert_eq!(malformed(w.finish()), "nodes are nested too deeply");
        // Unbalanced.
        let blob = Writer::default().begin("").finish();
        assert_eq!(malformed(blob), "structure block ends inside a node");
        let blob = Writer::default().begin("").end().end().finish();
        assert_eq!(malformed(blob), "end of a node that was not begun");
        let blob = Writer::default().begin("").end().begin("").end().finish();
        assert_eq!(malformed(blob), "more than one root node");
        let blob = Writer::default().finish();
        assert_eq!(malformed(blob), "no root node");
        let blob = Writer::default().word(7).finish();
        assert_eq!(malformed(blob), "unknown token in the structure block");
        // No END token.
        let mut blob = Spec::default().build();
        let structs_size = u32::from_be_bytes(blob[36..40].try_into().unwrap());
        blob[36..40].copy_from_slice(&(structs_size - 4).to_be_bytes());
        assert_eq!(malformed(blob), "structure block ends inside a token");
        // A memory reservation block that runs into the end of the blob.
        let blob = Spec::default().build();
        let unterminated = blob.len() as u32 - 8; // header word 4: off_mem_rsvmap
        assert_eq!(
            malformed(with_word(&blob, 4, unterminated)),
            "memory reservation block is not terminated"
        );
    }

    #[test]
    fn memreserve_entries() {
        let mut w = Writer {
            reserved: vec![(0x4800_0000, 0x1000), (0x4900_0000, 0)],
            ..Writer::default()
        };
        w.begin("")
            .begin("memory")
            .string("device_type", "memory")
            .cells("reg", &[0, 0x4000_0000, 0x1000])
            .end()
            .begin("intc")
            .string("compatible", "arm,gic-v3")
            .cells("reg", &[0, 0, 0x1000, 0, 0x1000, 0x1000])
            .end()
            .begin("timer")
            .string("compatible", "arm,armv8-timer")
            .cells("interrupts", TIMER_CELLS)
            .end()
            .begin("cpus")
            .cells("#address-cells", &[1])
            .cells("#size-cells", &[0])
            .begin("cpu@0")
            .string("device_type", "cpu")
            .cells("reg", &[0])
            .end()
            .end()
            .end();
        let board_blob = w.finish();
        let board = parse(&board_blob).unwrap();
        assert_eq!(
            board.reserved.as_slice(),
            &[Region {
                base: 0x4800_0000,
                size: 0x1000
            }]
        );
    }

    // -----------------------------------------------------------------------------------------
    // Robustness: no input may panic.

    use crate::test_rng::Rng;

    /// Parses and, on success, touches everything (so lazily wrong data would show).
    fn exercise(blob: &[u8]) -> bool {
        match parse(blob) {
            Ok(board) => {
                let _ = format!("{board:?}");
                let _ = board.boot_cpu_index(0);
                true
            }
            Err(error) => {
                let _ = error.to_string();
                let _ = chosen_bootargs(blob);
                false
            }
        }
    }

    #[test]
    fn every_prefix() {
        let blob = GICV2_SMP2;
        for len in 0..blob.len() {
            assert!(parse(&blob[..len]).is_err());
            // The same prefix with a header that claims it is whole (blocks cut to fit).
            if len >= HEADER_SIZE {
                let mut cut = blob[..len].to_vec();
                cut[4..8].copy_from_slice(&(len as u32).to_be_bytes());
                for (offset, size) in [(2, 9), (3, 8)] {
                    let start = be32(&cut, offset * 4).unwrap() as usize;
                    let size_now = be32(&cut, size * 4).unwrap() as usize;
                    let fits = size_now.min(len.saturating_sub(start)) as u32;
                    cut[size * 4..size * 4 + 4].copy_from_slice(&fits.to_be_bytes());
                }
                exercise(&cut);
            }
        }
        assert!(exercise(blob));
    }

    /// Parses `cases` copies of `blob` with up to `max_changes` random changes in its first
    /// `within` bytes; returns how many still parsed.
    fn corrupt(blob: &[u8], seed: u64, cases: usize, max_changes: usize, within: usize) -> usize {
        let mut rng = Rng(seed);
        let mut ok = 0;
        for _ in 0..cases {
            let mut bad = blob.to_vec();
            for _ in 0..1 + rng.index(max_changes) {
                let at = rng.index(within.min(bad.len()));
                match rng.index(4) {
                    // A random byte.
                    0 | 1 => bad[at] = rng.next() as u8,
                    // An aligned word set to a token, a small number or a large one.
                    2 => {
                        let at = at & !3;
                        let value = [0u32, 1, 2, 3, 4, 9, 0xffff_ffff, 0x8000_0000][rng.index(8)];
                        if at + 4 <= bad.len() {
                            bad[at..at + 4].copy_from_slice(&value.to_be_bytes());
                        }
                    }
                    // One bit.
                    _ => bad[at] ^= 1 << rng.index(8),
                }
            }
            if exercise(&bad) {
                ok += 1;
            }
        }
        ok
    }

    #[test]
    fn single_byte_corruption() {
        let mut rng = Rng(0x5eed);
        let blob = GICV3_SMP4;
        let mut ok = 0;
        for _ in 0..3000 {
            let mut bad = blob.to_vec();
            let at = rng.index(bad.len());
            bad[at] = bad[at].wrapping_add(1 + rng.index(255) as u8);
            if exercise(&bad) {
                ok += 1;
            }
        }
        // Most bytes are property values that do not matter; structure bytes do.
        assert!(ok > 0 && ok < 3000, "{ok}");
    }

    #[test]
    fn random_corruption() {
        for (seed, blob) in [(1, M1_LIKE), (2, EDITED), (3, GICV2_SMP2), (4, CLUSTERS)] {
            corrupt(blob, seed, 1500, 4, blob.len());
        }
        // Corruption confined to the header and the first nodes, where it matters most.
        corrupt(GICV3_SMP4, 5, 1000, 2, 512);
    }
}
