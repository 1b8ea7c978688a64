// The exception vector table (VBAR_EL1): 16 entries, 4 sources x 4 kinds, each saving the
// same full frame (x0-x30, SP_EL0, ELR, SPSR, FPCR, FPSR, q0-q31: compiled Rust uses the
// SIMD registers anywhere, so every path saves them) and calling
// `exception_dispatch(frame, kind)`, where kind = source * 4 + type:
//   source 0 current EL with SP_EL0, 1 current EL with SP_ELx, 2 lower EL AArch64, 3 AArch32
//   type   0 synchronous, 1 IRQ, 2 FIQ, 3 SError
// The Rust side may edit the frame (e.g. ELR to resume elsewhere); it is restored on return
// by `restore_frame` (context.s), which also resumes preempted processes.

.equ FRAME_SIZE, 800

.macro VENTRY kind
    .balign 0x80
    sub     sp, sp, #FRAME_SIZE
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       exception_common
.endm

.section .text.vectors, "ax"
.balign 0x800
.global exception_vectors
exception_vectors:
    VENTRY 0
    VENTRY 1
    VENTRY 2
    VENTRY 3
    VENTRY 4
    VENTRY 5
    VENTRY 6
    VENTRY 7
    VENTRY 8
    VENTRY 9
    VENTRY 10
    VENTRY 11
    VENTRY 12
    VENTRY 13
    VENTRY 14
    VENTRY 15

exception_common:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, sp_el0
    stp     x30, x1, [sp, #240]
    mrs     x2, elr_el1
    mrs     x3, spsr_el1
    stp     x2, x3, [sp, #256]
    mrs     x2, fpcr
    mrs     x3, fpsr
    stp     x2, x3, [sp, #272]
    add     x2, sp, #288
    stp     q0, q1, [x2, #0]
    stp     q2, q3, [x2, #32]
    stp     q4, q5, [x2, #64]
    stp     q6, q7, [x2, #96]
    stp     q8, q9, [x2, #128]
    stp     q10, q11, [x2, #160]
    stp     q12, q13, [x2, #192]
    stp     q14, q15, [x2, #224]
    stp     q16, q17, [x2, #256]
    stp     q18, q19, [x2, #288]
    stp     q20, q21, [x2, #320]
    stp     q22, q23, [x2, #352]
    stp     q24, q25, [x2, #384]
    stp     q26, q27, [x2, #416]
    stp     q28, q29, [x2, #448]
    stp     q30, q31, [x2, #480]

    mov     x1, x0                      // kind
    mov     x0, sp                      // frame
    mov     x29, #0                     // end the frame-pointer chain for backtraces
    bl      exception_dispatch

    mov     x30, sp
    add     sp, sp, #FRAME_SIZE
    b       restore_frame               // context.s: registers from the frame at x30, eret
