// The image's first instructions: Linux arm64 Image header, entry at EL2 or EL1, self-relocation,
// .bss, FP/SIMD enable, a stack per core, then Rust.
//
// Loaded by QEMU `-kernel` or m1n1 at an address of their choosing, with x0 = DTB physical
// address, the MMU and D-cache off, and DAIF masked. Everything here runs before any Rust and
// so must not touch memory through the stack or use the caches. Included into the kernel crate
// by kernel/src/arch/aarch64/boot.rs with these operands (braces are format placeholders):
//   stacks         symbol of the per-core boot stacks (guard page, then stack, per slot)
//   stack_stride   bytes per slot; the stack is the top of the slot, the guard page its bottom
//   mmu_config     symbol of the secondary MMU configuration (MAIR, TCR, TTBR0, SCTLR)

.section .text.boot, "ax"
.global _start
_start:
    b       primary_entry               // code0
    .long   0                           // code1
    .quad   0                           // text_offset: load at a 2 MiB boundary
    .quad   __image_size                // image_size, including .bss and the boot stacks
    .quad   0xa                         // flags: little endian, 4 KiB pages, place anywhere
    .quad   0                           // res2
    .quad   0                           // res3
    .quad   0                           // res4
    .ascii  "ARM\x64"                   // magic
    .long   0                           // res5

// Primary core. x0 = DTB.
primary_entry:
    mov     x19, x0
    mrs     x22, CurrentEL              // remember the entry level for the boot report
    ubfx    x22, x22, #2, #2
    bl      drop_to_el1
    bl      enable_fp

    // Apply R_AARCH64_RELATIVE relocations: *(offset + delta) = addend + delta, where delta is
    // the distance between where we run and where we were linked. xtask refuses to build an
    // image with any other relocation type, so other entries cannot occur.
    adr     x20, _start                 // runtime base (PC-relative: correct before relocation)
    ldr     x1, =__kernel_link_base     // an absolute symbol: not itself relocated
    sub     x21, x20, x1
    adrp    x2, __rela_start
    add     x2, x2, :lo12:__rela_start
    adrp    x3, __rela_end
    add     x3, x3, :lo12:__rela_end
1:  cmp     x2, x3
    b.hs    2f
    ldp     x4, x5, [x2], #16           // r_offset, r_info
    ldr     x6, [x2], #8                // r_addend
    cmp     w5, #0x403                  // R_AARCH64_RELATIVE
    b.ne    1b
    add     x6, x6, x21
    str     x6, [x4, x21]
    b       1b
2:
    // Zero .bss (16-byte aligned both ends by the linker script).
    adrp    x2, __bss_start
    add     x2, x2, :lo12:__bss_start
    adrp    x3, __bss_end
    add     x3, x3, :lo12:__bss_end
3:  cmp     x2, x3
    b.hs    4f
    stp     xzr, xzr, [x2], #16
    b       3b
4:
    // The boot core is logical core 0: top of stack slot 0.
    mov     x0, #0
    bl      boot_stack_top
    mov     sp, x0
    mov     x29, #0
    mov     x30, #0
    mov     x0, x19                     // DTB
    mov     x1, x20                     // load address
    mov     x2, x22                     // entry exception level
    bl      rust_primary_entry
    b       park

// Secondary cores, started by PSCI CPU_ON or a spin-table release, at EL2 or EL1 with the MMU
// off. x0 = logical core index (the PSCI context id; the spin-table path passes it the same way).
.global secondary_entry
secondary_entry:
    mov     x19, x0
    bl      drop_to_el1
    bl      enable_fp

    // Turn the MMU on with the tables the primary built. The primary cleaned {mmu_config} to
    // the point of coherency, so this non-cacheable read sees it.
    adrp    x1, {mmu_config}
    add     x1, x1, :lo12:{mmu_config}
    ldp     x2, x3, [x1]                // MAIR, TCR
    ldp     x4, x5, [x1, #16]           // TTBR0, SCTLR
    msr     mair_el1, x2
    msr     tcr_el1, x3
    msr     ttbr0_el1, x4
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    msr     sctlr_el1, x5
    isb

    mov     x0, x19
    bl      boot_stack_top
    mov     sp, x0
    mov     x29, #0
    mov     x30, #0
    mov     x0, x19
    bl      rust_secondary_entry
    b       park

// Secondary cores released from a spin table (m1n1 on Apple hardware): they jump here at EL2
// or EL1 with the MMU off and no context id. Find the logical index by looking this core's
// MPIDR affinity up in {core_mpidrs} (published by the boot core and cleaned to the point of
// coherency before the release), then continue as secondary_entry.
.global spin_table_entry
spin_table_entry:
    mrs     x1, mpidr_el1
    mov     x2, #0xffffff               // affinity: Aff3 (bits 39:32) and Aff2..Aff0
    movk    x2, #0xff, lsl #32
    and     x1, x1, x2
    adrp    x2, {core_mpidrs}
    add     x2, x2, :lo12:{core_mpidrs}
    mov     x0, #0
1:  ldr     x3, [x2, x0, lsl #3]
    cmp     x3, x1
    b.eq    secondary_entry             // x0 = this core's index
    add     x0, x0, #1
    cmp     x0, #{max_cores}
    b.lo    1b
    b       park                        // not a core the kernel released

// A spin-table holding pen, the firmware's side of the protocol, for tests on QEMU (which has
// PSCI, not spin tables): entered by PSCI CPU_ON with the MMU off and x0 = address of the
// release word; waits in WFE until the word is non-zero, then jumps to it.
.global spin_table_pen
spin_table_pen:
    ldr     x1, [x0]
    cbnz    x1, 2f
    wfe
    b       spin_table_pen
2:  br      x1

// x0 = core index -> x0 = top of that core's boot stack. Uses x0-x2 only.
boot_stack_top:
    adrp    x1, {stacks}
    add     x1, x1, :lo12:{stacks}
    mov     x2, #{stack_stride}
    madd    x0, x0, x2, x1
    add     x0, x0, x2                  // top of slot = end of its stack
    ret

// Allow FP/SIMD at EL1 and EL0: compiled Rust uses NEON registers anywhere.
enable_fp:
    mov     x0, #(3 << 20)              // CPACR_EL1.FPEN = 0b11
    msr     cpacr_el1, x0
    isb
    ret

// If entered at EL2, hand EL1 the machine and eret to EL1h with DAIF masked; at EL1, return.
// Kept minimal on purpose: Apple cores are VHE-only at EL2 (HCR_EL2.E2H reads as one), which
// changes the layout of CNTHCTL_EL2 and CPTR_EL2, so both layouts are handled by E2H.
// Uses x9-x12 only; returns to x30 at EL1.
drop_to_el1:
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2
    cmp     x9, #1
    b.eq    9f
    cmp     x9, #2
    b.ne    park                        // EL3 entry is not supported: stop here
    mrs     x10, hcr_el2
    and     x10, x10, #(1 << 34)        // keep E2H (RES1 on Apple), clear everything else
    orr     x10, x10, #(1 << 31)        // RW: EL1 is AArch64; no traps, no stage 2
    msr     hcr_el2, x10
    tst     x10, #(1 << 34)
    b.ne    1f
    mov     x11, #3                     // E2H=0: CNTHCTL_EL2.EL1PCTEN|EL1PCEN
    mov     x12, #0x33ff                // E2H=0: CPTR_EL2 RES1 bits, TFP=0
    b       2f
1:  mov     x11, #0xc03                 // E2H=1: EL0PCTEN|EL0VCTEN, EL1PCTEN|EL1PCEN (bits 10, 11)
    mov     x12, #(3 << 20)             // E2H=1: CPTR_EL2.FPEN = 0b11
2:  msr     cnthctl_el2, x11
    msr     cptr_el2, x12
    msr     cntvoff_el2, xzr            // virtual counter == physical counter
    msr     hstr_el2, xzr
    mrs     x11, midr_el1               // EL1 reads of MIDR/MPIDR return these: make them true
    msr     vpidr_el2, x11
    mrs     x11, mpidr_el1
    msr     vmpidr_el2, x11
    mrs     x11, id_aa64pfr0_el1        // GICv3 system registers implemented?
    ubfx    x11, x11, #24, #4
    cbz     x11, 3f
    mrs     x11, S3_4_C12_C9_5          // ICC_SRE_EL2: let EL1 use the system register interface
    orr     x11, x11, #0xf              // SRE | DFB | DIB | Enable
    msr     S3_4_C12_C9_5, x11
    isb
3:  ldr     x11, =0x30d00800            // SCTLR_EL1: RES1 bits only, MMU and caches off
    msr     sctlr_el1, x11
    mov     x11, #0x3c5                 // SPSR: EL1h, DAIF masked
    msr     spsr_el2, x11
    msr     elr_el2, x30
    isb
    eret
9:  ret

.global park
park:
    msr     daifset, #0xf
    wfi
    b       park
