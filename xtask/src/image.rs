//! Turning a kernel ELF into a flat Linux arm64 `Image`, and checking what the boot code relies
//! on: the `ARM\x64` header magic, a non-zero image_size that covers .bss and the boot stacks,
//! an entry point at the first byte, and dynamic relocations that are all R_AARCH64_RELATIVE
//! (boot/entry.s applies only those) and patch file-backed memory. Also writes the "alt" copy
//! whose header asks QEMU to load it 48 MiB higher, which tests position independence.

use std::path::Path;

use object::LittleEndian as LE;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};

use crate::Result;

/// text_offset of the alt image: QEMU honours offsets of 4 KiB and more, so the image lands at
/// RAM + 48 MiB = 0x4300_0000 instead of RAM + 2 MiB.
pub const ALT_TEXT_OFFSET: u64 = 0x0300_0000;

const TEXT_OFFSET_FIELD: usize = 8;
const IMAGE_SIZE_FIELD: usize = 16;
const MAGIC_OFFSET: usize = 0x38;
const MAGIC: &[u8; 4] = b"ARM\x64";
const HEADER_LEN: usize = 64;
const RELA64_SIZE: usize = 24;
/// At most this many bad relocations are listed one by one.
const MAX_LISTED: usize = 20;

/// A flattened image and facts about it.
#[derive(Debug)]
pub struct Flat {
    /// Bytes from the lowest loaded address to the end of the last file-backed byte.
    pub bytes: Vec<u8>,
    /// The link address of the first byte.
    pub base: u64,
    /// Bytes from `base` to the end of the last PT_LOAD in memory (.bss, stacks included).
    pub mem_len: u64,
    /// How many R_AARCH64_RELATIVE entries the boot code will apply.
    pub relocations: usize,
}

/// What `make_images` reports.
#[derive(Debug)]
pub struct ImageInfo {
    pub base: u64,
    pub file_len: usize,
    pub image_size: u64,
    pub relocations: usize,
}

/// Reads `elf_path`, flattens and checks it, and writes `bin_path` and its alt copy.
pub fn make_images(elf_path: &Path, bin_path: &Path, alt_path: &Path) -> Result<ImageInfo> {
    let data =
        std::fs::read(elf_path).map_err(|e| format!("cannot read {}: {e}", elf_path.display()))?;
    let flat = flatten(&data).map_err(|e| format!("{}: {e}", elf_path.display()))?;
    let image_size = check_header(&flat.bytes, flat.mem_len)
        .map_err(|e| format!("{}: {e}", elf_path.display()))?;
    std::fs::write(bin_path, &flat.bytes)
        .map_err(|e| format!("cannot write {}: {e}", bin_path.display()))?;
    let mut alt = flat.bytes.clone();
    set_text_offset(&mut alt, ALT_TEXT_OFFSET);
    std::fs::write(alt_path, &alt)
        .map_err(|e| format!("cannot write {}: {e}", alt_path.display()))?;
    Ok(ImageInfo {
        base: flat.base,
        file_len: flat.bytes.len(),
        image_size,
        relocations: flat.relocations,
    })
}

/// A PT_LOAD segment, reduced to what flattening needs.
#[derive(Clone, Copy, Debug)]
struct Load {
    vaddr: u64,
    offset: u64,
    filesz: u64,
    memsz: u64,
}

/// Flattens the PT_LOAD segments of a little-endian AArch64 ELF64 and checks its relocations.
pub fn flatten(data: &[u8]) -> Result<Flat, String> {
    let header = elf::FileHeader64::<LE>::parse(data).map_err(|e| format!("not an ELF64: {e}"))?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    if !header.is_little_endian() {
        return Err("not a little-endian ELF".into());
    }
    if header.e_machine(endian) != elf::EM_AARCH64 {
        return Err(format!(
            "not an AArch64 ELF (e_machine {})",
            header.e_machine(endian)
        ));
    }

    let mut loads = Vec::new();
    for ph in header
        .program_headers(endian, data)
        .map_err(|e| format!("bad program headers: {e}"))?
    {
        if ph.p_type(endian) != elf::PT_LOAD || ph.p_memsz(endian) == 0 {
            continue;
        }
        let (vaddr, paddr) = (ph.p_vaddr(endian), ph.p_paddr(endian));
        if vaddr != paddr {
            return Err(format!(
                "PT_LOAD at vaddr {vaddr:#x} has paddr {paddr:#x}: the image is run identity-mapped, they must be equal"
            ));
        }
        let load = Load {
            vaddr,
            offset: ph.p_offset(endian),
            filesz: ph.p_filesz(endian),
            memsz: ph.p_memsz(endian),
        };
        if load
            .offset
            .checked_add(load.filesz)
            .is_none_or(|end| end > data.len() as u64)
        {
            return Err(format!(
                "PT_LOAD at {vaddr:#x} extends past the end of the file"
            ));
        }
        loads.push(load);
    }
    let file_backed: Vec<Load> = loads.iter().copied().filter(|l| l.filesz > 0).collect();
    let Some(base) = loads.iter().map(|l| l.vaddr).min() else {
        return Err("no loadable segments".into());
    };
    let end = file_backed
        .iter()
        .map(|l| l.vaddr + l.filesz)
        .max()
        .ok_or("no file-backed loadable segments")?;
    if file_backed.iter().map(|l| l.vaddr).min() != Some(base) {
        return Err(format!(
            "the lowest PT_LOAD ({base:#x}) has no file contents: the image must start with its header"
        ));
    }
    let mem_end = loads.iter().map(|l| l.vaddr + l.memsz).max().unwrap_or(end);
    let len = usize::try_from(end - base).map_err(|_| "image too large")?;
    if len > 1 << 30 {
        return Err(format!(
            "flat image would be {len} bytes: are the segments far apart?"
        ));
    }

    let entry = header.e_entry(endian);
    if entry != base {
        return Err(format!(
            "entry point {entry:#x} is not the first byte of the image ({base:#x}): QEMU and m1n1 jump to the start"
        ));
    }

    let mut bytes = vec![0u8; len];
    for l in &file_backed {
        let at = (l.vaddr - base) as usize;
        let src = &data[l.offset as usize..(l.offset + l.filesz) as usize];
        bytes[at..at + src.len()].copy_from_slice(src);
    }

    let relocations = check_relocations(data, header, endian, &file_backed)?;
    Ok(Flat {
        bytes,
        base,
        mem_len: mem_end - base,
        relocations,
    })
}

/// Checks every allocated relocation section (`.rela.dyn`: the linker script gathers them all
/// there): only RELA, only R_AARCH64_RELATIVE, each patching a file-backed byte (boot code
/// applies relocations before it zeroes .bss). Returns how many there are.
fn check_relocations(
    data: &[u8],
    header: &elf::FileHeader64<LE>,
    endian: LE,
    file_backed: &[Load],
) -> Result<usize, String> {
    let sections = header
        .sections(endian, data)
        .map_err(|e| format!("bad section headers: {e}"))?;
    if sections.is_empty() {
        return Err("no section headers: cannot find .rela.dyn to check relocations".into());
    }
    let mut count = 0;
    let mut problems = Vec::new();
    let mut unlisted = 0;
    for sh in sections.iter() {
        let name = String::from_utf8_lossy(sections.section_name(endian, sh).unwrap_or(b"?"));
        let allocated = sh.sh_flags(endian) & u64::from(elf::SHF_ALLOC) != 0;
        match sh.sh_type(endian) {
            elf::SHT_RELA if allocated => {}
            elf::SHT_REL if allocated => {
                return Err(format!(
                    "section {name} holds REL relocations: the boot code applies only RELA"
                ));
            }
            elf::SHT_RELR if allocated => {
                return Err(format!(
                    "section {name} holds packed RELR relocations, which the boot code does not apply (do not link with -z pack-relative-relocs)"
                ));
            }
            _ => continue,
        }
        let raw = sh
            .data(endian, data)
            .map_err(|e| format!("cannot read {name}: {e}"))?;
        if raw.len() % RELA64_SIZE != 0 {
            return Err(format!(
                "{name} is {} bytes, not a whole number of Elf64_Rela entries",
                raw.len()
            ));
        }
        for (i, entry) in raw.chunks_exact(RELA64_SIZE).enumerate() {
            let offset = u64::from_le_bytes(entry[0..8].try_into().unwrap());
            let info = u64::from_le_bytes(entry[8..16].try_into().unwrap());
            let r_type = (info & 0xffff_ffff) as u32;
            let problem = if r_type != elf::R_AARCH64_RELATIVE {
                Some(format!(
                    "{name}[{i}]: relocation type {r_type} ({}) at offset {offset:#x}: only R_AARCH64_RELATIVE (1027) is applied at boot",
                    reloc_name(r_type)
                ))
            } else if !file_backed
                .iter()
                .any(|l| offset >= l.vaddr && offset + 8 <= l.vaddr + l.filesz)
            {
                Some(format!(
                    "{name}[{i}]: R_AARCH64_RELATIVE at {offset:#x} patches memory outside the file-backed image (.bss is zeroed after relocation)"
                ))
            } else {
                None
            };
            match problem {
                Some(p) if problems.len() < MAX_LISTED => problems.push(p),
                Some(_) => unlisted += 1,
                None => count += 1,
            }
        }
    }
    if problems.is_empty() {
        return Ok(count);
    }
    let mut msg = String::from("the image has relocations the boot code cannot apply:");
    for p in &problems {
        msg.push_str("\n  ");
        msg.push_str(p);
    }
    if unlisted > 0 {
        msg.push_str(&format!("\n  ... and {unlisted} more"));
    }
    Err(msg)
}

/// Names of the AArch64 dynamic relocation types one might meet.
fn reloc_name(r_type: u32) -> &'static str {
    match r_type {
        elf::R_AARCH64_NONE => "R_AARCH64_NONE",
        elf::R_AARCH64_ABS64 => "R_AARCH64_ABS64",
        elf::R_AARCH64_ABS32 => "R_AARCH64_ABS32",
        elf::R_AARCH64_COPY => "R_AARCH64_COPY",
        elf::R_AARCH64_GLOB_DAT => "R_AARCH64_GLOB_DAT",
        elf::R_AARCH64_JUMP_SLOT => "R_AARCH64_JUMP_SLOT",
        elf::R_AARCH64_RELATIVE => "R_AARCH64_RELATIVE",
        elf::R_AARCH64_TLS_TPREL => "R_AARCH64_TLS_TPREL64",
        elf::R_AARCH64_TLSDESC => "R_AARCH64_TLSDESC",
        elf::R_AARCH64_IRELATIVE => "R_AARCH64_IRELATIVE",
        _ => "unexpected type",
    }
}

/// Checks the Linux arm64 Image header of a flat image whose memory footprint is `mem_len`
/// bytes; returns its image_size.
pub fn check_header(image: &[u8], mem_len: u64) -> Result<u64, String> {
    if image.len() < HEADER_LEN {
        return Err(format!(
            "image is {} bytes, shorter than the 64-byte arm64 Image header",
            image.len()
        ));
    }
    let magic = &image[MAGIC_OFFSET..MAGIC_OFFSET + 4];
    if magic != MAGIC {
        return Err(format!(
            "no arm64 Image magic `ARM\\x64` at offset 0x38 (found {magic:02x?}): is .text.boot first?"
        ));
    }
    let image_size = read_u64(image, IMAGE_SIZE_FIELD);
    if image_size == 0 {
        return Err(
            "image_size in the header is 0: QEMU then ignores text_offset and nothing reserves .bss"
                .into(),
        );
    }
    if image_size < mem_len {
        return Err(format!(
            "image_size {image_size:#x} in the header is smaller than the loaded footprint {mem_len:#x} (.bss and stacks included)"
        ));
    }
    Ok(image_size)
}

/// The header's text_offset field.
#[cfg(test)]
pub fn text_offset(image: &[u8]) -> u64 {
    read_u64(image, TEXT_OFFSET_FIELD)
}

/// Sets the header's text_offset field (u64 LE at byte 8).
pub fn set_text_offset(image: &mut [u8], offset: u64) {
    image[TEXT_OFFSET_FIELD..TEXT_OFFSET_FIELD + 8].copy_from_slice(&offset.to_le_bytes());
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x4020_0000;

    /// One PT_LOAD for the synthetic ELF.
    struct Seg {
        vaddr: u64,
        data: Vec<u8>,
        memsz: u64,
    }

    /// A header-shaped first segment: `b`, magic at 0x38, image_size at 16.
    fn header_bytes(len: usize, image_size: u64) -> Vec<u8> {
        let mut v = vec![0u8; len];
        v[0..4].copy_from_slice(&0x1400_0010u32.to_le_bytes());
        v[IMAGE_SIZE_FIELD..IMAGE_SIZE_FIELD + 8].copy_from_slice(&image_size.to_le_bytes());
        v[MAGIC_OFFSET..MAGIC_OFFSET + 4].copy_from_slice(MAGIC);
        v
    }

    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// Builds a minimal little-endian AArch64 ELF64 with the given segments and, when `rela` is
    /// given, an allocated `.rela.dyn` section of (r_offset, r_info) entries placed in the file
    /// after the segments, outside any PT_LOAD (only its contents matter to the checks).
    fn build_elf(entry: u64, segs: &[Seg], rela: Option<&[(u64, u64)]>) -> Vec<u8> {
        let phoff = 64usize;
        let mut off = phoff + 56 * segs.len();
        let mut seg_offsets = Vec::new();
        for s in segs {
            off = off.next_multiple_of(16);
            seg_offsets.push(off);
            off += s.data.len();
        }
        let rela_bytes: Vec<u8> = rela
            .unwrap_or(&[])
            .iter()
            .flat_map(|&(o, i)| {
                let mut e = Vec::new();
                e.extend_from_slice(&o.to_le_bytes());
                e.extend_from_slice(&i.to_le_bytes());
                e.extend_from_slice(&0u64.to_le_bytes());
                e
            })
            .collect();
        off = off.next_multiple_of(8);
        let rela_off = off;
        off += rela_bytes.len();
        let shstrtab = b"\0.rela.dyn\0.shstrtab\0";
        let shstr_off = off;
        off += shstrtab.len();
        off = off.next_multiple_of(8);
        let shoff = off;
        let shnum = 3usize;
        let mut f = vec![0u8; shoff + 64 * shnum];

        put(&mut f, 0, b"\x7fELF\x02\x01\x01");
        put(&mut f, 16, &3u16.to_le_bytes()); // ET_DYN
        put(&mut f, 18, &elf::EM_AARCH64.to_le_bytes());
        put(&mut f, 20, &1u32.to_le_bytes());
        put(&mut f, 24, &entry.to_le_bytes());
        put(&mut f, 32, &(phoff as u64).to_le_bytes());
        put(&mut f, 40, &(shoff as u64).to_le_bytes());
        put(&mut f, 52, &64u16.to_le_bytes());
        put(&mut f, 54, &56u16.to_le_bytes());
        put(&mut f, 56, &(segs.len() as u16).to_le_bytes());
        put(&mut f, 58, &64u16.to_le_bytes());
        put(&mut f, 60, &(shnum as u16).to_le_bytes());
        put(&mut f, 62, &2u16.to_le_bytes());

        for (i, s) in segs.iter().enumerate() {
            let ph = phoff + 56 * i;
            put(&mut f, ph, &elf::PT_LOAD.to_le_bytes());
            put(&mut f, ph + 8, &(seg_offsets[i] as u64).to_le_bytes());
            put(&mut f, ph + 16, &s.vaddr.to_le_bytes());
            put(&mut f, ph + 24, &s.vaddr.to_le_bytes());
            put(&mut f, ph + 32, &(s.data.len() as u64).to_le_bytes());
            put(&mut f, ph + 40, &s.memsz.to_le_bytes());
            put(&mut f, ph + 48, &0x1000u64.to_le_bytes());
            put(&mut f, seg_offsets[i], &s.data);
        }
        put(&mut f, rela_off, &rela_bytes);
        put(&mut f, shstr_off, shstrtab);

        // Section 1: .rela.dyn (allocated RELA), section 2: .shstrtab.
        let sh = shoff + 64;
        if rela.is_some() {
            put(&mut f, sh, &1u32.to_le_bytes());
            put(&mut f, sh + 4, &elf::SHT_RELA.to_le_bytes());
            put(&mut f, sh + 8, &u64::from(elf::SHF_ALLOC).to_le_bytes());
            put(&mut f, sh + 24, &(rela_off as u64).to_le_bytes());
            put(&mut f, sh + 32, &(rela_bytes.len() as u64).to_le_bytes());
            put(&mut f, sh + 56, &24u64.to_le_bytes());
        }
        let sh = shoff + 128;
        put(&mut f, sh, &11u32.to_le_bytes());
        put(&mut f, sh + 4, &elf::SHT_STRTAB.to_le_bytes());
        put(&mut f, sh + 24, &(shstr_off as u64).to_le_bytes());
        put(&mut f, sh + 32, &(shstrtab.len() as u64).to_le_bytes());
        f
    }

    fn two_segments(image_size: u64) -> Vec<Seg> {
        vec![
            Seg {
                vaddr: BASE,
                data: header_bytes(0x100, image_size),
                memsz: 0x100,
            },
            // A data segment one page up, with .bss beyond its file contents.
            Seg {
                vaddr: BASE + 0x1000,
                data: vec![0xaa; 0x20],
                memsz: 0x3000,
            },
        ]
    }

    #[test]
    fn flattens_with_zero_filled_gap_and_counts_relative_relocations() {
        let rela = [(BASE + 0x1000, 0x403), (BASE + 0x1008, 0x403)];
        let elf = build_elf(BASE, &two_segments(0x4000), Some(&rela));
        let flat = flatten(&elf).unwrap();
        assert_eq!(flat.base, BASE);
        assert_eq!(flat.bytes.len(), 0x1020);
        assert_eq!(flat.mem_len, 0x4000);
        assert_eq!(flat.relocations, 2);
        assert_eq!(&flat.bytes[MAGIC_OFFSET..MAGIC_OFFSET + 4], MAGIC);
        assert!(flat.bytes[0x100..0x1000].iter().all(|&b| b == 0));
        assert!(flat.bytes[0x1000..].iter().all(|&b| b == 0xaa));
        assert_eq!(check_header(&flat.bytes, flat.mem_len), Ok(0x4000));
    }

    #[test]
    fn rejects_other_relocation_types_naming_offset_and_type() {
        let rela = [
            (BASE + 0x1000, 0x403),
            (BASE + 0x1008, 257),
            (BASE + 0x1010, 1025),
        ];
        let elf = build_elf(BASE, &two_segments(0x4000), Some(&rela));
        let err = flatten(&elf).unwrap_err();
        assert!(
            err.contains("type 257 (R_AARCH64_ABS64) at offset 0x40201008"),
            "{err}"
        );
        assert!(
            err.contains("type 1025 (R_AARCH64_GLOB_DAT) at offset 0x40201010"),
            "{err}"
        );
        assert!(!err.contains("0x40201000:"), "{err}");
    }

    #[test]
    fn rejects_relocations_into_bss() {
        let rela = [(BASE + 0x2000, 0x403)];
        let err = flatten(&build_elf(BASE, &two_segments(0x4000), Some(&rela))).unwrap_err();
        assert!(err.contains("outside the file-backed image"), "{err}");
    }

    #[test]
    fn accepts_an_image_without_relocations() {
        let flat = flatten(&build_elf(BASE, &two_segments(0x4000), None)).unwrap();
        assert_eq!(flat.relocations, 0);
    }

    #[test]
    fn rejects_entry_not_at_start() {
        let err = flatten(&build_elf(BASE + 4, &two_segments(0x4000), None)).unwrap_err();
        assert!(err.contains("entry point"), "{err}");
    }

    #[test]
    fn rejects_non_elf() {
        assert!(
            flatten(b"definitely not an ELF file, but long enough to parse a header from it....")
                .is_err()
        );
    }

    #[test]
    fn header_checks() {
        let good = header_bytes(0x100, 0x4000);
        assert_eq!(check_header(&good, 0x4000), Ok(0x4000));
        assert!(check_header(&good, 0x4001).unwrap_err().contains("smaller"));
        assert!(
            check_header(&header_bytes(0x100, 0), 0x100)
                .unwrap_err()
                .contains("image_size")
        );
        let mut no_magic = good.clone();
        no_magic[MAGIC_OFFSET] = b'X';
        assert!(
            check_header(&no_magic, 0x100)
                .unwrap_err()
                .contains("magic")
        );
        assert!(check_header(&good[..32], 0x20).is_err());
    }

    #[test]
    fn alt_copy_changes_only_text_offset() {
        let image = header_bytes(0x100, 0x4000);
        let mut alt = image.clone();
        set_text_offset(&mut alt, ALT_TEXT_OFFSET);
        assert_eq!(text_offset(&alt), 0x0300_0000);
        assert_eq!(&alt[8..16], &[0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(alt[..8], image[..8]);
        assert_eq!(alt[16..], image[16..]);
    }

    #[test]
    fn make_images_writes_both_files() {
        let dir = std::env::temp_dir().join(format!("xtask-image-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let elf = dir.join("k");
        std::fs::write(&elf, build_elf(BASE, &two_segments(0x4000), None)).unwrap();
        let (bin, alt) = (dir.join("k.bin"), dir.join("k-alt.bin"));
        let info = make_images(&elf, &bin, &alt).unwrap();
        assert_eq!(info.file_len, 0x1020);
        let alt = std::fs::read(&alt).unwrap();
        assert_eq!(text_offset(&std::fs::read(&bin).unwrap()), 0);
        assert_eq!(text_offset(&alt), ALT_TEXT_OFFSET);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
