//! AArch64 stage-1 translation tables for the EL1&0 regime through `TTBR0_EL1`: 4 KiB granule,
//! 48-bit virtual addresses (`TCR_EL1.T0SZ = 16`), four levels L0..L3.
//!
//! Why: exclusive loads/stores (every lock and atomic) are only reliable on Normal cacheable
//! memory, so the kernel turns the MMU on early with an identity map (VA == PA) that also gives
//! W^X (text RX, rodata R, data RW + execute-never) and Device-nGnRnE for MMIO. Later the same
//! tables grow per-process stacks one page at a time ([`PageTables::map_page`] /
//! [`PageTables::unmap_page`]).
//!
//! This module only builds and reads descriptors in memory. Writing `MAIR_EL1` ([`MAIR_VALUE`]),
//! `TCR_EL1` ([`tcr_value`]) and `TTBR0_EL1` ([`PageTables::root_address`]), barriers and TLB
//! maintenance are the arch code's job. Note [`TCR_VALUE_BASE`] makes table walks cacheable
//! (inner/outer write-back, inner shareable): tables written while the MMU (and so the data
//! cache) is off must have their lines invalidated to the PoC (`dc ivac`) before the MMU is
//! turned on, or the walker may hit stale cache lines (silicon does this; QEMU does not).
//!
//! # Invariants
//!
//! - Every table is one 4 KiB-aligned [`Table`] whose address *is* its physical address (the
//!   tables themselves are identity mapped, or the MMU is off): the same number is written into
//!   a table descriptor and dereferenced by the software walk.
//! - The tables form a tree: each table is referenced by exactly one table descriptor (or is
//!   the root). Tables are never freed or unlinked; a table may be left empty by
//!   [`PageTables::unmap_page`] or by a failed [`PageTables::map`] and is reused later.
//! - A valid entry is never overwritten with another valid entry: `map` writes only invalid
//!   entries and `unmap_page` writes only zero. So no break-before-make sequence is ever
//!   needed; an invalid->valid change needs `dsb ishst; isb` before the mapping is used, a
//!   valid->invalid change needs `dsb ishst; tlbi vae1is; dsb ish; isb` before the frame is
//!   reused. Both are the caller's.
//! - Every leaf is kernel-only and W^X: `AP[1] = 0` (no EL0 access), `UXN = 1`, `PXN = 0`
//!   only for [`Access::ReadExecute`], which is read-only; `AF = 1`, `nG = 0`.
//! - Each descriptor is written with one aligned 64-bit volatile store, so a hardware walker
//!   running concurrently sees the old or the new descriptor, never a torn one.

use core::fmt;
use core::ptr::NonNull;

/// Entries per table: 4 KiB / 8 bytes.
const ENTRIES: usize = 512;
/// The page size (translation granule).
const PAGE: u64 = 4096;
/// Virtual addresses translated through `TTBR0_EL1` are `[0, VA_LIMIT)` (T0SZ = 16).
pub const VA_LIMIT: u64 = 1 << 48;
/// Output addresses this descriptor format can hold (bits `[47:12]`; no FEAT_LPA/LPA2).
pub const PA_LIMIT: u64 = 1 << 48;

// Descriptor bits (Arm ARM D8.3, VMSAv8-64 descriptor formats, 4 KiB granule, 48-bit OA).
/// Bit 0: the descriptor is valid.
const DESC_VALID: u64 = 1 << 0;
/// Bit 1: at L0..L2 set = table descriptor, clear = block (L1/L2 only); at L3 it must be set
/// for a page descriptor (0b01 at L3 is reserved and walks as invalid).
const DESC_TABLE_OR_PAGE: u64 = 1 << 1;
/// `AttrIndx[2:0]`, bits `[4:2]`: index into `MAIR_EL1`.
const ATTR_INDX_SHIFT: u32 = 2;
const ATTR_INDX_MASK: u64 = 0b111 << ATTR_INDX_SHIFT;
/// `AP[1]`, bit 6: EL0 access. Always 0 here (kernel only).
const AP_EL0: u64 = 1 << 6;
/// `AP[2]`, bit 7: read-only.
const AP_READ_ONLY: u64 = 1 << 7;
/// `SH[1:0]`, bits `[9:8]` = 0b11: Inner Shareable. (Ignored for Device memory, which is always
/// treated as Outer Shareable; set anyway, as Linux does.)
const SH_INNER: u64 = 0b11 << 8;
/// AF, bit 10: access flag. Always 1 so no access-flag faults are taken.
const AF: u64 = 1 << 10;
/// nG, bit 11: not global. Always 0 (global) here.
const NG: u64 = 1 << 11;
/// PXN, bit 53: privileged (EL1) execute-never.
const PXN: u64 = 1 << 53;
/// UXN, bit 54: unprivileged (EL0) execute-never. Always 1 here.
const UXN: u64 = 1 << 54;
/// Output address / next-level table address, bits `[47:12]`.
const OA_MASK: u64 = 0x0000_ffff_ffff_f000;

// MAIR_EL1 attribute indices and encodings.
const MAIR_IDX_NORMAL: u64 = 0;
const MAIR_IDX_DEVICE: u64 = 1;
/// Normal memory, inner and outer write-back non-transient, read- and write-allocate.
const MAIR_NORMAL_WB_RWA: u64 = 0xff;
/// Device-nGnRnE (Apple's MMIO needs nGnRnE; posted writes fault there).
const MAIR_DEVICE_NGNRNE: u64 = 0x00;

/// The value for `MAIR_EL1`: attribute 0 = 0xff (Normal WB RW-allocate), attribute 1 = 0x00
/// (Device-nGnRnE), the rest 0x00 (unused).
pub const MAIR_VALUE: u64 =
    (MAIR_NORMAL_WB_RWA << (8 * MAIR_IDX_NORMAL)) | (MAIR_DEVICE_NGNRNE << (8 * MAIR_IDX_DEVICE));

// TCR_EL1 fields.
/// T0SZ, bits `[5:0]`: 64 - 48 = 16.
const TCR_T0SZ: u64 = 64 - 48;
/// IRGN0, bits `[9:8]` = 0b01: table walks are inner write-back read/write-allocate.
const TCR_IRGN0_WBWA: u64 = 0b01 << 8;
/// ORGN0, bits `[11:10]` = 0b01: table walks are outer write-back read/write-allocate.
const TCR_ORGN0_WBWA: u64 = 0b01 << 10;
/// SH0, bits `[13:12]` = 0b11: table walks are inner shareable.
const TCR_SH0_INNER: u64 = 0b11 << 12;
/// TG0, bits `[15:14]` = 0b00: 4 KiB granule for TTBR0.
const TCR_TG0_4K: u64 = 0b00 << 14;
/// T1SZ, bits `[21:16]`: 16. TTBR1 is disabled by EPD1; a legal size avoids an IMPLEMENTATION
/// DEFINED out-of-range T1SZ.
const TCR_T1SZ: u64 = (64 - 48) << 16;
/// EPD1, bit 23: no table walks through TTBR1_EL1 (upper-half addresses fault).
const TCR_EPD1: u64 = 1 << 23;
/// TG1, bits `[31:30]` = 0b10: 4 KiB. (TG1 = 0b00 is *reserved*, unlike TG0 = 0b00.)
const TCR_TG1_4K: u64 = 0b10 << 30;
/// IPS, bits `[34:32]`.
const TCR_IPS_SHIFT: u32 = 32;

/// `TCR_EL1` without IPS: T0SZ = 16, IRGN0 = ORGN0 = write-back write-allocate, SH0 inner
/// shareable, TG0 = 4 KiB, EPD1 = 1 (plus the harmless T1SZ = 16 and TG1 = 4 KiB so that no
/// field holds a reserved value). EPD0 = 0, A1 = 0, AS = 0 (8-bit ASIDs), TBI0 = 0, no hardware
/// AF/dirty management. Use [`tcr_value`] to add IPS.
pub const TCR_VALUE_BASE: u64 = TCR_T0SZ
    | TCR_IRGN0_WBWA
    | TCR_ORGN0_WBWA
    | TCR_SH0_INNER
    | TCR_TG0_4K
    | TCR_T1SZ
    | TCR_EPD1
    | TCR_TG1_4K;

/// The IPS encoding for a `ID_AA64MMFR0_EL1.PARange` field (bits `[3:0]`, already shifted down),
/// clamped to 0b101 (48 bits): the descriptors built here hold 48-bit output addresses only.
const fn ips_for(pa_range_field: u64) -> u64 {
    let field = pa_range_field & 0xf;
    if field > 0b101 { 0b101 } else { field }
}

/// The full `TCR_EL1` value: [`TCR_VALUE_BASE`] with IPS set from `ID_AA64MMFR0_EL1.PARange`
/// (pass the 4-bit field, i.e. `mmfr0 & 0xf`). PARange and IPS share encodings 0..=5
/// (32/36/40/42/44/48 bits); larger values (52/56 bits, reserved) are clamped to 48 bits.
pub const fn tcr_value(pa_range_field: u64) -> u64 {
    TCR_VALUE_BASE | (ips_for(pa_range_field) << TCR_IPS_SHIFT)
}

/// Number of physical address bits usable with [`tcr_value`]`(pa_range_field)`: memory (or
/// MMIO) at or above `1 << bits` must not be mapped; check the DTB's ranges against it.
pub const fn physical_address_bits(pa_range_field: u64) -> u32 {
    match ips_for(pa_range_field) {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        _ => 48,
    }
}

// Compile-time check of the leaf invariants: kernel only (AP[1] = 0), global (nG = 0), AF = 1,
// UXN = 1, and W^X: writable implies PXN, Device implies PXN.
const _: () = {
    let mut i = 0;
    while i < Attributes::ALL.len() {
        let bits = Attributes::ALL[i].leaf_bits();
        assert!(bits & (AP_EL0 | NG) == 0);
        assert!(bits & AF != 0 && bits & UXN != 0);
        assert!(bits & AP_READ_ONLY != 0 || bits & PXN != 0);
        assert!(bits & ATTR_INDX_MASK != MAIR_IDX_DEVICE << ATTR_INDX_SHIFT || bits & PXN != 0);
        assert!(bits & (OA_MASK | DESC_VALID | DESC_TABLE_OR_PAGE) == 0);
        i += 1;
    }
};

/// One translation table: 512 descriptors, 4 KiB, 4 KiB aligned (the architecture requires a
/// table to be aligned to its size).
#[repr(C, align(4096))]
pub struct Table {
    entries: [u64; ENTRIES],
}

const _: () = assert!(core::mem::size_of::<Table>() == PAGE as usize);
const _: () = assert!(core::mem::align_of::<Table>() == PAGE as usize);

impl Table {
    /// A table of invalid entries.
    pub const fn empty() -> Self {
        Self {
            entries: [0; ENTRIES],
        }
    }
}

/// The memory type of a mapping (the MAIR attribute index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemoryKind {
    /// MAIR index 0 = 0xff: write-back, read/write-allocate, inner and outer; inner shareable.
    Normal,
    /// MAIR index 1 = 0x00: Device-nGnRnE. Always execute-never, whatever the [`Access`].
    Device,
}

/// What EL1 may do with a mapping. EL0 gets nothing. There is no read-write-execute: W^X by
/// construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Read and execute at EL1 (text). Read-only. For [`MemoryKind::Device`] execute is
    /// dropped: it is mapped (and [`PageTables::translate`] reports it) as [`Access::ReadOnly`].
    ReadExecute,
    /// Read only, execute-never (rodata).
    ReadOnly,
    /// Read and write, execute-never (data, bss, stacks, heaps, MMIO).
    ReadWrite,
}

/// Memory type and permissions of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attributes {
    pub kind: MemoryKind,
    pub access: Access,
}

impl Attributes {
    /// Kernel text: Normal, read + execute.
    pub const TEXT: Self = Self {
        kind: MemoryKind::Normal,
        access: Access::ReadExecute,
    };
    /// Kernel rodata: Normal, read-only, execute-never.
    pub const RODATA: Self = Self {
        kind: MemoryKind::Normal,
        access: Access::ReadOnly,
    };
    /// Data, bss, stacks, free RAM: Normal, read-write, execute-never.
    pub const DATA: Self = Self {
        kind: MemoryKind::Normal,
        access: Access::ReadWrite,
    };
    /// MMIO: Device-nGnRnE, read-write, execute-never.
    pub const DEVICE: Self = Self {
        kind: MemoryKind::Device,
        access: Access::ReadWrite,
    };

    /// The attribute bits of a block or page descriptor (everything but type and address).
    const fn leaf_bits(self) -> u64 {
        // Common to every leaf: AF = 1, UXN = 1, AP[1] = 0 (no EL0), nG = 0, SH inner.
        let mut bits = AF | UXN | SH_INNER;
        bits |= match self.kind {
            MemoryKind::Normal => MAIR_IDX_NORMAL << ATTR_INDX_SHIFT,
            // Never executable, even when ReadExecute is asked for.
            MemoryKind::Device => (MAIR_IDX_DEVICE << ATTR_INDX_SHIFT) | PXN,
        };
        bits |= match self.access {
            // Read-only is what makes text W^X; PXN stays clear (unless Device, above).
            Access::ReadExecute => AP_READ_ONLY,
            Access::ReadOnly => AP_READ_ONLY | PXN,
            Access::ReadWrite => PXN,
        };
        bits
    }

    /// Every combination, for the compile-time invariant checks below.
    const ALL: [Self; 6] = [
        Self::TEXT,
        Self::RODATA,
        Self::DATA,
        Self {
            kind: MemoryKind::Device,
            access: Access::ReadExecute,
        },
        Self {
            kind: MemoryKind::Device,
            access: Access::ReadOnly,
        },
        Self::DEVICE,
    ];

    /// Decodes the attribute bits of a block or page descriptor written by `leaf_bits`.
    /// AttrIndx other than 1 reads as Normal; writable reads as ReadWrite whatever PXN says.
    const fn from_leaf(desc: u64) -> Self {
        let kind = if (desc & ATTR_INDX_MASK) >> ATTR_INDX_SHIFT == MAIR_IDX_DEVICE {
            MemoryKind::Device
        } else {
            MemoryKind::Normal
        };
        let access = if desc & AP_READ_ONLY == 0 {
            Access::ReadWrite
        } else if desc & PXN == 0 {
            Access::ReadExecute
        } else {
            Access::ReadOnly
        };
        Self { kind, access }
    }
}

/// Where new tables come from (the frame allocator, or a static pool before it exists).
pub trait TableAllocator {
    /// One table, or `None` when out of memory. Its address must be its physical address
    /// (identity map, or MMU off) and below 2^48; it should be zeroed (it is zeroed again before
    /// use, so stale contents are harmless). Tables are never given back.
    fn allocate_table(&mut self) -> Option<NonNull<Table>>;
}

/// Why a mapping was refused. After any error the tables map exactly what they mapped
/// before the call (only empty intermediate tables may have been added).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The [`TableAllocator`] returned `None`.
    OutOfTables,
    /// `va` (the first conflicting address of the requested range) is already covered by a
    /// valid block or page.
    AlreadyMapped { va: u64 },
    /// `va`, `pa` or `size` is not a multiple of 4 KiB.
    Misaligned { va: u64, pa: u64, size: u64 },
    /// The range starting at `va` leaves the 48-bit virtual address space of TTBR0, or its
    /// physical counterpart leaves the 48-bit output address space.
    OutOfRange { va: u64 },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MapError::OutOfTables => f.write_str("out of memory for translation tables"),
            MapError::AlreadyMapped { va } => {
                write!(f, "virtual address {va:#x} is already mapped")
            }
            MapError::Misaligned { va, pa, size } => write!(
                f,
                "mapping {va:#x} -> {pa:#x} ({size:#x} bytes) is not 4 KiB aligned"
            ),
            MapError::OutOfRange { va } => {
                write!(f, "mapping at {va:#x} is outside the 48-bit address space")
            }
        }
    }
}

impl core::error::Error for MapError {}

/// The result of a software walk: what the MMU would do for one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address, including the offset inside the page or block.
    pub pa: u64,
    pub attrs: Attributes,
    /// Level of the leaf: 1 (1 GiB block), 2 (2 MiB block) or 3 (4 KiB page).
    pub level: u8,
}

/// A decoded descriptor at a given level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Entry {
    /// Faults: invalid, or a reserved encoding (block at L0, 0b01 at L3).
    Invalid,
    /// Table descriptor (L0..L2) pointing at the next level.
    Table(NonNull<Table>),
    /// Block (L1, L2) or page (L3) descriptor: the raw descriptor.
    Leaf(u64),
}

/// log2 of the size one entry maps at `level`: 39, 30, 21, 12.
const fn shift(level: u8) -> u32 {
    39 - 9 * level as u32
}

/// Bytes one entry maps at `level`: 512 GiB, 1 GiB, 2 MiB, 4 KiB.
const fn entry_size(level: u8) -> u64 {
    1 << shift(level)
}

/// Index of `va` in a table at `level`.
const fn index(va: u64, level: u8) -> usize {
    ((va >> shift(level)) as usize) & (ENTRIES - 1)
}

/// The first address after the `level` entry that covers `va`.
const fn next_entry_start(va: u64, level: u8) -> u64 {
    (va | (entry_size(level) - 1)) + 1
}

fn decode(desc: u64, level: u8) -> Entry {
    if desc & DESC_VALID == 0 {
        return Entry::Invalid;
    }
    let table_or_page = desc & DESC_TABLE_OR_PAGE != 0;
    match (level, table_or_page) {
        (3, true) | (1 | 2, false) => Entry::Leaf(desc),
        (0..=2, true) => {
            let table = core::ptr::with_exposed_provenance_mut::<Table>((desc & OA_MASK) as usize);
            // A table at physical address 0 can't come from a `TableAllocator` (NonNull).
            Entry::Table(NonNull::new(table).expect("table descriptor with address 0"))
        }
        // L0 block (4 KiB granule) and L3 0b01 are reserved: the walk faults.
        _ => Entry::Invalid,
    }
}

/// Reads entry `index` of `table`.
///
/// # Safety
/// `table` is a live table (the [`PageTables`] contract); `index < ENTRIES`.
unsafe fn load(table: NonNull<Table>, index: usize) -> u64 {
    debug_assert!(index < ENTRIES);
    // SAFETY: in bounds of a live, aligned table per the caller's contract.
    unsafe { table.cast::<u64>().add(index).read_volatile() }
}

/// Writes entry `index` of `table` with a single 64-bit store.
///
/// # Safety
/// As [`load`], and nothing else accesses the table concurrently (except the MMU's walker).
unsafe fn store(table: NonNull<Table>, index: usize, value: u64) {
    debug_assert!(index < ENTRIES);
    // SAFETY: in bounds of a live, aligned table per the caller's contract.
    unsafe { table.cast::<u64>().add(index).write_volatile(value) }
}

/// Where a walk stopped: the first entry on the way to an address that is not a table
/// descriptor.
struct Walk {
    table: NonNull<Table>,
    index: usize,
    level: u8,
    entry: Entry,
}

/// A tree of stage-1 translation tables rooted at an L0 table (the value for `TTBR0_EL1`).
///
/// The tables are reached through raw pointers equal to their physical addresses. Edits are
/// plain memory writes: the caller issues `dsb ishst` (and `isb`) before relying on new
/// mappings, and does TLB maintenance after removing one. The caller also serialises all use:
/// one core at a time edits or walks a given tree.
pub struct PageTables {
    /// The L0 table.
    root: NonNull<Table>,
}

// SAFETY: `PageTables` is the handle through which one tree is edited. Tables are plain memory
// usable from any core; moving the handle to another core is fine as long as use is
// serialised, which `&mut self` on every edit (and the caller's lock around it) provides.
unsafe impl Send for PageTables {}

impl PageTables {
    /// An empty tree: one zeroed L0 table from `alloc`.
    pub fn new(alloc: &mut impl TableAllocator) -> Result<Self, MapError> {
        Ok(Self {
            root: new_table(alloc)?,
        })
    }

    /// Takes over an existing tree (e.g. built before the MMU was on, or by another owner).
    ///
    /// # Safety
    /// `root` is an L0 table whose tree satisfies the module invariants: every table reachable
    /// from it is live for as long as the returned value (and anything it maps) is used, lies
    /// at its own physical address, and is accessed by one core at a time (the caller
    /// serialises; no other `PageTables` for the same tree is used concurrently).
    pub unsafe fn from_root(root: NonNull<Table>) -> Self {
        Self { root }
    }

    /// The physical address of the L0 table: the BADDR for `TTBR0_EL1` (ASID 0 is the caller's
    /// to add in bits `[63:48]` if it wants one).
    pub fn root_address(&self) -> u64 {
        self.root.as_ptr().expose_provenance() as u64
    }

    /// The L0 table, e.g. to hand it to [`PageTables::from_root`] later.
    pub fn root(&self) -> NonNull<Table> {
        self.root
    }

    /// Maps `[va, va + size)` to `[pa, pa + size)` with the largest leaves alignment allows:
    /// 1 GiB blocks at L1 and 2 MiB blocks at L2 where both `va` and `pa` are aligned to the
    /// block and the rest of the range covers it, 4 KiB pages at L3 elsewhere. Where a table
    /// already exists in place of a block (something nearby was mapped before), the range is
    /// mapped with finer leaves inside that table.
    ///
    /// `va`, `pa` and `size` must be 4 KiB aligned; `size == 0` maps nothing. A range that
    /// touches any existing valid block or page fails with [`MapError::AlreadyMapped`]: there
    /// is no silent overwrite and no block splitting. On any error nothing of the requested
    /// range is left mapped and the existing mappings are untouched (intermediate tables
    /// allocated before an [`MapError::OutOfTables`] stay linked, empty, and are reused).
    ///
    /// Barriers (`dsb ishst; isb`) before the new mappings are used are the caller's.
    pub fn map(
        &mut self,
        va: u64,
        pa: u64,
        size: u64,
        attrs: Attributes,
        alloc: &mut impl TableAllocator,
    ) -> Result<(), MapError> {
        check_range(va, pa, size)?;
        // Pass 1, read-only: refuse an overlap before allocating or writing anything.
        self.check_unmapped(va, va + size)?;
        // Pass 2: write leaves. Only `OutOfTables` can fail now; undo what was written.
        let mut done = 0;
        while done < size {
            match self.map_one(va + done, pa + done, size - done, attrs, alloc) {
                Ok(len) => done += len,
                Err(error) => {
                    self.clear_leaves(va, va + done);
                    return Err(error);
                }
            }
        }
        Ok(())
    }

    /// Maps exactly one 4 KiB page `va -> pa` (demand-grown process stacks). Same rules and
    /// errors as [`PageTables::map`] with `size = 4096`; a page inside an existing block is
    /// [`MapError::AlreadyMapped`].
    pub fn map_page(
        &mut self,
        va: u64,
        pa: u64,
        attrs: Attributes,
        alloc: &mut impl TableAllocator,
    ) -> Result<(), MapError> {
        self.map(va, pa, PAGE, attrs, alloc)
    }

    /// Removes the 4 KiB page mapping at `va` and returns the physical address it mapped, or
    /// `None` (and changes nothing) if `va` is not page aligned, or is not mapped by an L3 page
    /// (unmapped, or inside a block: blocks are never split).
    ///
    /// No TLB maintenance is done here: the caller must `dsb ishst; tlbi vae1is, <va >> 12>;
    /// dsb ish; isb` before the returned frame is reused. The L3 table stays in place.
    pub fn unmap_page(&mut self, va: u64) -> Option<u64> {
        if !va.is_multiple_of(PAGE) || va >= VA_LIMIT {
            return None;
        }
        let walk = self.walk(va);
        match walk.entry {
            Entry::Leaf(desc) if walk.level == 3 => {
                // SAFETY: `walk.table` is a live table of this tree (the type's contract).
                unsafe { store(walk.table, walk.index, 0) };
                Some(desc & OA_MASK)
            }
            _ => None,
        }
    }

    /// Software walk of `va` (any byte address): the physical address and attributes the MMU
    /// would use, or `None` where it would take a translation fault (including `va >= 2^48`).
    pub fn translate(&self, va: u64) -> Option<Translation> {
        let (desc, level) = self.leaf(va)?;
        let size = entry_size(level);
        Some(Translation {
            pa: (desc & OA_MASK & !(size - 1)) | (va & (size - 1)),
            attrs: Attributes::from_leaf(desc),
            level,
        })
    }

    /// The raw leaf descriptor mapping `va` and its level.
    fn leaf(&self, va: u64) -> Option<(u64, u8)> {
        if va >= VA_LIMIT {
            return None;
        }
        let walk = self.walk(va);
        match walk.entry {
            Entry::Leaf(desc) => Some((desc, walk.level)),
            _ => None,
        }
    }

    /// Follows table descriptors from the root towards `va` (`< VA_LIMIT`) and stops at the
    /// first entry that is not one.
    fn walk(&self, va: u64) -> Walk {
        let mut table = self.root;
        let mut level = 0;
        loop {
            let index = index(va, level);
            // SAFETY: `table` is the root or was reached through a table descriptor of this
            // tree: live per the type's contract.
            let entry = decode(unsafe { load(table, index) }, level);
            match entry {
                Entry::Table(next) => {
                    table = next;
                    level += 1;
                }
                _ => {
                    return Walk {
                        table,
                        index,
                        level,
                        entry,
                    };
                }
            }
        }
    }

    /// `Err(AlreadyMapped)` at the first address of `[start, end)` covered by a leaf.
    fn check_unmapped(&self, start: u64, end: u64) -> Result<(), MapError> {
        let mut va = start;
        while va < end {
            let walk = self.walk(va);
            match walk.entry {
                Entry::Leaf(_) => return Err(MapError::AlreadyMapped { va }),
                // Nothing is mapped under this entry: skip to the next one.
                _ => va = next_entry_start(va, walk.level),
            }
        }
        Ok(())
    }

    /// Maps the largest leaf that fits at the start of the remaining range; returns its size.
    fn map_one(
        &mut self,
        va: u64,
        pa: u64,
        remaining: u64,
        attrs: Attributes,
        alloc: &mut impl TableAllocator,
    ) -> Result<u64, MapError> {
        let mut table = self.root;
        let mut level = 0;
        loop {
            let index = index(va, level);
            let size = entry_size(level);
            // A leaf may go here: always at L3; at L1/L2 if va and pa are aligned to the block
            // and the range covers all of it. Never at L0 (no 512 GiB blocks with 4 KiB).
            let leaf_fits = level == 3
                || (level >= 1
                    && va.is_multiple_of(size)
                    && pa.is_multiple_of(size)
                    && remaining >= size);
            // SAFETY: `table` is live (root or reached through this tree's descriptors).
            match decode(unsafe { load(table, index) }, level) {
                Entry::Invalid if leaf_fits => {
                    let kind = if level == 3 { DESC_TABLE_OR_PAGE } else { 0 };
                    let desc = (pa & OA_MASK) | attrs.leaf_bits() | kind | DESC_VALID;
                    // SAFETY: as above; the entry was invalid, so this is invalid -> valid.
                    unsafe { store(table, index, desc) };
                    return Ok(size);
                }
                Entry::Invalid => {
                    let next = new_table(alloc)?;
                    let desc =
                        next.as_ptr().expose_provenance() as u64 | DESC_TABLE_OR_PAGE | DESC_VALID;
                    // SAFETY: as above; `next` is zeroed, so nothing new is mapped yet.
                    unsafe { store(table, index, desc) };
                    table = next;
                }
                Entry::Table(next) => table = next,
                Entry::Leaf(_) => return Err(MapError::AlreadyMapped { va }),
            }
            level += 1;
        }
    }

    /// Invalidates every leaf that maps an address of `[start, end)`. Only for undoing a
    /// partial `map`, where every such leaf was written by that call and lies inside the range.
    fn clear_leaves(&mut self, start: u64, end: u64) {
        let mut va = start;
        while va < end {
            let walk = self.walk(va);
            if let Entry::Leaf(_) = walk.entry {
                debug_assert!(va.is_multiple_of(entry_size(walk.level)));
                // SAFETY: `walk.table` is a live table of this tree.
                unsafe { store(walk.table, walk.index, 0) };
            }
            va = next_entry_start(va, walk.level);
        }
    }
}

/// Validates the arguments of a mapping request.
fn check_range(va: u64, pa: u64, size: u64) -> Result<(), MapError> {
    if !(va.is_multiple_of(PAGE) && pa.is_multiple_of(PAGE) && size.is_multiple_of(PAGE)) {
        return Err(MapError::Misaligned { va, pa, size });
    }
    let in_range = |start: u64, limit: u64| start.checked_add(size).is_some_and(|end| end <= limit);
    if !in_range(va, VA_LIMIT) || !in_range(pa, PA_LIMIT) {
        return Err(MapError::OutOfRange { va });
    }
    Ok(())
}

/// A fresh, zeroed table from `alloc`.
fn new_table(alloc: &mut impl TableAllocator) -> Result<NonNull<Table>, MapError> {
    let table = alloc.allocate_table().ok_or(MapError::OutOfTables)?;
    let address = table.as_ptr().expose_provenance() as u64;
    // Alignment is guaranteed by the type; the address must fit a table descriptor.
    assert!(
        address & !OA_MASK == 0,
        "translation table at {address:#x} is not below 2^48"
    );
    // SAFETY: the allocator hands over a live, unused, aligned table; it is not linked yet.
    unsafe { table.as_ptr().write_bytes(0, 1) };
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * KIB;
    const GIB: u64 = 1024 * MIB;

    /// Host allocator: leaked-then-reclaimed boxes; their host addresses stand in for physical
    /// addresses. `limit` tables at most.
    struct HostTables {
        tables: Vec<NonNull<Table>>,
        limit: usize,
    }

    impl HostTables {
        fn new() -> Self {
            Self::with_limit(usize::MAX)
        }
        fn with_limit(limit: usize) -> Self {
            Self {
                tables: Vec::new(),
                limit,
            }
        }
    }

    impl TableAllocator for HostTables {
        fn allocate_table(&mut self) -> Option<NonNull<Table>> {
            if self.tables.len() >= self.limit {
                return None;
            }
            let table = NonNull::from(Box::leak(Box::new(Table::empty())));
            self.tables.push(table);
            Some(table)
        }
    }

    impl Drop for HostTables {
        fn drop(&mut self) {
            for table in self.tables.drain(..) {
                // SAFETY: each came from Box::leak above and the PageTables using them are
                // dropped first (declared after the allocator in every test).
                drop(unsafe { Box::from_raw(table.as_ptr()) });
            }
        }
    }

    fn fresh() -> (HostTables, PageTables) {
        let mut alloc = HostTables::new();
        let pt = PageTables::new(&mut alloc).unwrap();
        (alloc, pt)
    }

    fn raw(pt: &PageTables, va: u64) -> u64 {
        pt.leaf(va).expect("mapped").0
    }

    /// Every page of [va, va + size) translates to pa + offset with `attrs`.
    fn assert_linear(pt: &PageTables, va: u64, pa: u64, size: u64, attrs: Attributes) {
        let mut off = 0;
        while off < size {
            let t = pt
                .translate(va + off)
                .unwrap_or_else(|| panic!("{:#x} unmapped", va + off));
            assert_eq!(t.pa, pa + off, "va {:#x}", va + off);
            assert_eq!(t.attrs, attrs);
            off += PAGE;
        }
    }

    #[test]
    fn constants_match_the_architecture() {
        assert_eq!(MAIR_VALUE, 0x00ff);
        // T0SZ 16 | IRGN0 01 | ORGN0 01 | SH0 11 | TG0 00 | T1SZ 16 | EPD1 | TG1 10.
        assert_eq!(TCR_VALUE_BASE, 0x8090_3510);
        assert_eq!(tcr_value(0), 0x0_8090_3510);
        assert_eq!(tcr_value(3), 0x3_8090_3510); // 42 bits
        assert_eq!(tcr_value(5), 0x5_8090_3510); // 48 bits
        assert_eq!(tcr_value(6), 0x5_8090_3510); // 52 bits: clamped
        assert_eq!(tcr_value(0x15), 0x5_8090_3510); // only the low 4 bits count
        assert_eq!(physical_address_bits(3), 42);
        assert_eq!(physical_address_bits(6), 48);
        assert_eq!(entry_size(0), 512 * GIB);
        assert_eq!(entry_size(1), GIB);
        assert_eq!(entry_size(2), 2 * MIB);
        assert_eq!(entry_size(3), 4 * KIB);
        let va = (3 << 39) | (5 << 30) | (7 << 21) | (11 << 12) | 0x123;
        assert_eq!([0, 1, 2, 3].map(|l| index(va, l)), [3, 5, 7, 11]);
    }

    #[test]
    fn identity_map_picks_the_largest_leaves() {
        let (mut alloc, mut pt) = fresh();
        // 3 pages, one 2 MiB block, one 1 GiB block, one 2 MiB block, 509 pages.
        let start = GIB - 2 * MIB - 3 * PAGE;
        let size = GIB + 6 * MIB;
        pt.map(start, start, size, Attributes::DATA, &mut alloc)
            .unwrap();
        let level = |va: u64| pt.translate(va).unwrap().level;
        assert_eq!(level(start), 3);
        assert_eq!(level(start + 2 * PAGE), 3);
        assert_eq!(level(GIB - 2 * MIB), 2);
        assert_eq!(level(GIB - 1), 2);
        assert_eq!(level(GIB), 1);
        assert_eq!(level(2 * GIB - 1), 1);
        assert_eq!(level(2 * GIB), 2);
        assert_eq!(level(2 * GIB + 2 * MIB - 1), 2);
        assert_eq!(level(2 * GIB + 2 * MIB), 3);
        assert_eq!(level(start + size - 1), 3);
        assert!(pt.translate(start - 1).is_none());
        assert!(pt.translate(start + size).is_none());
        assert_linear(&pt, start, start, size, Attributes::DATA);
        // Byte offsets inside pages and blocks are carried through.
        assert_eq!(
            pt.translate(GIB + 0x1234_5678).unwrap().pa,
            GIB + 0x1234_5678
        );
        assert_eq!(pt.translate(start + 0xabc).unwrap().pa, start + 0xabc);
        // Tables: L0, one L1, two L2, two L3.
        assert_eq!(alloc.tables.len(), 6);
        // Raw descriptor types: block at L1/L2 is 0b01, page at L3 is 0b11.
        assert_eq!(raw(&pt, GIB) & 0b11, 0b01);
        assert_eq!(raw(&pt, GIB - 2 * MIB) & 0b11, 0b01);
        assert_eq!(raw(&pt, start) & 0b11, 0b11);
        assert_eq!(raw(&pt, GIB) & OA_MASK, GIB);
    }

    #[test]
    fn blocks_need_pa_alignment_too() {
        let (mut alloc, mut pt) = fresh();
        // va is 1 GiB aligned, pa only 4 KiB aligned: pages only.
        let (va, pa, size) = (4 * GIB, 0x8000_1000, 4 * MIB);
        pt.map(va, pa, size, Attributes::DATA, &mut alloc).unwrap();
        assert_linear(&pt, va, pa, size, Attributes::DATA);
        assert_eq!(pt.translate(va).unwrap().level, 3);
        assert_eq!(pt.translate(va + size - 1).unwrap().pa, pa + size - 1);
        // va and pa 2 MiB aligned (but pa not 1 GiB aligned): 2 MiB blocks.
        let (va, pa, size) = (8 * GIB, 0x1_0020_0000, GIB);
        pt.map(va, pa, size, Attributes::DATA, &mut alloc).unwrap();
        assert_linear(&pt, va, pa, size, Attributes::DATA);
        assert_eq!(pt.translate(va).unwrap().level, 2);
        assert_eq!(pt.translate(va + size - 1).unwrap().level, 2);
    }

    #[test]
    fn kernel_sections_get_wx_bits() {
        let (mut alloc, mut pt) = fresh();
        let text = 0x4008_0000;
        let rodata = text + 16 * PAGE;
        let data = rodata + 8 * PAGE;
        pt.map(text, text, 16 * PAGE, Attributes::TEXT, &mut alloc)
            .unwrap();
        pt.map(rodata, rodata, 8 * PAGE, Attributes::RODATA, &mut alloc)
            .unwrap();
        pt.map(data, data, 32 * PAGE, Attributes::DATA, &mut alloc)
            .unwrap();

        let common = DESC_VALID | DESC_TABLE_OR_PAGE | AF | SH_INNER | UXN; // AttrIndx 0
        assert_eq!(raw(&pt, text), text | common | AP_READ_ONLY);
        assert_eq!(raw(&pt, rodata), rodata | common | AP_READ_ONLY | PXN);
        assert_eq!(raw(&pt, data), data | common | PXN);
        for va in [text, rodata, data] {
            let d = raw(&pt, va);
            assert_eq!(d & AP_EL0, 0, "EL0 must have no access");
            assert_eq!(d & NG, 0);
            assert_eq!((d >> 2) & 0b111, 0, "AttrIndx 0 (Normal)");
            assert_eq!((d >> 8) & 0b11, 0b11, "inner shareable");
            assert_ne!(d & (1 << 10), 0, "AF");
            assert_ne!(d & (1 << 54), 0, "UXN");
        }
        // Spelled out in raw bit numbers: text executable at EL1 and read-only.
        assert_eq!(raw(&pt, text) & (1 << 53), 0);
        assert_eq!((raw(&pt, text) >> 6) & 0b11, 0b10);
        assert_eq!((raw(&pt, rodata) >> 6) & 0b11, 0b10);
        assert_ne!(raw(&pt, rodata) & (1 << 53), 0);
        assert_eq!((raw(&pt, data) >> 6) & 0b11, 0b00);
        assert_ne!(raw(&pt, data) & (1 << 53), 0);

        assert_linear(&pt, text, text, 16 * PAGE, Attributes::TEXT);
        assert_linear(&pt, rodata, rodata, 8 * PAGE, Attributes::RODATA);
        assert_linear(&pt, data, data, 32 * PAGE, Attributes::DATA);
        // Block descriptors carry the same attributes.
        pt.map(2 * GIB, 2 * GIB, GIB, Attributes::TEXT, &mut alloc)
            .unwrap();
        let block = (2 * GIB) | DESC_VALID | AF | SH_INNER | UXN | AP_READ_ONLY;
        assert_eq!(raw(&pt, 2 * GIB), block);
    }

    #[test]
    fn device_memory_is_execute_never_attr_1() {
        let (mut alloc, mut pt) = fresh();
        let uart = 0x0900_0000;
        pt.map(uart, uart, PAGE, Attributes::DEVICE, &mut alloc)
            .unwrap();
        let d = raw(&pt, uart);
        assert_eq!((d >> 2) & 0b111, 1, "AttrIndx 1 (Device-nGnRnE)");
        assert_ne!(d & PXN, 0);
        assert_ne!(d & UXN, 0);
        assert_eq!(d & AP_READ_ONLY, 0);
        assert_eq!(d, uart | 0b11 | (1 << 2) | AF | SH_INNER | PXN | UXN);
        assert_eq!(pt.translate(uart + 4).unwrap().attrs, Attributes::DEVICE);
        // Asking for executable device memory still gets execute-never.
        let exec = Attributes {
            kind: MemoryKind::Device,
            access: Access::ReadExecute,
        };
        pt.map(0x0800_0000, 0x0800_0000, 16 * MIB, exec, &mut alloc)
            .unwrap();
        let d = raw(&pt, 0x0800_0000);
        assert_eq!(d & 0b11, 0b01, "2 MiB block");
        assert_ne!(d & PXN, 0);
        assert_ne!(d & UXN, 0);
        assert_eq!(
            pt.translate(0x0800_0000).unwrap().attrs,
            Attributes {
                kind: MemoryKind::Device,
                access: Access::ReadOnly
            }
        );
    }

    #[test]
    fn overlaps_are_refused_and_change_nothing() {
        let (mut alloc, mut pt) = fresh();
        pt.map(GIB, GIB, GIB, Attributes::DATA, &mut alloc).unwrap(); // 1 GiB block
        pt.map(
            2 * GIB + 2 * MIB,
            0x10_0000_0000,
            PAGE,
            Attributes::DATA,
            &mut alloc,
        )
        .unwrap(); // one page in an L3 table
        let tables = alloc.tables.len();

        // Exact duplicate, a page inside the block, a range ending inside the block.
        assert_eq!(
            pt.map(GIB, GIB, GIB, Attributes::DATA, &mut alloc),
            Err(MapError::AlreadyMapped { va: GIB })
        );
        assert_eq!(
            pt.map_page(GIB + 5 * PAGE, 0, Attributes::DATA, &mut alloc),
            Err(MapError::AlreadyMapped { va: GIB + 5 * PAGE })
        );
        assert_eq!(
            pt.map(
                GIB - 4 * MIB,
                0,
                4 * MIB + PAGE,
                Attributes::DATA,
                &mut alloc
            ),
            Err(MapError::AlreadyMapped { va: GIB })
        );
        // A 2 MiB-block-sized range over an L2 entry that is a table holding a page: the page
        // conflicts (no silent overwrite, no merge into a block).
        assert_eq!(
            pt.map(2 * GIB, 2 * GIB, GIB, Attributes::DATA, &mut alloc),
            Err(MapError::AlreadyMapped {
                va: 2 * GIB + 2 * MIB
            })
        );
        // Same page again.
        assert_eq!(
            pt.map_page(2 * GIB + 2 * MIB, 0, Attributes::RODATA, &mut alloc),
            Err(MapError::AlreadyMapped {
                va: 2 * GIB + 2 * MIB
            })
        );
        // Nothing was allocated or changed by the refused calls.
        assert_eq!(alloc.tables.len(), tables);
        assert!(pt.translate(GIB - 4 * MIB).is_none());
        assert!(pt.translate(2 * GIB).is_none());
        assert!(pt.translate(2 * GIB + 4 * MIB).is_none());
        assert_eq!(pt.translate(GIB + 5 * PAGE).unwrap().pa, GIB + 5 * PAGE);
        assert_eq!(
            pt.translate(2 * GIB + 2 * MIB).unwrap().attrs,
            Attributes::DATA
        );
        // Neighbours that merely touch are fine, and reuse the existing tables: the rest of
        // the L3 table's 2 MiB gets pages, the rest of the L2 table's 1 GiB gets blocks.
        pt.map(2 * GIB, 2 * GIB, 2 * MIB, Attributes::DATA, &mut alloc)
            .unwrap();
        pt.map(
            2 * GIB + 2 * MIB + PAGE,
            2 * GIB + 2 * MIB + PAGE,
            GIB - 2 * MIB - PAGE,
            Attributes::DATA,
            &mut alloc,
        )
        .unwrap();
        assert_eq!(pt.translate(2 * GIB).unwrap().level, 2);
        assert_eq!(pt.translate(2 * GIB + 2 * MIB + PAGE).unwrap().level, 3);
        assert_eq!(pt.translate(2 * GIB + 4 * MIB).unwrap().level, 2);
        assert_eq!(pt.translate(3 * GIB - 1).unwrap().pa, 3 * GIB - 1);
        assert_eq!(alloc.tables.len(), tables);
    }

    #[test]
    fn bad_arguments() {
        let (mut alloc, mut pt) = fresh();
        let a = Attributes::DATA;
        let misaligned = |va, pa, size| Err(MapError::Misaligned { va, pa, size });
        assert_eq!(
            pt.map(0x1001, 0x2000, PAGE, a, &mut alloc),
            misaligned(0x1001, 0x2000, PAGE)
        );
        assert_eq!(
            pt.map(0x1000, 0x2800, PAGE, a, &mut alloc),
            misaligned(0x1000, 0x2800, PAGE)
        );
        assert_eq!(
            pt.map(0x1000, 0x2000, 100, a, &mut alloc),
            misaligned(0x1000, 0x2000, 100)
        );
        assert_eq!(
            pt.map_page(0x10, 0, a, &mut alloc),
            misaligned(0x10, 0, PAGE)
        );
        let out = |va| Err(MapError::OutOfRange { va });
        assert_eq!(
            pt.map(VA_LIMIT - PAGE, 0, 2 * PAGE, a, &mut alloc),
            out(VA_LIMIT - PAGE)
        );
        assert_eq!(pt.map(VA_LIMIT, 0, PAGE, a, &mut alloc), out(VA_LIMIT));
        assert_eq!(pt.map(0, PA_LIMIT - PAGE, 2 * PAGE, a, &mut alloc), out(0));
        assert_eq!(pt.map(!0xfff_u64, 0, PAGE, a, &mut alloc), out(!0xfff_u64));
        assert_eq!(pt.map(PAGE, 0, !0xfff_u64, a, &mut alloc), out(PAGE));
        // The last page of the space is fine; size 0 is a no-op.
        pt.map(VA_LIMIT - PAGE, PA_LIMIT - PAGE, PAGE, a, &mut alloc)
            .unwrap();
        assert_eq!(pt.translate(VA_LIMIT - 1).unwrap().pa, PA_LIMIT - 1);
        assert!(pt.translate(VA_LIMIT).is_none());
        assert!(pt.translate(u64::MAX).is_none());
        let tables = alloc.tables.len();
        pt.map(0, 0, 0, a, &mut alloc).unwrap();
        assert!(pt.translate(0).is_none());
        assert_eq!(alloc.tables.len(), tables);
        // Only 1 table (the root) existed before the VA_LIMIT page; errors allocated nothing.
        assert_eq!(tables, 4);
    }

    #[test]
    fn out_of_tables_leaves_previous_mappings_intact() {
        // Root + L1 + L2 + L3 for the first range, then room for one more table only.
        let mut alloc = HostTables::with_limit(5);
        let mut pt = PageTables::new(&mut alloc).unwrap();
        let a_va = 0x4000_0000;
        pt.map(a_va, a_va, 3 * PAGE, Attributes::DATA, &mut alloc)
            .unwrap();
        assert_eq!(alloc.tables.len(), 4);
        let before: Vec<_> = (0..4).map(|i| pt.translate(a_va + i * PAGE)).collect();

        // B: pages from the end of A's L3 table into the next 2 MiB (needs a new L3 table:
        // ok), a 2 MiB block, then pages in the next L1 entry's range (needs L2 + L3: fails).
        let b_va = a_va + 2 * MIB - 4 * PAGE;
        let b_size = (GIB - (b_va - a_va)) + 4 * PAGE;
        assert_eq!(
            pt.map(b_va, b_va, b_size, Attributes::RODATA, &mut alloc),
            Err(MapError::OutOfTables)
        );
        // A unchanged, nothing of B mapped.
        let after: Vec<_> = (0..4).map(|i| pt.translate(a_va + i * PAGE)).collect();
        assert_eq!(before, after);
        assert_linear(&pt, a_va, a_va, 3 * PAGE, Attributes::DATA);
        let mut va = b_va;
        while va < b_va + b_size {
            assert!(pt.translate(va).is_none(), "{va:#x} left mapped");
            va += PAGE;
        }
        // With more tables, B maps; the empty tables left behind are reused.
        alloc.limit = usize::MAX;
        pt.map(b_va, b_va, b_size, Attributes::RODATA, &mut alloc)
            .unwrap();
        assert_linear(&pt, b_va, b_va, b_size, Attributes::RODATA);
        assert_linear(&pt, a_va, a_va, 3 * PAGE, Attributes::DATA);
    }

    #[test]
    fn out_of_tables_for_the_root() {
        let mut alloc = HostTables::with_limit(0);
        assert!(matches!(
            PageTables::new(&mut alloc),
            Err(MapError::OutOfTables)
        ));
        let mut alloc = HostTables::with_limit(1);
        let mut pt = PageTables::new(&mut alloc).unwrap();
        assert_eq!(
            pt.map_page(0x1000, 0x1000, Attributes::DATA, &mut alloc),
            Err(MapError::OutOfTables)
        );
        assert!(pt.translate(0x1000).is_none());
    }

    #[test]
    fn guard_page_between_two_pages() {
        let (mut alloc, mut pt) = fresh();
        let stack = 0x7f_0000_0000;
        pt.map_page(stack, 0x4100_0000, Attributes::DATA, &mut alloc)
            .unwrap();
        pt.map_page(stack + 2 * PAGE, 0x4100_2000, Attributes::DATA, &mut alloc)
            .unwrap();
        assert_eq!(pt.translate(stack + 8).unwrap().pa, 0x4100_0008);
        assert!(pt.translate(stack + PAGE).is_none());
        assert!(pt.translate(stack + 2 * PAGE - 1).is_none());
        assert_eq!(pt.translate(stack + 2 * PAGE).unwrap().pa, 0x4100_2000);
        assert!(pt.translate(stack + 3 * PAGE).is_none());
    }

    #[test]
    fn map_page_unmap_page_round_trip() {
        let (mut alloc, mut pt) = fresh();
        let va = 0x12_3456_7000;
        let pa = 0x8_0000_5000;
        assert_eq!(pt.unmap_page(va), None);
        pt.map_page(va, pa, Attributes::DATA, &mut alloc).unwrap();
        let t = pt.translate(va + 0xfff).unwrap();
        assert_eq!((t.pa, t.level, t.attrs), (pa + 0xfff, 3, Attributes::DATA));
        assert_eq!(pt.unmap_page(va + 8), None, "unaligned");
        assert_eq!(pt.unmap_page(va), Some(pa));
        assert!(pt.translate(va).is_none());
        assert_eq!(pt.unmap_page(va), None);
        // Remap the same va to another frame: the L3 table is reused.
        let tables = alloc.tables.len();
        pt.map_page(va, pa + PAGE, Attributes::RODATA, &mut alloc)
            .unwrap();
        assert_eq!(alloc.tables.len(), tables);
        assert_eq!(pt.translate(va).unwrap().pa, pa + PAGE);
        assert_eq!(pt.translate(va).unwrap().attrs, Attributes::RODATA);
        // Pages inside blocks can't be unmapped (blocks are never split).
        pt.map(GIB, GIB, 2 * MIB, Attributes::DATA, &mut alloc)
            .unwrap();
        assert_eq!(pt.unmap_page(GIB), None);
        assert_eq!(pt.translate(GIB).unwrap().level, 2);
        assert_eq!(pt.unmap_page(VA_LIMIT), None);
        // Many pages in and out.
        for i in 0..600 {
            pt.map_page(
                4 * GIB + i * PAGE,
                0x9000_0000 + i * PAGE,
                Attributes::DATA,
                &mut alloc,
            )
            .unwrap();
        }
        for i in (0..600).step_by(2) {
            assert_eq!(
                pt.unmap_page(4 * GIB + i * PAGE),
                Some(0x9000_0000 + i * PAGE)
            );
        }
        for i in 0..600 {
            let t = pt.translate(4 * GIB + i * PAGE).map(|t| t.pa);
            assert_eq!(t, (i % 2 == 1).then_some(0x9000_0000 + i * PAGE));
        }
    }

    #[test]
    fn from_root_sees_the_same_tree() {
        let (mut alloc, mut pt) = fresh();
        pt.map(GIB, GIB, 2 * MIB + PAGE, Attributes::DATA, &mut alloc)
            .unwrap();
        // SAFETY: the tables live in `alloc`, which outlives `other`; single-threaded.
        let other = unsafe { PageTables::from_root(pt.root()) };
        assert_eq!(other.root_address(), pt.root_address());
        assert_eq!(other.root_address() % PAGE, 0);
        assert_eq!(other.translate(GIB + 2 * MIB).unwrap().pa, GIB + 2 * MIB);
        assert_eq!(other.translate(GIB).unwrap().level, 2);
    }

    #[test]
    fn table_descriptors_point_at_the_next_table() {
        let (mut alloc, mut pt) = fresh();
        pt.map_page(0, 0, Attributes::DATA, &mut alloc).unwrap();
        // Walk by hand from the root: L0[0] -> L1[0] -> L2[0] -> L3[0].
        let mut table = pt.root();
        for level in 0..3 {
            // SAFETY: tables owned by `alloc`.
            let d = unsafe { load(table, 0) };
            assert_eq!(d & 0b11, 0b11, "table descriptor at L{level}");
            assert_eq!(
                d & !OA_MASK & !0b11,
                0,
                "no attributes in table descriptors"
            );
            table = NonNull::new((d & OA_MASK) as usize as *mut Table).unwrap();
            assert!(alloc.tables.contains(&table));
        }
        // SAFETY: as above.
        let page = unsafe { load(table, 0) };
        assert_eq!(
            page,
            DESC_VALID | DESC_TABLE_OR_PAGE | AF | SH_INNER | PXN | UXN
        );
    }

    #[test]
    fn reserved_encodings_walk_as_invalid() {
        assert_eq!(decode(0b01 | GIB, 0), Entry::Invalid, "no blocks at L0");
        assert_eq!(
            decode(0b01 | 0x1000, 3),
            Entry::Invalid,
            "0b01 at L3 is reserved"
        );
        assert_eq!(decode(0b10 | 0x1000, 2), Entry::Invalid);
        assert_eq!(decode(0b01 | GIB, 1), Entry::Leaf(0b01 | GIB));
    }

    #[test]
    fn display() {
        let s = alloc::format!("{}", MapError::AlreadyMapped { va: 0x1000 });
        assert!(s.contains("0x1000"));
    }
}
